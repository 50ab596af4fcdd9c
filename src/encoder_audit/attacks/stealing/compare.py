"""Run stealing comparisons under the equal-compute rule and keep every run's cost beside its scores.

:func:`run_planned` runs one :class:`~.compute.PlannedRun` against a victim and evaluates the
surrogate (:mod:`.evaluate`); :func:`run_comparison` runs methods x levels x seeds of one arm under
one rule. Each run becomes a :class:`RunRecord`: plain numbers (images charged, API calls, unique
images, optimizer steps, forward passes, per-dataset scores), so a comparison is stored as JSON and
summarised later (:func:`summarize_records`, :func:`plot_curve`).
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...data.base import ImageDataset, subsample
from ...io import atomic_write
from ...runs import derive_seed
from ...victim import Encoder
from .base import StealingResult
from .compute import ComputeRule, PlannedRun, plan_run
from .evaluate import FeatureCache, StealEvalConfig, evaluate_stealing

log = logging.getLogger(__name__)

__all__ = [
    "DatasetEval",
    "Reference",
    "RunRecord",
    "Scores",
    "draw_queries",
    "interval",
    "plot_curve",
    "references",
    "run_comparison",
    "run_planned",
    "summarize_records",
]


@dataclass
class Scores:
    """Downstream accuracy (fractions) of one encoder on one dataset.

    Attributes:
        knn: weighted kNN at ``knn_k`` (1% of the bank, see :func:`~.evaluate.scaled_k`).
        knn_k: the k used by ``knn``.
        knn20, knn200: kNN at k = 20 and k = 200 on the same bank.
        linear: linear-probe accuracy.
    """

    knn: float
    knn_k: int
    knn20: float
    knn200: float
    linear: float

    @classmethod
    def from_eval(cls, d: dict[str, Any]) -> Scores:
        return cls(
            knn=float(d["knn"]),
            knn_k=int(d["knn_k"]),
            knn20=float(d.get("knn@20", math.nan)),
            knn200=float(d.get("knn@200", math.nan)),
            linear=float(d["linear"]),
        )


@dataclass
class DatasetEval:
    """One surrogate on one downstream dataset.

    Attributes:
        dataset: its name.
        n_train: images of the kNN bank / probe training split.
        n_test: test images.
        surrogate: the surrogate's accuracy.
        cosine, cosine_centered: fidelity to the target on the test images.
        target_head_agreement: coordinate fidelity (the target's head on the surrogate's features).
        prediction_agreement: Cont-Steal's agreement (each encoder's own probe).
    """

    dataset: str
    n_train: int
    n_test: int
    surrogate: Scores
    cosine: float
    cosine_centered: float
    target_head_agreement: float
    prediction_agreement: float


@dataclass
class Reference:
    """The target's and a random-init surrogate's accuracy on one dataset (the ceiling and the floor).

    ``random_init_fidelity`` is the centred-cosine fidelity of that random-init surrogate to the
    target: what "a copy made of nothing" scores.
    """

    dataset: str
    n_train: int
    target: Scores
    random_init: Scores | None = None
    random_init_fidelity: float = math.nan


@dataclass
class RunRecord:
    """One attack run: what it cost and what it stole.

    Attributes:
        method: attack name.
        arm: ``images`` (equal images charged) or ``equal_n`` (equal distinct images).
        level: the arm's budget (images charged) or N.
        seed: seed of the query subset, surrogate init and augmentations.
        defense: the output defense the victim answered through (``none``).
        rule, rule_amount: the compute rule (``steps`` / ``forward_passes``) and its amount.
        n_drawn: query images drawn from the pool.
        unique_images: distinct images the victim saw.
        query_images: images charged to the victim.
        api_calls: requests sent.
        steps: optimizer steps taken.
        forward_passes: images through the surrogate in training (views included).
        epochs: steps / batches per epoch (fractional).
        wall_seconds, train_seconds, query_seconds: timings.
        final_loss: loss of the last epoch.
        prototype_norm_median: RDA only: median norm of its prototypes (1 = all views agree).
        datasets: per-dataset evaluation.
        options: attack options that differ from the method's defaults in this comparison.
    """

    method: str
    arm: str
    level: int
    seed: int
    defense: str
    rule: str
    rule_amount: int
    n_drawn: int
    unique_images: int
    query_images: int
    api_calls: int
    steps: int
    forward_passes: int
    epochs: float
    wall_seconds: float
    train_seconds: float
    query_seconds: float
    final_loss: float
    datasets: list[DatasetEval] = field(default_factory=list)
    prototype_norm_median: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def score(self, dataset: str, metric: str) -> float:
        """A metric of ``dataset`` (``knn``, ``linear``, ``knn20``, ``cosine_centered``, ...); NaN if absent."""
        for d in self.datasets:
            if d.dataset == dataset:
                if hasattr(d.surrogate, metric):
                    return float(getattr(d.surrogate, metric))
                return float(getattr(d, metric))
        return math.nan

    def facts(self) -> dict[str, Any]:
        """The cost fields every results row carries."""
        return {
            "method": self.method,
            "images_charged": self.query_images,
            "api_calls": self.api_calls,
            "unique_images": self.unique_images,
            "optimizer_steps": self.steps,
            "forward_passes": self.forward_passes,
            "rule": f"{self.rule}={self.rule_amount}",
        }


def draw_queries(pool: ImageDataset, n: int, seed: int) -> ImageDataset:
    """A seeded random subset of ``n`` images of the attacker's pool.

    Raises:
        ValueError: the pool is smaller than ``n``.
    """
    if n > len(pool):
        raise ValueError(f"the query pool has {len(pool)} images; {n} were asked for")
    return subsample(pool, n, derive_seed(seed, "query-subset") % (2**31))


def _record(
    planned: PlannedRun, result: StealingResult, ev: dict[str, Any], seed: int, defense: str, wall: float
) -> RunRecord:
    datasets = [
        DatasetEval(
            dataset=name,
            n_train=int(d["n_train"]),
            n_test=int(d["n_test"]),
            surrogate=Scores.from_eval(d["surrogate"]),
            cosine=float(d["cosine"]),
            cosine_centered=float(d["cosine_centered"]),
            target_head_agreement=float(d["target_head_agreement"]),
            prediction_agreement=float(d["prediction_agreement"]),
        )
        for name, d in ev.items()
        if name != "mean"
    ]
    n_batches = math.ceil(planned.n / planned.attack.config.batch_size)
    norms = getattr(planned.attack, "last_prototype_norms", None)
    return RunRecord(
        method=planned.method,
        arm=planned.arm,
        level=planned.level,
        seed=seed,
        defense=defense,
        rule=planned.rule.rule,
        rule_amount=planned.rule.amount,
        n_drawn=planned.n,
        unique_images=result.unique_images,
        query_images=int(result.usage["query_images"]),
        api_calls=int(result.usage["api_calls"]),
        steps=result.steps,
        forward_passes=result.forward_passes,
        epochs=round(result.steps / max(1, n_batches), 3),
        wall_seconds=round(wall, 2),
        train_seconds=round(result.train_seconds, 2),
        query_seconds=round(result.query_seconds, 2),
        final_loss=float(result.history[-1]["loss"]) if result.history else math.nan,
        datasets=datasets,
        prototype_norm_median=None if norms is None else float(norms.median()),
    )


def run_planned(
    planned: PlannedRun,
    victim: Encoder,
    pool: ImageDataset,
    eval_sets: dict[str, tuple[ImageDataset, ImageDataset]],
    *,
    seed: int,
    eval_config: StealEvalConfig,
    cache: FeatureCache,
    target: Encoder | None = None,
    defense: str = "none",
    progress: bool | None = False,
) -> tuple[RunRecord, StealingResult]:
    """Run one planned attack against ``victim`` and evaluate it against ``target`` (default: ``victim``).

    ``victim`` is what the attacker queries (possibly behind a defense); ``target`` the undefended
    encoder the surrogate is compared with.
    """
    queries = draw_queries(pool, planned.n, seed)
    t0 = time.perf_counter()
    result = planned.attack.extract(victim, queries, budget=planned.query_images, progress=progress)
    wall = time.perf_counter() - t0
    ev = evaluate_stealing(result.encoder(), target or victim, eval_sets, eval_config, cache=cache)
    return _record(planned, result, ev, seed, defense, wall), result


def references(
    target: Encoder,
    eval_sets: dict[str, tuple[ImageDataset, ImageDataset]],
    eval_config: StealEvalConfig,
    cache: FeatureCache,
    surrogate_arch: str,
    pool: ImageDataset,
) -> list[Reference]:
    """The target's and a random-init ``surrogate_arch`` encoder's accuracy on each dataset.

    The random-init encoder is normalised with the query pool's statistics, as every surrogate is
    (:meth:`~.base.StealingAttack.build_surrogate`), so it is the one :func:`evaluate_stealing` reuses.
    """
    rand = cache.random_init(surrogate_arch, target.input_shape, **_norm(pool, target.input_shape[0]))
    ev = evaluate_stealing(rand, target, eval_sets, eval_config, random_init=rand, cache=cache)
    out = []
    for name in eval_sets:
        d = ev[name]
        out.append(
            Reference(
                dataset=name,
                n_train=int(d["n_train"]),
                target=Scores.from_eval(d["target"]),
                random_init=Scores.from_eval(d["random_init"]),
                random_init_fidelity=float(d["cosine_centered"]),
            )
        )
    return out


def _norm(ds: ImageDataset, channels: int) -> dict[str, Any]:
    mean, std = ds.info.mean, ds.info.std
    if len(mean) != channels:
        mean, std = (float(sum(mean) / len(mean)),) * channels, (float(sum(std) / len(std)),) * channels
    return {"mean": tuple(mean), "std": tuple(std)}


def run_comparison(
    victim: Encoder,
    pool: ImageDataset,
    eval_sets: dict[str, tuple[ImageDataset, ImageDataset]],
    *,
    methods: Sequence[str],
    levels: Sequence[int],
    arm: str = "images",
    rule: ComputeRule | None = None,
    seeds: Iterable[int] = (0,),
    options: dict[str, dict[str, Any]] | None = None,
    common: dict[str, Any] | None = None,
    eval_config: StealEvalConfig | None = None,
    cache: FeatureCache | None = None,
    target: Encoder | None = None,
    defense: str = "none",
    on_record: Callable[[RunRecord], None] | None = None,
    skipped: list[str] | None = None,
    progress: bool | None = False,
) -> list[RunRecord]:
    """Every method x level x seed of one arm under one compute rule.

    Args:
        victim: what the attacker queries.
        pool: the attacker's query pool.
        eval_sets: labelled downstream ``{name: (train, test)}``.
        methods: attack names.
        levels: budgets (arm ``images``) or query-set sizes (arm ``equal_n``).
        arm: ``images`` or ``equal_n``.
        rule: the compute rule (default: 120 steps).
        seeds: seeds.
        options: per-method attack options (``{"rda": {"train_views": 2}}``).
        common: options of every method (``surrogate``, ``device``, ``batch_size``).
        eval_config: evaluation sizes.
        cache: shared feature cache.
        target: the undefended encoder (default ``victim``).
        defense: label of the defense ``victim`` applies.
        on_record: called with each record as it finishes.
        skipped: receives a sentence for each method x level that could not be planned.
        progress: progress bars.
    """
    rule = rule or ComputeRule()
    ec = eval_config or StealEvalConfig()
    cache = cache if cache is not None else FeatureCache()
    records: list[RunRecord] = []
    for level in levels:
        for method in methods:
            for seed in seeds:
                opts = {**(common or {}), **(options or {}).get(method, {}), "seed": seed}
                try:
                    planned = plan_run(method, arm=arm, level=level, rule=rule, options=opts, pool_size=len(pool))
                except ValueError as exc:
                    msg = f"{method} at {arm} {level:,}: {exc}"
                    log.warning("skipped %s", msg)
                    if skipped is not None and msg not in skipped:
                        skipped.append(msg)
                    break
                rec, _ = run_planned(
                    planned,
                    victim,
                    pool,
                    eval_sets,
                    seed=seed,
                    eval_config=ec,
                    cache=cache,
                    target=target,
                    defense=defense,
                    progress=progress,
                )
                rec.options = dict((options or {}).get(method, {}))
                log.info(
                    "%s %s=%d seed=%d: N=%d charged=%d steps=%d fp=%d knn=%.3f",
                    method,
                    arm,
                    level,
                    seed,
                    rec.n_drawn,
                    rec.query_images,
                    rec.steps,
                    rec.forward_passes,
                    rec.datasets[0].surrogate.knn if rec.datasets else math.nan,
                )
                records.append(rec)
                if on_record is not None:
                    on_record(rec)
    return records


# --------------------------------------------------------------------------------------------- summaries


def interval(values: Sequence[float], z: float | None = None) -> tuple[float, float | None, float | None, float | None]:
    """Mean, sample std and a 95% t-interval (half-width from Student's t with n - 1 degrees of freedom).

    Returns ``(mean, std, lo, hi)``; std and the interval are None for a single value.
    """
    vals = [v for v in values if v == v]
    if not vals:
        return math.nan, None, None, None
    m = statistics.fmean(vals)
    if len(vals) < 2:
        return m, None, None, None
    sd = statistics.stdev(vals)
    t = z if z is not None else _t975(len(vals) - 1)
    half = t * sd / math.sqrt(len(vals))
    return m, sd, m - half, m + half


def _t975(df: int) -> float:
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}
    return table.get(df, 1.96 if df > 30 else 2.1)


def summarize_records(records: Sequence[RunRecord], metrics: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Mean / std / 95% interval over seeds per (arm, level, method, defense), for ``(dataset, metric)`` pairs.

    Cost fields (images charged, API calls, unique images, steps, forward passes) are averaged too
    (they are identical across seeds except Cont-Steal's unique images).
    """
    groups: dict[tuple[str, int, str, str], list[RunRecord]] = {}
    for r in records:
        groups.setdefault((r.arm, r.level, r.method, r.defense), []).append(r)
    out = []
    for (arm, level, method, defense), rs in groups.items():
        entry: dict[str, Any] = {"arm": arm, "level": level, "method": method, "defense": defense, "seeds": len(rs)}
        for f in ("n_drawn", "unique_images", "query_images", "api_calls", "steps", "forward_passes", "epochs"):
            entry[f] = statistics.fmean(getattr(r, f) for r in rs)
        entry["wall_seconds"] = statistics.fmean(r.wall_seconds for r in rs)
        for dataset, metric in metrics:
            m, sd, lo, hi = interval([r.score(dataset, metric) for r in rs])
            key = f"{dataset}/{metric}"
            entry[key], entry[key + "_std"], entry[key + "_lo"], entry[key + "_hi"] = m, sd, lo, hi
        out.append(entry)
    return sorted(out, key=lambda e: (e["arm"], e["level"], e["method"], e["defense"]))


def plot_curve(
    records: Sequence[RunRecord],
    path: str | Path,
    *,
    dataset: str,
    refs: Sequence[Reference] = (),
    title: str = "",
    x: str = "query_images",
) -> Path:
    """kNN accuracy and centred-cosine fidelity on ``dataset`` vs. images charged, mean ± std over seeds."""
    from matplotlib.figure import Figure

    summary = summarize_records(records, [(dataset, "knn"), (dataset, "cosine_centered")])
    fig = Figure(figsize=(9, 3.6), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    for method in sorted({e["method"] for e in summary}):
        es = sorted((e for e in summary if e["method"] == method), key=lambda e: e[x])
        xs = [e[x] for e in es]
        for ax, key in ((ax1, f"{dataset}/knn"), (ax2, f"{dataset}/cosine_centered")):
            ax.errorbar(
                xs,
                [e[key] for e in es],
                yerr=[e[key + "_std"] or 0.0 for e in es],
                marker="o",
                capsize=3,
                label=method,
            )
    for ref in refs:
        if ref.dataset == dataset:
            ax1.axhline(ref.target.knn, color="k", ls="--", lw=1, label="target")
            ax1.axhline(0.95 * ref.target.knn, color="k", ls=":", lw=1, label="95% of target")
            if ref.random_init is not None:
                ax1.axhline(ref.random_init.knn, color="gray", ls="-.", lw=1, label="random init")
    for ax, ylabel in ((ax1, f"kNN accuracy ({dataset})"), (ax2, f"fidelity: centred cosine ({dataset})")):
        ax.set_xscale("log")
        ax.set_xlabel("images charged to the victim" if x == "query_images" else x.replace("_", " "))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
