"""The "Encoder stealing" section: a pure function of :class:`~..stealing.StealingAuditResult`."""

from __future__ import annotations

import math
from typing import Any

from ...attacks.stealing.compare import Reference, RunRecord
from ...report.model import (
    Cell,
    Control,
    Figure,
    Section,
    Table,
    Text,
    Verdict,
    WhatToDo,
    count,
    key,
    num,
    pct,
    seconds,
)
from ..stealing import StealingAuditResult, strongest_methods

__all__ = [
    "HIGH_FIDELITY",
    "HIGH_RECOVERED",
    "MEDIUM_FIDELITY",
    "MEDIUM_RECOVERED",
    "build_stealing_section",
    "level_of",
]

HIGH_FIDELITY, MEDIUM_FIDELITY = 0.8, 0.5
HIGH_RECOVERED, MEDIUM_RECOVERED = 0.9, 0.5
MIN_TARGET_GAIN = 0.02  # below this the target's kNN is no better than random init: utility says nothing

RULE = (
    "Each run is scored on the headline dataset by its centred-cosine fidelity to the target and by the share "
    "of the target's kNN gain over a random-init encoder it recovers, (kNN_surrogate - kNN_random) / "
    "(kNN_target - kNN_random) (not used when the target gains under 2 points). high: some run reaches "
    "fidelity >= 0.80 or recovers >= 90%; medium: fidelity >= 0.50 or >= 50% recovered; low otherwise. "
    "Every method of a comparison took the same {rule} ({amount:,}). The strongest attack is the method with "
    "the highest fidelity at the largest budget of images charged (ties: fewer images charged)."
)

SURROGATE_COLUMNS = [
    count("unique images"),
    count("images charged"),
    count("API calls"),
    count("optimizer steps"),
    count("forward passes"),
    count("kNN bank"),
    pct("kNN (k=1% of bank)"),
    pct("kNN k=20"),
    pct("kNN k=200"),
    pct("linear probe"),
    num("fidelity: centred cos"),
    num("fidelity: cos"),
    pct("coordinate fidelity", help="the target's linear head applied to the surrogate's features: same class"),
    pct("prediction agreement", help="Cont-Steal's agreement: each encoder's own probe predicts the same class"),
    seconds("wall s"),
]


def _recovered(run: RunRecord, ref: Reference | None) -> float | None:
    if ref is None or ref.random_init is None:
        return None
    gain = ref.target.knn - ref.random_init.knn
    if gain < MIN_TARGET_GAIN:
        return None
    return (run.score(ref.dataset, "knn") - ref.random_init.knn) / gain


def level_of(fidelity: float, recovered: float | None) -> str:
    """The risk level of one run (see :data:`RULE`)."""
    rec = recovered if recovered is not None and math.isfinite(recovered) else -math.inf
    if fidelity >= HIGH_FIDELITY or rec >= HIGH_RECOVERED:
        return "high"
    if fidelity >= MEDIUM_FIDELITY or rec >= MEDIUM_RECOVERED:
        return "medium"
    return "low"


_ORDER = {"low": 0, "medium": 1, "high": 2}


def _surrogate_table(title: str, runs: list[RunRecord], level_name: str, note: str) -> Table:
    table = Table(title, [key("method"), key(level_name), key("dataset"), *SURROGATE_COLUMNS], note=note)
    for r in sorted(runs, key=lambda r: (r.level, r.method)):
        for d in r.datasets:
            s = d.surrogate
            table.add(
                r.method, r.level, d.dataset, r.unique_images, r.query_images, r.api_calls, r.steps,
                r.forward_passes, d.n_train, s.knn, s.knn20, s.knn200, s.linear, d.cosine_centered, d.cosine,
                d.target_head_agreement, d.prediction_agreement, r.wall_seconds,
            )  # fmt: skip
    return table


