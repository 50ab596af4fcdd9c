"""The "Data protection" section: does Unlearnable Clusters keep a trainer from learning the protected images?

A pure function of :class:`~encoder_audit.audit.protection.ProtectionResult`. The card reads
"Protection holds" (``low``: the data owner's risk is low) or "Protection fails" (``high``).
"""

from __future__ import annotations

from ...report.model import (
    Cell,
    Column,
    Control,
    Section,
    Table,
    Text,
    Verdict,
    WhatToDo,
    count,
    key,
    literal,
    num,
    pct,
    seconds,
)
from ..protection import CLEAN, ORACLE, RANDOM, ProtectionResult, room_lost, strongest, worst_room_lost

__all__ = ["LABELS", "build_protection_section", "protection_verdict"]

LABELS = {
    "high": "Protection fails",
    "medium": "Protection partial",
    "low": "Protection holds",
    "inconclusive": "Protection inconclusive",
}
_LAB_ORDER = ["true", "coarse", "pseudo", "fine", "ssl"]
MIN_ROOM = 0.10  # the clean trainer must beat chance by this much (true labels) for a drop to mean anything


def _controls(result: ProtectionResult) -> list[Control]:
    out = []
    oracle = room_lost(result, ORACLE, "true")
    if oracle is not None:
        out.append(
            Control(
                "UC with the classes as clusters (oracle surrogate), true labels",
                "positive",
                "share of the trainer's room above chance lost",
                oracle,
                result.holds_at,
                oracle >= result.holds_at,
            )
        )
    rnd = room_lost(result, RANDOM, "true")
    if rnd is not None:
        out.append(
            Control(
                "uniform random noise at the same budget, true labels",
                "negative",
                "share of the trainer's room above chance lost",
                rnd,
                result.fails_below,
                rnd >= result.fails_below,
            )
        )
    return out


def protection_verdict(result: ProtectionResult) -> Verdict:
    """The level from the strongest protection's worst labeling, checked against the controls."""
    h, f = result.holds_at, result.fails_below
    rule = (
        "For each labeling, room lost = (clean - protected) / (clean - chance) of the trainer's final clean test "
        f"accuracy; the strongest protection is the one with the largest worst-case room lost. Protection holds "
        f"(low) when it loses at least {h:.0%} under every labeling, fails (high) when it loses less than {f:.0%} "
        f"under some labeling, partial (medium) otherwise. Controls: UC with the classes as clusters must lose at "
        f"least {h:.0%} (else a 'fails' reading is inconclusive: the evaluation cannot show protection at all); "
        f"random noise must lose less than {f:.0%} (else a 'holds' reading is inconclusive: any noise hurts this "
        f"trainer). Inconclusive whenever the clean trainer beats chance by less than {MIN_ROOM:.0%} (true labels)."
    )
    controls = _controls(result)
    best = strongest(result)
    worst = worst_room_lost(result, best) if best is not None else None
    if worst is None:
        return Verdict("inconclusive", rule + " No protection was crafted.", controls)
    clean = result.run(CLEAN, "true")
    if clean is not None and clean.final - clean.chance < MIN_ROOM:
        return Verdict("inconclusive", rule + " — the clean trainer is at chance here", controls)
    level = "low" if worst >= h else ("high" if worst < f else "medium")
    pos = [c for c in controls if c.kind == "positive"]
    neg = [c for c in controls if c.kind == "negative"]
    if level == "high" and pos and not all(c.passed for c in pos):
        return Verdict("inconclusive", rule + " — the positive control did not fire", controls)
    if level == "low" and neg and not all(c.passed for c in neg):
        return Verdict("inconclusive", rule + " — the negative control fired", controls)
    return Verdict(level, rule, controls)


def _accuracy_table(result: ProtectionResult) -> Table:
    t = Table(
        "Trainer clean test accuracy: clean vs protected training data",
        [
            key("protection"),
            key("labeling"),
            count("classes"),
            pct("final"),
            pct("peak"),
            pct("chance"),
            pct("room lost", 0, help="(clean - protected) / (clean - chance), final accuracy"),
        ],
        note="Lower accuracy = better protection. Peak = best epoch (an early-stopping trainer). The controls "
        "(uc-oracle, random) are trained under the true labels only.",
    )
    names = [CLEAN, *[p.name for p in result.protections]]
    for name in names:
        for lab in _LAB_ORDER:
            r = result.run(name, lab)
            if r is None:
                continue
            lost = None if name == CLEAN else room_lost(result, name, lab)
            t.add(name, lab, r.classes, r.final, r.peak, r.chance, lost)
    return t


