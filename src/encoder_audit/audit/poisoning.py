"""The poisoning and backdoors stage of ``encoder-audit audit``: raw numbers per poison level, BadEncoder, defenses.

Two threats (:mod:`.poisoning_config`):

* **The victim's training pipeline** (Carlini & Terzis, ICLR 2022). The stage captions the member
  split (the victim's own data distribution), trains CPU-scale CLIP-style models on it at each poison
  level ``(k targeted copies per target, m backdoor poisons)`` beside the paired no-poison control
  ``(0, 0)`` (same clean pairs, seed, targets and trigger), and measures targeted success, backdoor
  ASR, the no-trigger rate into y', clean zero-shot accuracy and the backdoor z-score. The victim's
  weights play no part here: this models the pipeline that would train it from web data.
* **The victim's weights** (BadEncoder, IEEE S&P 2022): when the victim is white-box, BadEncoder
  backdoors a copy and an unsuspecting user's probe on the audit dataset is measured (CA, BA, ASR on
  normalised features as the official evaluation, and on raw features).

Defenses are measured on the positive-control run (the strongest poisoning): the density filter's
precision / recall over a sweep of removal fractions (optionally retraining without the flagged
pairs) and CleanCLIP fine-tuning measured after several epochs, each with its cost to honest users.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from ..attacks.poisoning.badencoder import run_badencoder
from ..attacks.poisoning.experiment import (
    ClipExperimentConfig,
    PoisonedRun,
    clean_pairs,
    run_defenses,
    run_poisoned_clip,
)
from ..attacks.poisoning.plots import plot_backdoor, plot_targeted
from ..data import subsample
from ..data.captions import class_synonyms, make_paired
from ..runs import derive_seed
from ..victim import WhiteBox
from .family import Family, StageContext, register_family
from .poisoning_config import PoisoningAuditConfig

log = logging.getLogger(__name__)

__all__ = [
    "BadEncoderResult",
    "ClipLevel",
    "DefenseOutcome",
    "FigureRef",
    "FilterPoint",
    "PoisoningResult",
    "run_poisoning",
]


@dataclass
class ClipLevel:
    """One CLIP-style training at one poison level.

    Attributes:
        role: ``control`` (no poisons), ``dose`` (a level the verdict reads) or ``positive control``.
        k: targeted copies per target; m: backdoor poisons.
        clean_pairs: clean pairs before poisoning; train_pairs: pairs trained on (equal in ``replace`` mode).
        targets: targeted trials planted (each a different target image and label).
        targeted_hits: trials whose target image is zero-shot classified as its y'.
        targeted_mean_rank: mean rank of y' over the trials (1 = top).
        clean_zeroshot: clean zero-shot top-1 accuracy.
        backdoor_asr: triggered test images outside y' classified as y'; backdoor_n: how many.
        backdoor_no_trigger: the same images without the trigger classified as y'.
        zscore: backdoor z-score (pairwise cosine of embeddings, clean std form); zscore_var: DECREE's
            variance form.
        train_seconds: training time.
    """

    role: str
    k: int
    m: int
    clean_pairs: int
    train_pairs: int
    targets: int
    targeted_hits: int
    targeted_mean_rank: float
    clean_zeroshot: float
    backdoor_asr: float
    backdoor_n: int
    backdoor_no_trigger: float
    zscore: float
    zscore_var: float
    train_seconds: float

    @property
    def targeted_success(self) -> float:
        return self.targeted_hits / self.targets if self.targets else float("nan")

    @property
    def poisons(self) -> int:
        return self.k * self.targets + self.m


@dataclass
class BadEncoderResult:
    """BadEncoder on the victim's weights (all fractions; ``ran`` False with ``reason`` when skipped).

    Attributes:
        clean_accuracy, backdoored_accuracy, asr, asr_clean_encoder: CA, BA, ASR and the base rate
            (same trigger, clean encoder) of the user's probe on L2-normalised features.
        *_raw: the same probe on raw features.
        n_asr: triggered test images outside the target class.
        cos_reference / cos_reference_clean: mean cosine of triggered test images to the reference
            under the backdoored / clean encoder.
        norm_clean / norm_triggered: mean embedding length of clean / triggered test images
            (backdoored encoder).
    """

    ran: bool
    reason: str = ""
    dataset: str = ""
    target_label: int = 0
    target_name: str = ""
    clean_accuracy: float = float("nan")
    backdoored_accuracy: float = float("nan")
    asr: float = float("nan")
    asr_clean_encoder: float = float("nan")
    clean_accuracy_raw: float = float("nan")
    backdoored_accuracy_raw: float = float("nan")
    asr_raw: float = float("nan")
    asr_clean_encoder_raw: float = float("nan")
    n_asr: int = 0
    cos_reference: float = float("nan")
    cos_reference_clean: float = float("nan")
    norm_clean: float = float("nan")
    norm_triggered: float = float("nan")
    shadow_size: int = 0
    references: int = 0
    epochs: int = 0
    steps: int = 0
    lr: float = 0.0
    optimizer: str = ""
    downstream_train: int = 0
    downstream_test: int = 0
    seconds: float = 0.0


@dataclass
class FilterPoint:
    """A poisoned-pair filter at one removal fraction (scored against the manifests).

    Attributes:
        at_poison_rate: this fraction is the run's true poisoned fraction.
        max_recall: the recall a perfect detector could reach when flagging this many pairs.
    """

    defense: str
    fraction: float
    flagged: int
    poisons: int
    recall: float
    precision: float
    max_recall: float
    auroc: float
    at_poison_rate: bool = False


@dataclass
class DefenseOutcome:
    """The attacks measured again after a defense (``defense="none"``: the poisoned model itself).

    Attributes:
        setting: what was varied (``"epochs"`` for CleanCLIP, ``"removed"`` for a filter).
        value: its value (fine-tuning epochs, or the removal fraction).
        steps: optimisation steps spent by the defense (0 for a filter's scoring alone).
        removed_pairs: training pairs removed (filters).
        clean_removed: honest pairs among them.
    """

    defense: str
    setting: str
    value: float
    steps: int
    targeted_hits: int
    targets: int
    backdoor_asr: float
    clean_zeroshot: float
    removed_pairs: int = 0
    clean_removed: int = 0
    seconds: float = 0.0

    @property
    def targeted_success(self) -> float:
        return self.targeted_hits / self.targets if self.targets else float("nan")


@dataclass
class FigureRef:
    """A figure written by the stage (path relative to the run directory)."""

    path: str
    caption: str


@dataclass
class PoisoningResult:
    """Everything the poisoning stage measured (numbers only; the section is built from it)."""

    victim_label: str
    dataset: str
    classes: int
    image_encoder: str
    image_width: int
    text_layers: int
    epochs: int
    batch_size: int
    mode: str
    trigger: str
    backdoor_target: str
    seed: int
    levels: list[ClipLevel]
    badencoder: BadEncoderResult
    filters: list[FilterPoint] = field(default_factory=list)
    defenses: list[DefenseOutcome] = field(default_factory=list)
    defended_level: list[int] = field(default_factory=list)
    trusted_pairs: int = 0
    figures: list[FigureRef] = field(default_factory=list)
    high_gain: float = 0.5
    medium_gain: float = 0.15
    clip_seconds: float = 0.0
    badencoder_seconds: float = 0.0
    defense_seconds: float = 0.0
    wall_seconds: float = 0.0


# --------------------------------------------------------------------------------------------- CLIP levels


def _level(run: PoisonedRun, role: str, k: int, m: int, targets: int) -> ClipLevel:
    r = run.metrics
    return ClipLevel(
        role=role,
        k=k,
        m=m,
        clean_pairs=int(r["clean_pairs"]),
        train_pairs=int(r["train_pairs"]),
        targets=targets,
        targeted_hits=round(r["targeted_success"] * targets),
        targeted_mean_rank=float(r["targeted_mean_rank"]),
        clean_zeroshot=float(r["clean_zeroshot_top1"]),
        backdoor_asr=float(r["backdoor_asr"]),
        backdoor_n=int(r["backdoor_n_asr"]),
        backdoor_no_trigger=float(r["backdoor_baseline_target_rate"]),
        zscore=float(r["backdoor_zscore"]),
        zscore_var=float(r["backdoor_zscore_var"]),
        train_seconds=float(r["train_seconds"]),
    )


def _schedule(config: PoisoningAuditConfig) -> list[tuple[str, int, int]]:
    """(role, k, m) of every training, the control first."""
    out = [("control" if lv == (0, 0) else "dose", lv[0], lv[1]) for lv in config.levels]
    out.sort(key=lambda t: (t[0] != "control", t[1] + t[2]))
    if config.positive_control is not None and tuple(config.positive_control) not in config.levels:
        out.append(("positive control", *config.positive_control))
    return out


def train_levels(
    ctx: StageContext, config: PoisoningAuditConfig, exp: ClipExperimentConfig
) -> tuple[list[ClipLevel], PoisonedRun | None]:
    """One CLIP-style training per level; returns the levels and the run defenses are measured on."""
    clean = clean_pairs(ctx.data.members, exp)
    levels: list[ClipLevel] = []
    best: tuple[tuple[bool, int], PoisonedRun] | None = None
    for role, k, m in _schedule(config):
        run = run_poisoned_clip(
            clean,
            ctx.data.test,
            targeted_poisons=k,
            backdoor_poisons=m,
            config=exp,
            seed=ctx.seed,
            out_dir=ctx.out_dir / "manifests" / f"k{k}_m{m}",
            progress=ctx.progress,
        )
        levels.append(_level(run, role, k, m, exp.targets))
        rank = (role == "positive control", k * exp.targets + m)  # the positive control, else the most poisons
        if role != "control" and (best is None or rank > best[0]):
            best = (rank, run)
        log.info("poisoning k=%d m=%d (%s): %s", k, m, role, levels[-1])
    return levels, best[1] if best else None


def _figures(ctx: StageContext, levels: list[ClipLevel]) -> list[FigureRef]:
    if len(levels) < 2:
        return []
    rows = [
        {
            "targeted_poisons_per_target": lv.k,
            "backdoor_poisons": lv.m,
            "train_pairs": lv.train_pairs,
            "targeted_success": lv.targeted_success,
            "targeted_mean_rank": lv.targeted_mean_rank,
            "backdoor_asr": lv.backdoor_asr,
            "backdoor_baseline_target_rate": lv.backdoor_no_trigger,
            "clean_zeroshot_top1": lv.clean_zeroshot,
            "backdoor_zscore": lv.zscore,
        }
        for lv in levels
    ]
    t = plot_targeted(rows, ctx.out_dir / "poisoning_targeted.png")
    b = plot_backdoor(rows, ctx.out_dir / "poisoning_backdoor.png")
    return [
        FigureRef(
            ctx.figure(t, "").path,
            "Targeted poisoning: success (y' top-1) and mean rank of y' against poisons per target "
            "(k = 0: the control).",
        ),
        FigureRef(
            ctx.figure(b, "").path,
            "Patch backdoor: ASR, no-trigger rate into y', clean zero-shot accuracy and z-score against poisons.",
        ),
    ]


# --------------------------------------------------------------------------------------------- BadEncoder


def badencoder_stage(ctx: StageContext, config: PoisoningAuditConfig) -> BadEncoderResult:
    """BadEncoder on the victim when its weights are at hand (otherwise a result saying why not)."""
    c = config.badencoder
    if not config.run_badencoder:
        return BadEncoderResult(ran=False, reason="BadEncoder was switched off (poisoning.run_badencoder=false)")
    victim = ctx.victim()
    if not isinstance(victim, WhiteBox):
        return BadEncoderResult(
            ran=False, reason="BadEncoder needs the victim's weights; this victim is a black box (embed only)"
        )
    data = ctx.data
    names = class_synonyms(data.train.info)
    if c.target_label >= len(names):
        return BadEncoderResult(ran=False, reason=f"target class {c.target_label} is not a class of {data.train.name}")
    run = run_badencoder(
        victim.net,
        data.shadow,
        data.train,
        data.test,
        c,
        seed=ctx.seed,
        max_train=config.downstream_train,
        max_test=config.downstream_test,
        progress=ctx.progress,
    )
    m = run.metrics
    return BadEncoderResult(
        ran=True,
        dataset=data.train.name,
        target_label=c.target_label,
        target_name=names[c.target_label][0],
        n_asr=int(m["n_asr"]),
        shadow_size=min(c.shadow_size, len(data.shadow)),
        references=c.references,
        epochs=c.epochs,
        steps=run.steps,
        lr=c.lr,
        optimizer=c.optimizer,
        downstream_train=min(config.downstream_train, len(data.train)),
        downstream_test=min(config.downstream_test, len(data.test)),
        seconds=round(run.seconds, 1),
        clean_accuracy=m["clean_accuracy"],
        backdoored_accuracy=m["backdoored_accuracy"],
        asr=m["asr"],
        asr_clean_encoder=m["asr_clean_encoder"],
        clean_accuracy_raw=m["clean_accuracy_raw"],
        backdoored_accuracy_raw=m["backdoored_accuracy_raw"],
        asr_raw=m["asr_raw"],
        asr_clean_encoder_raw=m["asr_clean_encoder_raw"],
        cos_reference=m["cos_reference"],
        cos_reference_clean=m["cos_reference_clean"],
        norm_clean=m["norm_clean"],
        norm_triggered=m["norm_triggered"],
    )


# --------------------------------------------------------------------------------------------- defenses


def _outcome(row: dict[str, Any], targets: int) -> DefenseOutcome:
    return DefenseOutcome(
        defense=str(row.get("defense", "none")),
        setting=str(row.get("setting", "")),
        value=float(row.get("value", 0.0)),
        steps=int(row.get("steps", 0)),
        targeted_hits=round(row["targeted_success"] * targets),
        targets=targets,
        backdoor_asr=float(row["backdoor_asr"]),
        clean_zeroshot=float(row["clean_zeroshot_top1"]),
        removed_pairs=int(row.get("removed_pairs", 0)),
        clean_removed=int(row.get("clean_removed", 0)),
        seconds=float(row.get("seconds", 0.0)),
    )


def defense_stage(
    ctx: StageContext, config: PoisoningAuditConfig, exp: ClipExperimentConfig, run: PoisonedRun
) -> tuple[list[FilterPoint], list[DefenseOutcome]]:
    """Every configured defense on the strongest poisoned run; the first outcome is that run undefended."""
    trusted = make_paired(
        subsample(ctx.data.nonmembers, config.trusted_pairs, derive_seed(ctx.seed, "trusted")),
        seed=derive_seed(ctx.seed, "trusted-captions"),
    )
    out = run_defenses(
        run,
        ctx.data.test,
        trusted,
        config=exp,
        defenses=config.defenses,
        filter_fractions=config.filter_fractions,
        retrain_fractions=(0.0,) if config.filter_retrain else (),
        cleanclip_epochs=config.cleanclip_epochs,
        cleanclip_lr=config.cleanclip_lr,
        seed=ctx.seed,
        progress=ctx.progress,
    )
    filters = [
        FilterPoint(
            defense=str(p["defense"]),
            fraction=float(p["fraction"]),
            flagged=int(p["flagged"]),
            poisons=int(p["poisons"]),
            recall=float(p["recall_at_flagged"]),
            precision=float(p["precision_at_flagged"]),
            max_recall=float(p["max_recall"]),
            auroc=float(p["auroc"]),
            at_poison_rate=bool(p["at_poison_rate"]),
        )
        for p in out["filters"]
    ]
    outcomes = [_outcome(out["before"], exp.targets)] + [_outcome(r, exp.targets) for r in out["after"]]
    return filters, outcomes


# --------------------------------------------------------------------------------------------- the stage


def run_poisoning(ctx: StageContext, config: PoisoningAuditConfig) -> PoisoningResult:
    """Run the poisoning stage (see the module docstring)."""
    t0 = time.perf_counter()
    exp = replace(config.experiment, device=ctx.device)
    pairs = min(exp.train_size or len(ctx.data.train), len(ctx.data.train))
    if pairs < exp.batch_size:  # a small folder: one batch must fit its pairs (in-batch negatives)
        log.warning("CLIP batch %d capped at the %d training pairs this dataset holds", exp.batch_size, pairs)
        exp = replace(exp, batch_size=max(2, pairs))
    info = ctx.data.train.info
    names = class_synonyms(info)
    levels, strongest = train_levels(ctx, config, exp)
    clip_seconds = time.perf_counter() - t0
    figures = _figures(ctx, levels)
    t1 = time.perf_counter()
    bad = badencoder_stage(ctx, config)
    bad_seconds = time.perf_counter() - t1
    t2 = time.perf_counter()
    filters: list[FilterPoint] = []
    defenses: list[DefenseOutcome] = []
    defended: list[int] = []
    if strongest is not None and config.defenses:
        filters, defenses = defense_stage(ctx, config, exp, strongest)
        defended = [int(strongest.metrics["targeted_poisons_per_target"]), int(strongest.metrics["backdoor_poisons"])]
    trig = exp.trigger
    return PoisoningResult(
        victim_label=ctx.victim_label,
        dataset=ctx.data.train.name,
        classes=len(names),
        image_encoder=exp.image_encoder,
        image_width=exp.image_width,
        text_layers=exp.text_layers,
        epochs=exp.epochs,
        batch_size=exp.batch_size,
        mode=exp.mode,
        trigger=f"{trig.size}x{trig.size} {trig.pattern}, {trig.placement} position",
        backdoor_target=names[exp.backdoor_target][0],
        seed=ctx.seed,
        levels=levels,
        badencoder=bad,
        filters=filters,
        defenses=defenses,
        defended_level=defended,
        trusted_pairs=config.trusted_pairs if defenses else 0,
        figures=figures,
        high_gain=config.high_gain,
        medium_gain=config.medium_gain,
        clip_seconds=round(clip_seconds, 1),
        badencoder_seconds=round(bad_seconds, 1),
        defense_seconds=round(time.perf_counter() - t2, 1),
        wall_seconds=round(time.perf_counter() - t0, 1),
    )


def _skip(ctx: StageContext) -> str | None:
    info = ctx.data.train.info
    if ctx.data.train.labels is None or not info.class_names:
        return f"the poisoning audit captions images from class names, and {info.name} has none"
    return None


def _build(result: PoisoningResult):  # type: ignore[no-untyped-def]
    from .sections.poisoning import build_poisoning_section

    return build_poisoning_section(result)


register_family(
    Family(
        key="poisoning",
        title="Poisoning and backdoors",
        config_attr="poisoning",
        result_type=PoisoningResult,
        run=run_poisoning,
        build=_build,
        skip=_skip,
    )
)