def _reference_table(refs: list[Reference]) -> Table:
    table = Table(
        "Ceiling and floor: the target and a random-init surrogate",
        [
            key("encoder"),
            key("dataset"),
            count("kNN bank"),
            pct("kNN (k=1% of bank)"),
            pct("kNN k=20"),
            pct("kNN k=200"),
            pct("linear probe"),
            num("fidelity: centred cos"),
        ],
        note="The random-init encoder has the surrogate's architecture and made no query; its fidelity is what a "
        "'copy made of nothing' scores.",
    )
    for ref in refs:
        t = ref.target
        table.add("target", ref.dataset, ref.n_train, t.knn, t.knn20, t.knn200, t.linear, 1.0)
        if ref.random_init is not None:
            r = ref.random_init
            table.add(
                "random init", ref.dataset, ref.n_train, r.knn, r.knn20, r.knn200, r.linear, ref.random_init_fidelity
            )
    return table


def _versus_table(result: StealingAuditResult) -> Table | None:
    """RDA against the best other method at each level of each arm (the paper's "+1.22%" claim)."""
    if "rda" not in result.methods or len(result.methods) < 2:
        return None
    table = Table(
        "RDA against the best other method under the same compute",
        [
            key("arm"),
            key("level"),
            key("best other method"),
            count("RDA images charged"),
            count("other images charged"),
            pct("RDA linear probe"),
            pct("other linear probe"),
            pct("RDA - other, linear"),
            pct("RDA - other, kNN"),
            num("RDA - other, fidelity"),
        ],
        note=f"On {result.head}. Best other method: the highest linear-probe accuracy among the non-RDA methods at "
        "that level. Arm 'images': equal images charged; 'equal_n': equal distinct images (RDA charged N x P), "
        "the paper's comparison.",
    )
    head = result.head
    for arm in ("images", "equal_n"):
        for level in sorted({r.level for r in result.runs if r.arm == arm}):
            at = [r for r in result.runs if r.arm == arm and r.level == level and r.defense == "none"]
            rda = next((r for r in at if r.method == "rda"), None)
            others = [r for r in at if r.method != "rda"]
            if rda is None or not others:
                continue
            best = max(others, key=lambda r: r.score(head, "linear"))
            table.add(
                arm, level, best.method, rda.query_images, best.query_images, rda.score(head, "linear"),
                best.score(head, "linear"), rda.score(head, "linear") - best.score(head, "linear"),
                rda.score(head, "knn") - best.score(head, "knn"),
                rda.score(head, "cosine_centered") - best.score(head, "cosine_centered"),
            )  # fmt: skip
    return table if table.rows else None


def _defense_table(result: StealingAuditResult) -> Table | None:
    if not result.defense_runs and not result.defense_costs:
        return None
    head = result.head
    top = max(result.budgets)
    table = Table(
        f"Defenses: honest-user cost vs. the strongest attacks at {top:,} images charged",
        [
            key("defense"),
            key("method"),
            pct("honest kNN"),
            pct("honest linear"),
            num("honest cos to clean"),
            pct("stolen kNN"),
            num("stolen fidelity: centred cos"),
            count("images charged"),
            count("optimizer steps"),
        ],
        note=f"On {head}. Honest-user columns: a user's own downstream accuracy on the defended API's embeddings "
        "and their cosine to the clean ones; stolen columns: the surrogate trained through the defended API, "
        "compared with the undefended target; same compute rule as the comparison.",
    )
    costs = {c.defense: c for c in result.defense_costs}
    undefended = [r for r in result.runs if r.arm == "images" and r.level == top]
    methods = sorted({r.method for r in result.defense_runs}) or sorted({r.method for r in undefended})[:2]
    clean = next(iter(costs.values()), None)
    for r in undefended:
        if r.method in methods:
            table.add(
                "none", r.method, clean.knn_clean if clean else None, clean.linear_clean if clean else None, 1.0,
                r.score(head, "knn"), r.score(head, "cosine_centered"), r.query_images, r.steps,
            )  # fmt: skip
    for r in result.defense_runs:
        c = costs.get(r.defense)
        table.add(
            r.defense, r.method, c.knn_defended if c else None, c.linear_defended if c else None,
            c.cosine_to_clean if c else None, r.score(head, "knn"), r.score(head, "cosine_centered"),
            r.query_images, r.steps,
        )  # fmt: skip
    return table


