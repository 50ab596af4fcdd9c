"""The stealing stage of the main audit: how cheaply is this encoder copied, and does a defense help?

Every method of :class:`~.stealing_config.StealingAuditConfig` steals the victim at each budget of
images charged (and, when ``equal_n`` is set, at the paper's equal N), all under one equal-compute
rule (:mod:`encoder_audit.attacks.stealing.compute`: the same optimizer steps, or the same surrogate
forward passes, for every method). The strongest method and the strongest other one are then run
against the victim behind each output defense, beside the defense's cost to honest users. Two
controls back the verdict: the strongest method against a random-init encoder of the surrogate's
own architecture (a target it can represent exactly: it must copy it) and a random-init surrogate
that made no query (it must not look like a copy).

The stage returns a :class:`StealingAuditResult` of raw numbers; ``sections/stealing.py`` turns it
into the report section.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ..attacks.stealing.compare import (
    Reference,
    RunRecord,
    plot_curve,
    references,
    run_comparison,
    run_planned,
)
from ..attacks.stealing.compute import ComputeRule, plan_run
from ..attacks.stealing.evaluate import FeatureCache, StealEvalConfig
from ..config import config_to_dict
from ..data.base import ImageDataset
from ..defenses import DefendedEncoder, parse_defense_spec
from ..defenses.cost import defense_cost
from ..evaluate import EvalConfig
from ..evaluate.downstream import random_init_baseline
from ..runs import derive_seed
from ..victim import Encoder
from .family import Family, StageContext, register_family
from .stealing_config import StealingAuditConfig

log = logging.getLogger(__name__)

__all__ = [
    "ControlRun",
    "DefenseCostRow",
    "FigureRef",
    "StealingAuditResult",
    "run_stealing_stage",
    "strongest_methods",
]


@dataclass
class DefenseCostRow:
    """What a defense costs an honest user on the headline dataset (fractions)."""

    defense: str
    knn_clean: float
    knn_defended: float
    linear_clean: float
    linear_defended: float
    cosine_to_clean: float
    n_train: int
    n_test: int


@dataclass
class ControlRun:
    """A case whose answer is known.

    Attributes:
        name: what it is.
        kind: ``positive`` (must be copied) or ``negative`` (must not look copied).
        method: the attack run (``none`` for the zero-query case).
        fidelity: centred-cosine fidelity on the headline dataset.
        threshold: fidelity at which a copy counts as made.
        query_images: images charged.
        steps: optimizer steps.
    """

    name: str
    kind: str
    method: str
    fidelity: float
    threshold: float
    query_images: int = 0
    steps: int = 0


@dataclass
class FigureRef:
    """A figure written by the stage, its path relative to the run directory."""

    path: str
    caption: str


@dataclass
class StealingAuditResult:
    """Raw numbers of the stealing stage (one seed).

    Attributes:
        head: the headline dataset (the first evaluation set).
        methods, budgets, equal_n: what was compared.
        rule, compute: the equal-compute rule and its amount (steps or forward passes per run).
        surrogate: the surrogate architecture.
        query_pool: images in the attacker's pool.
        input_channels: channels of the victim's input (1: grayscale).
        runs: every run of both arms (``RunRecord.arm``), undefended.
        defense_runs: runs against the defended victim (``RunRecord.defense``).
        defense_costs: each defense's honest-user cost.
        references: the target's and random init's accuracy per dataset.
        controls: the positive and negative controls.
        skipped: methods x budgets that could not be planned (and why).
        figures: figures written.
        wall_seconds: stage time.
        seed: the stage seed.
        config: the resolved stealing config.
    """

    head: str
    methods: list[str]
    budgets: list[int]
    equal_n: int | None
    rule: str
    compute: int
    surrogate: str
    query_pool: int
    input_channels: int
    runs: list[RunRecord] = field(default_factory=list)
    defense_runs: list[RunRecord] = field(default_factory=list)
    defense_costs: list[DefenseCostRow] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    controls: list[ControlRun] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    figures: list[FigureRef] = field(default_factory=list)
    wall_seconds: float = 0.0
    seed: int = 0
    config: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- ranking


def strongest_methods(runs: list[RunRecord], head: str, arm: str = "images") -> list[str]:
    """Methods ranked by centred-cosine fidelity on ``head`` at the largest level of ``arm``, best first.

    Ties (equal to 3 decimals) go to the method charged fewer images. Methods that did not run at the
    largest level follow, ranked the same way at their own largest level.
    """
    own = [r for r in runs if r.arm == arm and r.defense == "none"]
    if not own:
        return []
    best: dict[str, RunRecord] = {}
    for r in own:
        if r.method not in best or r.level > best[r.method].level:
            best[r.method] = r

    def score(m: str) -> tuple[int, float, int]:
        r = best[m]
        return (-r.level, -round(r.score(head, "cosine_centered"), 3), r.query_images)

    return sorted(best, key=score)


# --------------------------------------------------------------------------------------------- the stage


def _eval_config(config: StealingAuditConfig, seed: int) -> StealEvalConfig:
    return StealEvalConfig(max_train=config.eval_max_train, max_test=config.eval_max_test, seed=seed)


def _common(config: StealingAuditConfig, device: str) -> dict[str, Any]:
    return {"surrogate": config.surrogate, "device": device, **config.common}


def _arms(ctx: StageContext, config: StealingAuditConfig, cache: FeatureCache, skipped: list[str]) -> list[RunRecord]:
    rule = ComputeRule(config.rule, config.compute)
    kw: dict[str, Any] = {
        "methods": config.methods,
        "rule": rule,
        "seeds": [ctx.seed],
        "options": config.options,
        "common": _common(config, ctx.device),
        "eval_config": _eval_config(config, ctx.seed),
        "cache": cache,
        "skipped": skipped,
        "progress": ctx.progress,
    }
    victim, pool, sets = ctx.victim(), ctx.data.queries, ctx.eval_sets()
    runs = run_comparison(victim, pool, sets, levels=config.budgets, arm="images", **kw)
    if config.equal_n is not None:
        runs += run_comparison(victim, pool, sets, levels=[config.equal_n], arm="equal_n", **kw)
    return runs


def _defenses(
    ctx: StageContext, config: StealingAuditConfig, cache: FeatureCache, methods: list[str], skipped: list[str]
) -> tuple[list[RunRecord], list[DefenseCostRow]]:
    if not config.defenses or not methods:
        return [], []
    victim, pool, sets = ctx.victim(), ctx.data.queries, ctx.eval_sets()
    head = next(iter(sets))
    top = max(config.budgets)
    rule = ComputeRule(config.rule, config.compute)
    ec = _eval_config(config, ctx.seed)
    runs: list[RunRecord] = []
    for spec in config.defenses:
        for method in methods:
            opts = {**_common(config, ctx.device), **config.options.get(method, {}), "seed": ctx.seed}
            try:
                planned = plan_run(method, arm="images", level=top, rule=rule, options=opts, pool_size=len(pool))
            except ValueError as exc:
                skipped.append(f"{method} behind {spec}: {exc}")
                continue
            defended = DefendedEncoder(victim, [parse_defense_spec(spec)])  # fresh: stateful defenses start at 0
            rec, _ = run_planned(
                planned, defended, pool, sets, seed=ctx.seed, eval_config=ec, cache=cache, target=victim, defense=spec
            )
            runs.append(rec)
    train, test = sets[head]
    cost = defense_cost(
        victim,
        list(config.defenses),
        train,
        test,
        EvalConfig(knn_k=ec.k_for(min(len(train), ec.max_train)), max_train=ec.max_train, max_test=ec.max_test),
    )
    clean = cost["clean"]
    rows = [
        DefenseCostRow(
            defense=str(r["defense"]),
            knn_clean=float(clean["knn"]),
            knn_defended=float(r["knn"]),
            linear_clean=float(clean["linear"]),
            linear_defended=float(r["linear"]),
            cosine_to_clean=float(r["cosine"]),
            n_train=int(cost["n_train"]),
            n_test=int(cost["n_test"]),
        )
        for r in cost["rows"]
        if r["defense"] != "none"
    ]
    return runs, rows


def _controls(
    ctx: StageContext, config: StealingAuditConfig, cache: FeatureCache, refs: list[Reference], method: str | None
) -> list[ControlRun]:
    head = refs[0]
    out = [
        ControlRun(
            name="random-init surrogate, no query (a copy made of nothing)",
            kind="negative",
            method="none",
            fidelity=float(head.random_init_fidelity),
            threshold=config.fire_fidelity,
        )
    ]
    if not config.positive_control or method is None:
        return out
    victim = ctx.victim()
    sets = {head.dataset: ctx.eval_sets()[head.dataset]}
    target = random_init_baseline(
        config.surrogate, victim.input_shape, seed=derive_seed(ctx.seed, "control-target") % (2**31)
    )
    opts = {**_common(config, ctx.device), **config.options.get(method, {}), "seed": ctx.seed}
    level = min(config.budgets)
    try:
        planned = plan_run(
            method, arm="images", level=level, rule=ComputeRule(config.rule, config.compute), options=opts,
            pool_size=len(ctx.data.queries),
        )  # fmt: skip
    except ValueError as exc:
        log.warning("positive control not run: %s", exc)
        return out
    rec, _ = run_planned(
        planned, target, ctx.data.queries, sets, seed=ctx.seed, eval_config=_eval_config(config, ctx.seed),
        cache=FeatureCache(),
    )  # fmt: skip
    out.insert(
        0,
        ControlRun(
            name=f"random-init {config.surrogate} target (the surrogate's own architecture: copyable)",
            kind="positive",
            method=method,
            fidelity=rec.score(head.dataset, "cosine_centered"),
            threshold=config.fire_fidelity,
            query_images=rec.query_images,
            steps=rec.steps,
        ),
    )
    return out


def _figure(ctx: StageContext, runs: list[RunRecord], refs: list[Reference]) -> list[FigureRef]:
    images = [r for r in runs if r.arm == "images"]
    if not images or not refs:
        return []
    path = plot_curve(
        images,
        ctx.out_dir / "stealing_budget.png",
        dataset=refs[0].dataset,
        refs=refs,
        title=f"Stealing vs. images charged, equal {images[0].rule} ({images[0].rule_amount:,}) per run, "
        f"seed {ctx.seed}",
    )
    fig = ctx.figure(path, "")
    return [
        FigureRef(
            fig.path,
            f"kNN accuracy and centred-cosine fidelity on {refs[0].dataset} of each surrogate against the images it "
            f"cost; every run took the same {images[0].rule.replace('_', ' ')} ({images[0].rule_amount:,}).",
        )
    ]


def run_stealing_stage(ctx: StageContext, config: StealingAuditConfig) -> StealingAuditResult:
    """Both arms, the defenses against the two strongest methods, the controls and the figure."""
    t0 = time.perf_counter()
    victim: Encoder = ctx.victim()
    sets: dict[str, tuple[ImageDataset, ImageDataset]] = ctx.eval_sets()
    head = next(iter(sets))
    cache = FeatureCache()
    ec = _eval_config(config, ctx.seed)
    refs = references(victim, sets, ec, cache, config.surrogate, ctx.data.queries)
    skipped: list[str] = []
    runs = _arms(ctx, config, cache, skipped)
    ranked = strongest_methods(runs, head)
    defense_runs, costs = _defenses(ctx, config, cache, ranked[: config.defense_methods], skipped)
    controls = _controls(ctx, config, cache, refs, ranked[0] if ranked else None)
    return StealingAuditResult(
        head=head,
        methods=list(config.methods),
        budgets=list(config.budgets),
        equal_n=config.equal_n,
        rule=config.rule,
        compute=config.compute,
        surrogate=config.surrogate,
        query_pool=len(ctx.data.queries),
        input_channels=int(victim.input_shape[0]),
        runs=runs,
        defense_runs=defense_runs,
        defense_costs=costs,
        references=refs,
        controls=controls,
        skipped=skipped,
        figures=_figure(ctx, runs, refs),
        wall_seconds=round(time.perf_counter() - t0, 1),
        seed=ctx.seed,
        config=config_to_dict(config),
    )


def _skip(ctx: StageContext) -> str | None:
    if len(ctx.data.queries) < 2:
        return "the query split has fewer than 2 images"
    return None


def _build(result: StealingAuditResult) -> Any:
    from .sections.stealing import build_stealing_section  # the builder imports this module's types

    return build_stealing_section(result)


register_family(
    Family(
        key="stealing",
        title="Encoder stealing",
        config_attr="stealing",
        result_type=StealingAuditResult,
        run=run_stealing_stage,
        build=_build,
        skip=_skip,
    )
)