def _protection_table(result: ProtectionResult) -> Table:
    t = Table(
        "Protections and their diagnostics",
        [
            key("protection"),
            Column("role"),
            Column("surrogate"),
            count("K"),
            pct("cluster purity"),
            num("cluster AMI"),
            pct("reach target centre", help="surrogate space: protected images nearest their target centre"),
            pct("stay in own cluster"),
            count("L-inf (/255)"),
            num("PSNR dB", 1),
            num("SSIM", 3),
            seconds("craft"),
        ],
        note="Purity and AMI of the protected images' clusters against their true labels. UC moves each cluster "
        "toward another cluster's centre; 'reach target centre' is the share that got there in the surrogate's "
        "own space. Perceptibility is measured on PNG-written files.",
    )
    for p in result.protections:
        t.add(
            p.name,
            p.role,
            p.surrogate,
            p.clusters,
            p.purity,
            p.ami,
            p.target_success,
            p.stay_own,
            p.linf_levels,
            p.psnr_db,
            p.ssim,
            p.craft_seconds,
        )
    return t


def _k_table(result: ProtectionResult) -> Table:
    t = Table(
        "Choosing K: purity and AMI of the surrogate's clusters on held-out labelled images",
        [key("surrogate"), key("K"), pct("purity"), num("AMI"), Column("chosen")],
        note="Rule: " + result.k_rule + ".",
    )
    for s in result.surrogates:
        for row in s.k_sweep:
            t.add(s.name, row.k, row.purity, row.ami, "yes" if row.k == s.chosen_k else "")
    return t


def _surrogate_table(result: ProtectionResult) -> Table:
    t = Table(
        "Surrogates",
        [key("surrogate"), Column("what it is"), seconds("training"), Column("used")],
    )
    for s in result.surrogates:
        t.add(s.name, s.description, s.train_seconds, s.skipped or "yes")
    return t


def _defenses(result: ProtectionResult) -> Table | None:
    if not result.countermeasures:
        return None
    base = result.run(CLEAN, "true")
    prot = result.run(result.countermeasures[0].protection, "true")
    t = Table(
        f"Countermeasures a trainer applies to {result.countermeasures[0].protection} (true labels)",
        [
            key("countermeasure"),
            pct("protected data"),
            pct("restored", help="protected accuracy with the countermeasure minus without it"),
            pct("clean data"),
            pct("cost to an honest trainer", help="clean accuracy without it minus with it"),
        ],
        note="A countermeasure that restores the protected accuracy to near clean breaks the protection; its cost "
        "is what it takes from a trainer on clean data.",
    )
    for c in result.countermeasures:
        t.add(
            c.countermeasure,
            c.protected_final,
            None if prot is None else c.protected_final - prot.final,
            c.clean_final,
            None if base is None else base.final - c.clean_final,
        )
    return t


def _headline(result: ProtectionResult, verdict: Verdict) -> Text:
    best = strongest(result)
    if best is None:
        return literal("No protection could be crafted: " + "; ".join(result.notes or ["no surrogate"]))
    p = next(x for x in result.protections if x.name == best)
    c, u = result.run(CLEAN, "true"), result.run(best, "true")
    assert c is not None and u is not None
    values: dict[str, Cell] = {
        "name": best,
        "k": p.clusters,
        "purity": p.purity,
        "eps": round(p.eps * 255),
        "clean": c.final,
        "prot": u.final,
    }
    text = (
        "The strongest protection, {name} (K={k}, cluster purity {purity:.0%}, eps {eps}/255), takes a "
        "fresh trainer from {clean:.1%} to {prot:.1%} clean test accuracy with the true labels"
    )
    others = [lab for lab in _LAB_ORDER if lab != "true" and result.run(best, lab) is not None]
    if others:
        lab = others[0]
        c2, u2 = result.run(CLEAN, lab), result.run(best, lab)
        assert c2 is not None and u2 is not None
        values |= {"lab": lab, "clean2": c2.final, "prot2": u2.final}
        text += " and from {clean2:.1%} to {prot2:.1%} with {lab} labels"
    oracle = result.run(ORACLE, "true")
    if oracle is not None:
        values["oracle"] = oracle.final
        text += "; with clusters that follow the classes UC reaches {oracle:.1%}"
    return Text(text + ".", values)