def _advice(result: StealingAuditResult) -> list[Text]:
    head = result.head
    out: list[Text] = []
    costs = {c.defense: c for c in result.defense_costs}
    top = max(result.budgets)
    base = {r.method: r for r in result.runs if r.arm == "images" and r.level == top}
    for spec, c in costs.items():
        rs = [r for r in result.defense_runs if r.defense == spec]
        if not rs:
            continue
        worst = max(rs, key=lambda r: r.score(head, "cosine_centered"))
        before = base.get(worst.method)
        out.append(
            Text(
                "{defense}: honest users lose {lin_drop:.1%} of linear-probe accuracy (cosine {cos:.2f} to clean "
                "embeddings); {method} still reaches fidelity {fid:.2f} (undefended {fid0:.2f}).",
                {
                    "defense": spec,
                    "lin_drop": c.linear_clean - c.linear_defended,
                    "cos": c.cosine_to_clean,
                    "method": worst.method,
                    "fid": worst.score(head, "cosine_centered"),
                    "fid0": before.score(head, "cosine_centered") if before else math.nan,
                },
            )
        )
    return out


def build_stealing_section(result: StealingAuditResult) -> Section:
    """Headline (the strongest method against the best other one), verdict with controls, tables, advice."""
    head = result.head
    refs = {r.dataset: r for r in result.references}
    ref = refs.get(head)
    images = [r for r in result.runs if r.arm == "images" and r.defense == "none"]
    ranked = strongest_methods(result.runs, head)
    rule = RULE.format(rule=result.rule.replace("_", " "), amount=result.compute)
    controls = [
        Control(c.name, "positive" if c.kind == "positive" else "negative", "centred-cosine fidelity", c.fidelity,
                c.threshold, bool(c.fidelity >= c.threshold))
        for c in result.controls
    ]  # fmt: skip
    if not images:
        return Section(
            key="stealing",
            title="Encoder stealing",
            headline=Text("No stealing run fitted the budgets ({n} skipped).", {"n": len(result.skipped)}),
            verdict=Verdict("inconclusive", rule, controls),
            caveats=list(result.skipped),
        )
    levels = [(level_of(r.score(head, "cosine_centered"), _recovered(r, ref)), r) for r in images]
    level = max((lv for lv, _ in levels), key=lambda lv: _ORDER[lv])
    cheapest = min(
        (r for lv, r in levels if lv == level), key=lambda r: (r.query_images, -r.score(head, "cosine_centered"))
    )
    top = max(r.level for r in images)
    best = (
        next(r for r in images if r.method == ranked[0] and r.level == top)
        if any(r.method == ranked[0] and r.level == top for r in images)
        else max((r for r in images if r.method == ranked[0]), key=lambda r: r.level)
    )
    values: dict[str, Cell] = {
        "method": best.method,
        "charged": best.query_images,
        "unique": best.unique_images,
        "steps": best.steps,
        "fid": best.score(head, "cosine_centered"),
        "knn": best.score(head, "knn"),
        "tknn": ref.target.knn if ref else math.nan,
        "dataset": head,
        "level": level,
        "cmethod": cheapest.method,
        "ccharged": cheapest.query_images,
    }
    template = (
        "Strongest attack: {method}, fidelity {fid:.2f} (centred cosine) and kNN {knn:.1%} vs. the target's "
        "{tknn:.1%} on {dataset} with {charged:,} images charged ({unique:,} unique, {steps:,} optimizer steps"
    )
    template += ", like every method)" if result.rule == "steps" else ")"
    others = [r for r in images if r.level == best.level and r.method != best.method]
    if others:
        other = max(others, key=lambda r: r.score(head, "cosine_centered"))
        values |= {
            "other": other.method,
            "ofid": other.score(head, "cosine_centered"),
            "oknn": other.score(head, "knn"),
        }
        template += "; best other method {other}: fidelity {ofid:.2f}, kNN {oknn:.1%}"
    template += ". Risk {level}: reached by {cmethod} with {ccharged:,} images charged."
    tables = [
        _surrogate_table(
            f"Surrogates at equal images charged, equal {result.rule.replace('_', ' ')} ({result.compute:,})",
            [r for r in result.runs if r.arm == "images"],
            "budget (images charged)",
            "Each row: one method on one downstream dataset (fidelity is per dataset, never averaged across "
            "datasets). The victim saw 'unique images' distinct images; Cont-Steal's fresh views mean its unique "
            "images can be fewer than drawn. No model selection: the surrogate after its last step.",
        )
    ]
    equal_n = [r for r in result.runs if r.arm == "equal_n"]
    if equal_n:
        tables.append(
            _surrogate_table(
                f"Surrogates at equal distinct query images N (the paper's arm), equal "
                f"{result.rule.replace('_', ' ')} ({result.compute:,})",
                equal_n,
                "N (distinct images)",
                "Every method uses the same N images; RDA is charged N x P, Cont-Steal the images of its steps.",
            )
        )
    versus = _versus_table(result)
    if versus is not None:
        tables.append(versus)
    tables.append(_reference_table(result.references))
    caveats = [
        f"Scale: {result.surrogate} surrogate, {result.compute:,} {result.rule.replace('_', ' ')} per run "
        f"(RDA's paper: ResNet-18, 2,500 steps), one seed per audit seed; budgets "
        f"{', '.join(f'{b:,}' for b in result.budgets)}.",
        "Centred cosine subtracts each encoder's mean embedding: plain cosine is inflated for non-negative "
        "(post-ReLU) features.",
        f"kNN uses k = 1% of the bank ({ref.target.knn_k if ref else '?'} on {ref.n_train if ref else '?'} images); "
        "k = 20 and k = 200 are shown beside it because rankings can flip between them on small banks.",
        *result.skipped,
    ]
    if result.input_channels == 1:
        caveats.append(
            "The victim takes 1-channel images: RDA's colour augmentations (saturation, hue, grayscale) do nothing "
            "there, so its P prototype views differ little unless a grayscale view recipe is configured "
            "(prototype_recipe=rda-gray-prototype); see the median prototype norm in results.json."
        )
    costs: dict[str, Cell] = {
        "query_images": sum(r.query_images for r in result.runs + result.defense_runs),
        "api_calls": sum(r.api_calls for r in result.runs + result.defense_runs),
        "optimizer_steps": sum(r.steps for r in result.runs + result.defense_runs),
        "train_seconds": round(sum(r.train_seconds for r in result.runs + result.defense_runs), 1),
        "query_seconds": round(sum(r.query_seconds for r in result.runs + result.defense_runs), 1),
        "wall_seconds": result.wall_seconds,
    }
    config: dict[str, Any] = dict(result.config) | {"seed": result.seed, "query_pool": result.query_pool}
    return Section(
        key="stealing",
        title="Encoder stealing",
        headline=Text(template, values),
        verdict=Verdict(level, rule, controls),
        tables=tables,
        figures=[Figure(f.path, f.caption) for f in result.figures],
        costs=costs,
        config=config,
        caveats=caveats,
        todo=WhatToDo(
            advice=_advice(result),
            defenses=_defense_table(result),
            not_covered=[
                "Sybil accounts and per-user output transforms (B4B's remapping attack) were not run.",
                "Attacks that detect and undo a perturbation defense (e.g. BESA) were not run.",
                "Query sets from another distribution than the victim's training data were not tried.",
                "Ownership evidence (watermark, dataset inference) is measured by `encoder-audit verify`, not here.",
            ],
        ),
    )
