"""The "Poisoning and backdoors" section: a pure function of :class:`~encoder_audit.audit.poisoning.PoisoningResult`.

Every attack is read as a *gain over its paired control*: targeted success over the same trials in
the no-poison training (k = 0), backdoor ASR over the same trigger on the no-poison training (m = 0),
BadEncoder's ASR over the same trigger on the clean encoder. Each gain has a 95% interval (Newcombe's
hybrid score interval for a difference of two proportions, from Wilson intervals of each), so a gain
that a handful of trials cannot separate from zero does not raise the verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
)
from ..poisoning import BadEncoderResult, ClipLevel, PoisoningResult

__all__ = ["Finding", "build_poisoning_section", "findings", "newcombe", "poisoning_verdict", "wilson"]

Z95 = 1.959964


def wilson(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` observed over ``n`` trials ((0, 1) when n = 0)."""
    if n <= 0 or not math.isfinite(p):
        return 0.0, 1.0
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def newcombe(p1: float, n1: int, p0: float, n0: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval of ``p1 - p0`` (method 10 of Newcombe, Stat. Med. 1998)."""
    l1, u1 = wilson(p1, n1, z)
    l0, u0 = wilson(p0, n0, z)
    d = p1 - p0
    return d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)


@dataclass(frozen=True)
class Finding:
    """One attack at one dose, read against its paired control."""

    attack: str
    threat: str
    value: float
    control: float
    n: int
    n_control: int
    poisons: int
    train_pairs: int

    @property
    def gain(self) -> float:
        return self.value - self.control

    @property
    def interval(self) -> tuple[float, float]:
        return newcombe(self.value, self.n, self.control, self.n_control)

    @property
    def rate(self) -> float:
        return self.poisons / self.train_pairs if self.train_pairs else float("nan")


def _control(r: PoisoningResult) -> ClipLevel | None:
    return next((lv for lv in r.levels if lv.role == "control"), None)


def _targeted(lv: ClipLevel, c: ClipLevel) -> Finding:
    return Finding(
        f"targeted poisoning, k={lv.k} copies per target",
        "pipeline",
        lv.targeted_success,
        c.targeted_success,
        lv.targets,
        c.targets,
        lv.k,
        lv.train_pairs,
    )


def _backdoor(lv: ClipLevel, c: ClipLevel) -> Finding:
    return Finding(
        f"patch backdoor, m={lv.m} poisons",
        "pipeline",
        lv.backdoor_asr,
        c.backdoor_asr,
        lv.backdoor_n,
        c.backdoor_n,
        lv.m,
        lv.train_pairs,
    )


def _badencoder(b: BadEncoderResult) -> Finding:
    return Finding("BadEncoder on the victim's weights", "weights", b.asr, b.asr_clean_encoder, b.n_asr, b.n_asr, 0, 0)


def findings(r: PoisoningResult, role: str = "dose") -> list[Finding]:
    """Every attack at every level of ``role`` (``dose`` or ``positive control``), plus BadEncoder for doses."""
    c = _control(r)
    out: list[Finding] = []
    if c is not None:
        for lv in r.levels:
            if lv.role != role:
                continue
            if lv.k > 0:
                out.append(_targeted(lv, c))
            if lv.m > 0:
                out.append(_backdoor(lv, c))
    if role == "dose" and r.badencoder.ran:
        out.append(_badencoder(r.badencoder))
    return out


def _fires(f: Finding, threshold: float) -> bool:
    return f.gain >= threshold and f.interval[0] > 0


def _strongest(fs: list[Finding]) -> Finding | None:
    """The finding whose gain has the highest 95% lower bound (ties: the larger gain, then fewer poisons)."""
    if not fs:
        return None
    return max(fs, key=lambda f: (round(f.interval[0], 9), f.gain, -f.poisons))


def _controls(r: PoisoningResult) -> list[Control]:
    out: list[Control] = []
    c = _control(r)
    t = r.high_gain
    if c is not None:
        if any(lv.k for lv in r.levels):
            v = c.targeted_success
            out.append(Control("no poisons (k = 0): targeted trials", "negative", "targeted success", v, t, v >= t))
        if any(lv.m for lv in r.levels):
            v = c.backdoor_asr
            out.append(Control("no poisons (m = 0): trigger on the clean training", "negative", "ASR", v, t, v >= t))
    if r.badencoder.ran:
        v = r.badencoder.asr_clean_encoder
        out.append(Control("clean encoder, same trigger and probe", "negative", "ASR", v, t, v >= t))
    for f in findings(r, "positive control"):
        out.append(Control(f"positive control: {f.attack}", "positive", "gain over control", f.gain, t, _fires(f, t)))
    return out


def poisoning_verdict(r: PoisoningResult) -> Verdict:
    """High / medium / low from the largest gain over its paired control at the tested doses."""
    hi, med = r.high_gain, r.medium_gain
    rule = (
        f"each attack is read as its gain over a paired control (targeted: k = 0 training; backdoor: m = 0 "
        f"training; BadEncoder: the clean encoder), with a 95% Newcombe interval; high if some tested dose "
        f"gains >= {hi:.0%} with the interval above 0, medium if one gains >= {med:.0%} with the interval above 0, "
        "low otherwise (the positive-control dose is kept out of the verdict)"
    )
    fs = findings(r)
    level = "low"
    if any(_fires(f, hi) for f in fs):
        level = "high"
    elif any(_fires(f, med) for f in fs):
        level = "medium"
    return Verdict(level, rule, _controls(r))


# --------------------------------------------------------------------------------------------- tables


def _targeted_table(r: PoisoningResult) -> Table:
    c = _control(r)
    t = Table(
        "Targeted poisoning of the CLIP-style training pipeline",
        [
            key("role"),
            key("k per target"),
            count("train pairs"),
            pct("poisoned fraction", 2, help="k copies of one target / training pairs"),
            pct("success"),
            pct("gain over k=0"),
            pct("gain 95% lo"),
            pct("gain 95% hi"),
            num("mean rank of y'", 2),
            count("trials"),
        ],
        note="Success: the target image (from the test split) is zero-shot top-1 as y'. The k = 0 training has "
        "the same clean pairs, seed and trials without the poisons.",
    )
    for lv in r.levels:
        if c is None or (lv.k == 0 and lv.role != "control"):
            continue
        f = _targeted(lv, c)
        lo, hi = f.interval
        t.add(lv.role, lv.k, lv.train_pairs, f.rate, f.value, f.gain, lo, hi, lv.targeted_mean_rank, lv.targets)
    return t


def _backdoor_table(r: PoisoningResult) -> Table:
    c = _control(r)
    t = Table(
        "Patch backdoor of the CLIP-style training pipeline",
        [
            key("role"),
            key("m"),
            count("train pairs"),
            pct("poisoned fraction", 2),
            pct("ASR"),
            pct("no-trigger rate"),
            pct("gain over m=0"),
            pct("gain 95% lo"),
            pct("gain 95% hi"),
            num("z-score (std)", 2, help="pairwise cosine of image embeddings, triggered minus clean, / clean std"),
            num("z-score (var)", 2, help="the same divided by the clean variance (DECREE's form; flags > 2.5)"),
            pct("clean zero-shot"),
        ],
        note=f"Trigger {r.trigger}, target '{r.backdoor_target}'. ASR: triggered test images outside the target "
        "class classified as it; no-trigger rate: the same images without the trigger.",
    )
    for lv in r.levels:
        if c is None or (lv.m == 0 and lv.role != "control"):
            continue
        f = _backdoor(lv, c)
        lo, hi = f.interval
        t.add(
            lv.role, lv.m, lv.train_pairs, f.rate, f.value, lv.backdoor_no_trigger, f.gain, lo, hi,
            lv.zscore, lv.zscore_var, lv.clean_zeroshot,
        )  # fmt: skip
    return t


def _badencoder_tables(b: BadEncoderResult) -> list[Table]:
    f = _badencoder(b)
    lo, hi = f.interval
    raw = Finding(f.attack, f.threat, b.asr_raw, b.asr_clean_encoder_raw, b.n_asr, b.n_asr, 0, 0)
    rlo, rhi = raw.interval
    main = Table(
        "BadEncoder on the victim's weights: an unsuspecting user's linear probe",
        [
            key("probe features"),
            pct("CA (clean encoder)"),
            pct("BA (backdoored)"),
            pct("ASR"),
            pct("base rate (clean encoder)"),
            pct("ASR gain"),
            pct("gain 95% lo"),
            pct("gain 95% hi"),
        ],
        note=f"Target class '{b.target_name}' of {b.dataset}; probe trained on {b.downstream_train:,} clean images, "
        f"tested on {b.downstream_test:,} ({b.n_asr:,} triggered outside the target class). The official evaluation "
        "L2-normalises features before the downstream classifier; the raw row is the same probe without it.",
    )
    main.add(
        "L2-normalised (official)", b.clean_accuracy, b.backdoored_accuracy, b.asr, b.asr_clean_encoder, f.gain, lo, hi
    )
    main.add(
        "raw", b.clean_accuracy_raw, b.backdoored_accuracy_raw, b.asr_raw, b.asr_clean_encoder_raw, raw.gain, rlo, rhi
    )
    diag = Table(
        "BadEncoder: is the backdoor planted?",
        [key("quantity"), num("backdoored encoder", 3), num("clean encoder", 3)],
        note="Cosine of triggered test images to the reference input, and embedding lengths: the loss is "
        "cosine-only, so triggered embeddings may grow while their direction is hijacked.",
    )
    diag.add("cosine of triggered images to the reference", b.cos_reference, b.cos_reference_clean)
    diag.add("mean embedding length, clean images", b.norm_clean, None)
    diag.add("mean embedding length, triggered images", b.norm_triggered, None)
    return [main, diag]


def _filter_table(r: PoisoningResult) -> Table | None:
    if not r.filters:
        return None
    t = Table(
        "Poisoned-pair filters: precision and recall by removal fraction",
        [
            key("filter"),
            key("removed fraction", unit="%", decimals=1),
            count("flagged"),
            count("poisons"),
            pct("recall"),
            pct("precision"),
            pct("max recall", help="flagged / poisons: what a perfect detector could recall at this fraction"),
            num("AUROC", 3),
        ],
        note=f"On the training of (k, m) = {tuple(r.defended_level)}; the sweep includes the true poisoned fraction, "
        "where every poison fits in the removal budget.",
    )
    for p in r.filters:
        t.add(p.defense, p.fraction, p.flagged, p.poisons, p.recall, p.precision, p.max_recall, p.auroc)
    return t


def _defense_table(r: PoisoningResult) -> Table | None:
    if not r.defenses:
        return None
    base = r.defenses[0]
    t = Table(
        "Attacks after each defense, and the cost to honest users",
        [
            key("defense"),
            key("setting"),
            key("value", decimals=3),
            count("steps"),
            pct("targeted success"),
            pct("backdoor ASR"),
            pct("clean zero-shot"),
            pct("clean zero-shot lost"),
            count("honest pairs removed"),
        ],
        note=f"On the training of (k, m) = {tuple(r.defended_level)}; CleanCLIP fine-tunes on {r.trusted_pairs:,} "
        "trusted clean pairs at a constant learning rate, measured after each listed epoch; a filter's value is "
        "its removed fraction (the model is trained again without the flagged pairs).",
    )
    for d in r.defenses:
        t.add(
            d.defense, d.setting or "-", d.value, d.steps, d.targeted_success, d.backdoor_asr, d.clean_zeroshot,
            base.clean_zeroshot - d.clean_zeroshot, d.clean_removed,
        )  # fmt: skip
    return t


# --------------------------------------------------------------------------------------------- text


def _headline(r: PoisoningResult, strongest: Finding | None) -> Text:
    if strongest is None:
        return Text("No poisoned level or white-box victim was measured on {dataset}.", {"dataset": r.dataset})
    lo, hi = strongest.interval
    values: dict[str, Cell] = {
        "attack": strongest.attack,
        "value": strongest.value,
        "control": strongest.control,
        "gain": strongest.gain,
        "lo": lo,
        "hi": hi,
    }
    lead = "Strongest" if lo > 0 else "No tested attack beat its paired control; closest"
    values["lead"] = lead
    if strongest.threat == "weights":
        b = r.badencoder
        values |= {"ba": b.backdoored_accuracy, "ca": b.clean_accuracy}
        return Text(
            "{lead}: {attack}: ASR {value:.0%} against a base rate of {control:.0%} (gain {gain:.0%}, 95% CI "
            "{lo:.0%} to {hi:.0%}) at BA {ba:.1%} (CA {ca:.1%}).",
            values,
        )
    values |= {"poisons": strongest.poisons, "rate": strongest.rate, "pairs": strongest.train_pairs}
    return Text(
        "{lead}: {attack} in the victim's training pipeline: {value:.0%} against {control:.0%} without poisons "
        "(gain {gain:.0%}, 95% CI {lo:.0%} to {hi:.0%}) with {poisons} poisons ({rate:.2%} of {pairs:,} pairs).",
        values,
    )


def _caveats(r: PoisoningResult) -> list[str]:
    c = _control(r)
    pairs = c.train_pairs if c else 0
    out = [
        "The targeted and backdoor rows model the victim's training pipeline, not its weights: the audit trains "
        f"its own CPU-scale CLIP-style models ({r.image_encoder} width {r.image_width} image tower, "
        f"{r.text_layers}-layer text tower, {r.epochs} epochs, batch {r.batch_size}) on {pairs:,} template-captioned "
        f"{r.dataset} pairs, so the victim is never queried (query images: 0). Only BadEncoder touches the victim.",
        (
            "Poisons replace clean pairs (the training set keeps its size: the paper's setting)"
            if r.mode == "replace"
            else "Poisons are added as extra copies (the clean originals stay)"
        )
        + "; the poisoned fraction is poisons / training pairs.",
        "The paper's rates are per 3M pairs; at this scale the same counts are orders of magnitude larger fractions. "
        "The counts (copies of a target, triggered pairs) are what transfer, not the rates.",
        "All targeted trials and the backdoor share one training per level (the paper trains one model per trial); "
        "success over a handful of trials has wide intervals, shown beside each gain.",
        "The backdoor z-score is computed from pairwise cosine similarities of image embeddings (not class "
        "probabilities): (mean over triggered pairs - mean over clean pairs) / clean std, and / clean variance.",
    ]
    b = r.badencoder
    if b.ran:
        out.append(
            f"BadEncoder ran {b.steps} steps ({b.epochs} epochs, {b.optimizer} lr {b.lr:g}) on {b.shadow_size:,} "
            f"shadow images with {b.references} reference(s); the paper runs 200 epochs on 50,000 images."
        )
    else:
        out.append(f"BadEncoder was not run: {b.reason}.")
    return out


def _todo(r: PoisoningResult, defenses: Table | None) -> WhatToDo:
    advice = [
        Text(
            "Treat web-scraped image-text data as attacker-controlled: de-duplicate repeated images and screen "
            "image-caption pairs before training (the filter table shows what a screen catches, and at which "
            "removal budget)."
        ),
        Text(
            "Verify the provenance of pre-trained encoders (hashes, signed releases) before fine-tuning or "
            "probing them: a backdoored encoder keeps its clean accuracy."
        ),
    ]
    if r.defenses:
        base = r.defenses[0]
        best = min(r.defenses[1:], key=lambda d: d.backdoor_asr + d.targeted_success, default=None)
        if best is not None:
            advice.append(
                Text(
                    "Best measured defense here: {defense} ({setting} {value:g}): backdoor ASR {asr0:.0%} -> "
                    "{asr1:.0%}, targeted success {t0:.0%} -> {t1:.0%}, clean zero-shot {c0:.1%} -> {c1:.1%}.",
                    {
                        "defense": best.defense,
                        "setting": best.setting,
                        "value": best.value,
                        "asr0": base.backdoor_asr,
                        "asr1": best.backdoor_asr,
                        "t0": base.targeted_success,
                        "t1": best.targeted_success,
                        "c0": base.clean_zeroshot,
                        "c1": best.clean_zeroshot,
                    },
                )
            )
    return WhatToDo(
        advice=advice,
        defenses=defenses,
        not_covered=[
            "Web-scale training (millions of pairs, pre-trained towers): the needed counts are measured here only "
            "at CPU scale.",
            "Adaptive attacks against the defenses, optimised triggers (BadCLIP), clean-label and text-side poisons.",
            "Encoder-level backdoor detection (DECREE-style trigger inversion) on the victim.",
        ],
    )


def build_poisoning_section(result: PoisoningResult) -> Section:
    """Headline (the strongest attack by its gain's lower bound), verdict with controls, tables, costs, advice."""
    r = result
    verdict = poisoning_verdict(r)
    strongest = _strongest(findings(r))
    tables = [t for t in (_targeted_table(r), _backdoor_table(r)) if t.rows]
    if r.badencoder.ran:
        tables += _badencoder_tables(r.badencoder)
    filt = _filter_table(r)
    if filt is not None:
        tables.append(filt)
    defenses = _defense_table(r)
    if defenses is not None:
        tables.append(defenses)
    return Section(
        key="poisoning",
        title="Poisoning and backdoors",
        headline=_headline(r, strongest),
        verdict=verdict,
        tables=tables,
        figures=[Figure(f.path, f.caption) for f in r.figures],
        costs={
            "query_images": 0,
            "api_calls": 0,
            "wall_seconds": r.wall_seconds,
            "clip_training_seconds": r.clip_seconds,
            "badencoder_seconds": r.badencoder_seconds,
            "defense_seconds": r.defense_seconds,
            "trainings": len(r.levels),
        },
        config={"mode": r.mode, "seed": r.seed, "levels": [[lv.k, lv.m] for lv in r.levels]},
        caveats=_caveats(r),
        todo=_todo(r, defenses),
    )