def _advice(result: ProtectionResult, verdict: Verdict) -> list[Text]:
    out = []
    best = strongest(result)
    p = next((x for x in result.protections if x.name == best), None)
    oracle = next((x for x in result.protections if x.name == ORACLE), None)
    if p is not None and verdict.level in ("high", "medium", "inconclusive"):
        values: dict[str, Cell] = {"purity": p.purity}
        text = (
            "UC protects only as far as the surrogate's clusters follow the classes a trainer will learn (purity "
            "{purity:.0%} here)"
        )
        r_or = room_lost(result, ORACLE, "true")
        if oracle is not None and r_or is not None:
            values["oracle"] = r_or
            text += "; with the classes as clusters the trainer lost {oracle:.0%} of its room"
        text += (
            ". Use a surrogate trained with labels on related data, and K near the number of classes (a class "
            "split over many clusters is learned from fewer images per pattern)."
        )
        out.append(Text(text, values))
    if verdict.level == "low":
        out.append(
            literal(
                "The protection held against this trainer; check it against adversarial training and JPEG before "
                "relying on it (see the countermeasure table when run)."
            )
        )
    out.append(
        literal("Publish only the protected PNG files (lossless); a JPEG re-encode of them changes the perturbation.")
    )
    return out


def _caveats(result: ProtectionResult) -> list[str]:
    out = [
        f"{result.train_images:,} protected images and {result.test_images:,} clean test images, one seed per run; "
        "differences of a few points are within run-to-run noise at this size.",
        "The trainer is a fresh "
        f"{result.trainer_config.get('arch', 'cnn-small')} trained {result.trainer_config.get('epochs')} epochs "
        "with crop and flip; a longer-trained or larger model may learn more from the protected images.",
        f"UC generators: {result.uc_config or 'official settings'} (official: 50 epochs, batch 256, ngf 64).",
        "The surrogate is the protector's own model, used white-box; the controls use the true labels only.",
        *result.notes,
    ]
    return out


def build_protection_section(result: ProtectionResult) -> Section:
    """The protection section: verdict with controls, accuracy/diagnostic/K tables, countermeasures."""
    verdict = protection_verdict(result)
    tables = [_accuracy_table(result), _protection_table(result), _k_table(result), _surrogate_table(result)]
    defenses = _defenses(result)
    figures = []
    if result.figure:
        from ...report.model import Figure

        figures.append(Figure(result.figure, "Clean test accuracy of a fresh trainer on clean vs protected data"))
    costs: dict[str, Cell] = {
        "query_images": 0,
        "api_calls": 0,
        "wall_seconds": result.wall_seconds,
        "protection_seconds": round(sum(p.craft_seconds for p in result.protections), 1),
        "surrogate_seconds": round(sum(s.train_seconds for s in result.surrogates), 1),
        "trainer_seconds": round(sum(r.seconds for r in result.runs), 1),
    }
    return Section(
        key="protection",
        title="Data protection",
        headline=_headline(result, verdict),
        verdict=verdict,
        labels=dict(LABELS),
        tables=tables,
        figures=figures,
        costs=costs,
        config={
            "eps": result.eps,
            "train_images": result.train_images,
            "test_images": result.test_images,
            "uc": result.uc_config,
            "trainer": result.trainer_config,
            "k_rule": result.k_rule,
        },
        caveats=_caveats(result),
        todo=WhatToDo(
            advice=_advice(result, verdict),
            defenses=defenses,
            not_covered=[
                "trainers that pre-train on other data and fine-tune on the protected images",
                "purification by diffusion models (AVATAR) and UEraser",
                "larger trainers and longer schedules than the one measured",
            ],
        ),
    )
