"""``encoder-audit steal`` as a library call: one method, or several compared under the equal-compute rule.

:func:`run_steal` opens the victim (a checkpoint or an embedding service), draws the query images,
plans every method under one :class:`~.compute.ComputeRule`, steals, evaluates and writes the run
directory: ``surrogate.safetensors`` (or ``surrogate-<method>.safetensors`` for several methods),
``results.json`` with, per method, images charged, API calls, unique images, optimizer steps and
forward passes, ``metrics.jsonl`` and ``loss.png``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from ...config import config_to_dict
from ...data import create_dataset
from ...io import atomic_write
from ...runs import RunDir, seed_everything
from ...victim import Encoder, QueryCounter
from .compare import draw_queries
from .compute import ARMS, ComputeRule, PlannedRun, plan_run
from .evaluate import FeatureCache, StealEvalConfig, evaluate_stealing

log = logging.getLogger(__name__)

__all__ = ["STEAL_PRESETS", "StealJob", "open_victim", "plan_job", "run_steal"]

# Scale defaults of `encoder-audit steal`. quick: what a shared CPU finishes in minutes (cnn-small,
# Q = 2 training views for RDA); paper: RDA.py's defaults for 32x32 targets (ResNet-18, N = 2,500,
# 100 epochs of 25 batches = 2,500 steps).
STEAL_PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "surrogate": "cnn-small",
        "compute": 120,
        "options": {"rda": {"train_views": 2}},
        "eval_max_train": 2_000,
        "eval_max_test": 1_000,
    },
    "paper": {
        "surrogate": "resnet18",
        "compute": 2_500,
        "options": {},
        "eval_max_train": 50_000,
        "eval_max_test": 10_000,
    },
}


@dataclass(frozen=True)
class StealJob:
    """One ``encoder-audit steal`` invocation.

    Attributes:
        victim: any victim spec (checkpoint, ``torchvision:NAME``, ..., or an ``http(s)://`` URL).
        victim_options: options of the spec (``weights``, ``input_shape``, ...; see ``load_encoder``).
        methods: attacks; several run one comparison under ``rule``.
        arm: ``equal_n`` (every method uses ``queries`` distinct images) or ``images`` (every method is
            charged at most ``budget`` images).
        queries: distinct query images N (arm ``equal_n``).
        budget: cap on images charged per method (arm ``images``: the level itself).
        rule: ``steps`` or ``forward_passes``.
        compute: steps or forward passes per method (None: ``epochs`` x batches of N, or the preset's).
        epochs: whole epochs at N (arm ``equal_n`` only), turned into steps for every method.
        preset: ``quick`` or ``paper`` (surrogate, compute and evaluation sizes).
        surrogate: surrogate architecture (None: the preset's).
        options: per-method attack options, ``{"rda": {...}}``.
        common: options given to every method that has the field (e.g. ``batch_size``).
        defenses: output-defense specs wrapped around a local victim.
        query_data, query_split: the attacker's query pool.
        eval_datasets: downstream datasets (empty: no evaluation).
        seed: seed of the query subset, surrogate init and augmentations.
        device: ``cpu`` / ``cuda``.
        api_key: key of a URL victim (default ``$ENCODER_AUDIT_API_KEY``).
        data_root, download: dataset location.
    """

    victim: str
    methods: tuple[str, ...] = ("rda",)
    arm: str = "equal_n"
    queries: int = 2_500
    budget: int | None = None
    rule: str = "steps"
    compute: int | None = None
    epochs: int | None = None
    preset: str = "quick"
    surrogate: str | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    common: dict[str, Any] = field(default_factory=dict)
    defenses: tuple[str, ...] = ()
    query_data: str = "fashion-mnist"
    query_split: str = "train"
    eval_datasets: tuple[str, ...] = ("fashion-mnist", "digits")
    seed: int = 0
    device: str = "cpu"
    victim_options: dict[str, Any] = field(default_factory=dict)
    api_key: str | None = None
    data_root: str | None = None
    download: bool = False

    def __post_init__(self) -> None:
        if not self.methods:
            raise ValueError("name at least one --method")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"each --method once, got {list(self.methods)}")
        if self.arm not in ARMS:
            raise ValueError(f"arm must be one of {ARMS}, got {self.arm!r}")
        if self.arm == "equal_n" and self.queries < 2:
            raise ValueError(f"--queries must be >= 2, got {self.queries}")
        if self.arm == "images" and self.budget is None:
            raise ValueError("--arm images compares methods at equal images charged: give --budget")
        if self.arm == "images" and self.epochs is not None:
            raise ValueError(
                "--epochs fixes whole epochs of N images; at equal images charged N differs: use --compute"
            )
        if self.epochs is not None and self.compute is not None:
            raise ValueError("give --epochs or --compute, not both")
        if self.preset not in STEAL_PRESETS:
            raise ValueError(f"preset must be one of {sorted(STEAL_PRESETS)}, got {self.preset!r}")

    @property
    def remote(self) -> bool:
        return self.victim.startswith(("http://", "https://"))


def open_victim(spec: str, api_key: str | None = None, *, device: str = "cpu", **options: Any) -> Encoder:
    """A checkpoint path or an ``http(s)://`` URL as an :class:`~encoder_audit.victim.Encoder`.

    Raises:
        ValueError: a URL without an API key (flag or ``$ENCODER_AUDIT_API_KEY``).
    """
    if spec.startswith(("http://", "https://")):
        from ...service.client import RemoteEncoder  # lazy: only URL victims need the HTTP client

        key = api_key or os.environ.get("ENCODER_AUDIT_API_KEY")
        if not key:
            raise ValueError("a URL victim needs --api-key or $ENCODER_AUDIT_API_KEY")
        return RemoteEncoder(spec, key)
    from ...victim import load_encoder

    return load_encoder(spec, device=device, **options)


def _method_options(job: StealJob, method: str) -> dict[str, Any]:
    from . import STEALING_ATTACKS

    preset = STEAL_PRESETS[job.preset]
    cls = STEALING_ATTACKS.config_class(method)
    fields = {f.name for f in dataclasses.fields(cls)} if cls is not None else set()
    common = {k: v for k, v in job.common.items() if k in fields}
    return {
        "surrogate": job.surrogate or preset["surrogate"],
        "device": job.device,
        "seed": job.seed,
        **preset["options"].get(method, {}),
        **common,
        **job.options.get(method, {}),
    }


def plan_job(job: StealJob, pool_size: int | None = None) -> list[PlannedRun]:
    """Every method of ``job`` planned under its compute rule.

    Raises:
        ValueError: a common option no method has; a method that cannot fit the budget.
    """
    from . import STEALING_ATTACKS

    known = set()
    for m in job.methods:
        cls = STEALING_ATTACKS.config_class(m)
        known |= {f.name for f in dataclasses.fields(cls)} if cls is not None else set()
    unknown = set(job.common) - known
    if unknown:
        raise ValueError(f"attack option(s) {sorted(unknown)} belong to none of {list(job.methods)}")
    level = job.budget if job.arm == "images" else job.queries
    assert level is not None
    if job.epochs is not None:
        batch = int(_method_options(job, job.methods[0]).get("batch_size", 100))
        rule = ComputeRule("steps", job.epochs * max(1, -(-job.queries // batch)))
    else:
        rule = ComputeRule(job.rule, job.compute or int(STEAL_PRESETS[job.preset]["compute"]))
    plans = [
        plan_run(m, arm=job.arm, level=level, rule=rule, options=_method_options(job, m), pool_size=pool_size)
        for m in job.methods
    ]
    if job.budget is not None:
        for p in plans:
            if p.query_images > job.budget:
                raise ValueError(
                    f"{p.method} needs {p.query_images:,} query images for N={p.n:,} but the budget is {job.budget:,}"
                )
    return plans


def _plot_history(histories: dict[str, list[dict[str, float]]], path: Any) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3), dpi=100)
    ax = fig.subplots()
    for method, history in histories.items():
        ax.plot([h["epoch"] for h in history], [h["loss"] for h in history], marker="o", label=method)
    ax.set_xlabel("epoch (the last may be partial)")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if len(histories) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def run_steal(
    job: StealJob, run_dir: RunDir, *, progress: bool | None = False, deterministic: bool = False
) -> list[str]:
    """Run ``job`` into ``run_dir``; returns the lines to print.

    Raises:
        ValueError: bad options, a defense around a remote victim, or a budget too small.
    """
    from ...defenses import DefendedEncoder, parse_defense_spec

    if job.defenses and job.remote:
        raise ValueError("--defense simulates a defended API around a local checkpoint; a service applies its own")
    defenses = [parse_defense_spec(s) for s in job.defenses]  # validated before any query
    seed_everything(job.seed, deterministic=deterministic)
    pool = create_dataset(job.query_data, job.query_split, root=job.data_root, download=job.download)
    plans = plan_job(job, len(pool))
    raw_victim = open_victim(job.victim, job.api_key, device=job.device, **job.victim_options)
    single = len(plans) == 1
    run_dir.save_config(
        {
            "command": "steal",
            "victim": job.victim.split("?")[0] if job.remote else job.victim,
            "methods": list(job.methods),
            "arm": job.arm,
            "level": plans[0].level,
            "rule": {"rule": plans[0].rule.rule, "amount": plans[0].rule.amount},
            "attacks": {p.method: config_to_dict(p.attack.config) for p in plans},
            "budget": job.budget,
            "query_data": {"name": job.query_data, "split": job.query_split},
            "defenses": list(job.defenses),
            "preset": job.preset,
        }
    )
    run_dir.save_env(job.seed, deterministic)
    lines = [f"run directory: {run_dir.path}"]
    for p in plans:
        lines.append(
            f"{p.method}: N={p.n:,} -> {p.query_images:,} images charged in {p.api_calls:,} calls, "
            f"{p.steps:,} optimizer steps, {p.forward_passes:,} surrogate forward passes "
            f"({p.rule.rule}={p.rule.amount:,}, {p.attack.config.surrogate} surrogate)"
        )
    preset = STEAL_PRESETS[job.preset]
    sets = {
        n: (
            create_dataset(n, "train", root=job.data_root, download=job.download),
            create_dataset(n, "test", root=job.data_root, download=job.download),
        )
        for n in job.eval_datasets
    }
    ec = StealEvalConfig(max_train=preset["eval_max_train"], max_test=preset["eval_max_test"], seed=job.seed)
    cache = FeatureCache()
    runs: list[dict[str, Any]] = []
    evaluation: dict[str, Any] = {}
    histories: dict[str, list[dict[str, float]]] = {}
    for p in plans:
        victim: Encoder = (
            DefendedEncoder(raw_victim, [parse_defense_spec(s) for s in job.defenses]) if defenses else raw_victim
        )
        counter = QueryCounter(victim, budget=job.budget)
        queries = draw_queries(pool, p.n, job.seed)
        result = p.attack.extract(counter, queries, progress=progress)
        name = "surrogate.safetensors" if single else f"surrogate-{p.method}.safetensors"
        checkpoint = result.save(run_dir.file(name))
        for record in result.history:
            run_dir.log_metrics({"method": p.method, **record})
        histories[p.method] = result.history
        row = {
            "method": p.method,
            "images_charged": result.usage["query_images"],
            "api_calls": result.usage["api_calls"],
            "unique_images": result.unique_images,
            "optimizer_steps": result.steps,
            "forward_passes": result.forward_passes,
            "n": p.n,
            "train_seconds": round(result.train_seconds, 2),
            "query_seconds": round(result.query_seconds, 2),
            "checkpoint": str(checkpoint),
            "attack": result.summary(),
        }
        lines.append(
            f"{p.method}: charged {row['images_charged']:,} images in {row['api_calls']:,} calls "
            f"({row['unique_images']:,} unique); {row['optimizer_steps']:,} steps, {row['forward_passes']:,} forward "
            f"passes in {result.train_seconds:.0f}s; surrogate: {checkpoint}"
        )
        if sets:
            ev = evaluate_stealing(result.encoder(), raw_victim, sets, ec, cache=cache)
            evaluation[p.method] = ev
            lines += _eval_lines(p.method, ev, list(sets))
        runs.append(row)
    results: dict[str, Any] = {
        "comparison": {
            "arm": job.arm,
            "level": plans[0].level,
            "rule": plans[0].rule.rule,
            "amount": plans[0].rule.amount,
        },
        "runs": runs,
    }
    if single:
        usage_row = {"query_images": runs[0]["images_charged"], "api_calls": runs[0]["api_calls"], "budget": job.budget}
        results |= {"attack": runs[0]["attack"], "usage": usage_row, "checkpoint": runs[0]["checkpoint"]}
        if evaluation:
            results["evaluation"] = evaluation[job.methods[0]]
    elif evaluation:
        results["evaluation"] = evaluation
    usage = getattr(raw_victim, "usage", None)
    if job.remote and callable(usage):
        results["server_usage"] = usage()
    _plot_history(histories, run_dir.file("loss.png"))
    results["figures"] = [str(run_dir.file("loss.png"))]
    run_dir.save_results(results, kind="steal")
    return lines


def _eval_lines(method: str, ev: dict[str, Any], names: list[str]) -> list[str]:
    lines = [f"{method}: {'dataset':<15}{'encoder':<13}{'kNN':>8}{'linear':>9}{'c-cos':>8}{'coord':>8}{'agree':>8}"]
    for n in names:
        d = ev[n]
        s = d["surrogate"]
        lines.append(
            f"{'':<{len(method) + 2}}{n:<15}{'surrogate':<13}{s['knn']:>8.2%}{s['linear']:>9.2%}"
            f"{d['cosine_centered']:>8.3f}{d['target_head_agreement']:>8.2%}{d['prediction_agreement']:>8.2%}"
        )
        for who in ("target", "random_init"):
            if who in d:
                lines.append(
                    f"{'':<{len(method) + 2}}{'':<15}{who.replace('_', ' '):<13}"
                    f"{d[who]['knn']:>8.2%}{d[who]['linear']:>9.2%}"
                )
    return lines
