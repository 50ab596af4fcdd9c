"""The data-protection stage of the audit: can a trainer still learn from images protected with Unlearnable Clusters?

Zhang et al., "Unlearnable Clusters: Towards Label-agnostic Unlearnable Examples", CVPR 2023
(arXiv 2301.01217). A data owner protects images (the query split here) with UC crafted on a
surrogate; a fresh trainer learns from the protected copies under labels of its own choosing and is
scored on clean test images (lower = better protection).

What the stage measures, per surrogate (:attr:`ProtectionAuditConfig.surrogates`):

1. **K by a measured rule.** The surrogate's K-means clusters are what UC perturbs, and a cluster-wise
   perturbation teaches a trainer a shortcut only as far as the clusters follow the classes. K is
   swept over ``k_candidates`` on labelled images held out of the surrogate's training (the
   protector's own labelled data), and the smallest K within ``k_tolerance`` of the best AMI is
   used (:func:`~encoder_audit.attacks.unlearnable.clustering.choose_k`; purity is reported too).
2. **Diagnostics.** Cluster purity and AMI of the protected images' clusters against their true labels,
   and the surrogate-space check (share of protected images nearest their target centre).
3. **The trainer.** Clean test accuracy (final and peak) of a fresh classifier trained on the clean and
   on each protected set under every labeling, with the chance level of each labeling.

Controls (true labels): UC with the classes as clusters (positive: must protect) and uniform random
noise at the same budget (negative: must not). Optional countermeasures (adversarial training, MixUp,
JPEG, blur) are applied by the trainer to the strongest protection and to clean data, so their cost to
an honest trainer is measured beside what they restore.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..config import config_to_dict
from ..data import subsample
from ..data.base import ImageDataset
from ..runs import derive_seed
from ..victim import Encoder, WhiteBox
from .family import Family, StageContext, register_family
from .protection_config import ProtectionAuditConfig

__all__ = [
    "CountermeasureRun",
    "ProtectionResult",
    "ProtectionRun",
    "SurrogateRun",
    "TrainerRun",
    "run_protection",
]

log = logging.getLogger(__name__)

CLEAN = "clean"
ORACLE = "uc-oracle"
RANDOM = "random"


@dataclass
class KChoiceRow:
    """One candidate K: purity and AMI of K-means on held-out labelled images (fractions)."""

    k: int
    purity: float
    ami: float


@dataclass
class SurrogateRun:
    """One protector's surrogate.

    Attributes:
        name: ``supervised``, ``victim`` or ``simclr``.
        description: what it is (architecture, training data, epochs).
        train_seconds: time spent training it here (0 for the victim).
        k_sweep: purity/AMI per candidate K on held-out labelled images.
        chosen_k: the K the rule picked.
        skipped: why it was not used ("" when used).
    """

    name: str
    description: str
    train_seconds: float = 0.0
    k_sweep: list[KChoiceRow] = field(default_factory=list)
    chosen_k: int = 0
    skipped: str = ""


@dataclass
class ProtectionRun:
    """One crafted protection of the protected images.

    Attributes:
        name: ``uc-supervised``, ``uc-victim``, ``uc-oracle`` (positive control), ``random`` (negative).
        method: registry name (``uc``, ``random``).
        role: ``method``, ``positive-control`` or ``negative-control``.
        surrogate: the surrogate's name ("" for random noise).
        eps: L-inf budget (fraction of the pixel range).
        clusters: K (0 for sample-wise noise).
        purity, ami: the protected images' clusters against their true labels (None: not cluster-wise).
        target_success: share of protected images nearest their target centre in the surrogate's space.
        stay_own: share still nearest their own cluster's centre.
        linf_levels: largest |delta| on the uint8 images, in grey levels.
        psnr_db, ssim: perceptibility on PNG-written files.
        craft_seconds: crafting time.
    """

    name: str
    method: str
    role: str
    surrogate: str
    eps: float
    clusters: int
    purity: float | None
    ami: float | None
    target_success: float | None
    stay_own: float | None
    linf_levels: int
    psnr_db: float
    ssim: float
    craft_seconds: float


@dataclass
class TrainerRun:
    """A fresh trainer on one training set under one labeling; accuracies on the clean test set.

    Attributes:
        protection: ``clean`` or a :attr:`ProtectionRun.name`.
        labeling: ``true``, ``coarse``, ``pseudo`` or ``ssl``.
        classes: classes of the labeling.
        chance: accuracy of predicting the most frequent test class.
        final, peak: final-epoch and best-epoch accuracy.
        history: accuracy after every epoch.
        seconds: training time.
    """

    protection: str
    labeling: str
    classes: int
    chance: float
    final: float
    peak: float
    history: list[float] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class CountermeasureRun:
    """The trainer applies a countermeasure (true labels) to clean data and to the strongest protection."""

    countermeasure: str
    protection: str
    clean_final: float
    protected_final: float
    clean_peak: float
    protected_peak: float
    note: str = ""


@dataclass
class ProtectionResult:
    """Raw numbers of one seed of the protection stage."""

    seed: int
    dataset: str
    train_images: int
    test_images: int
    eps: float
    uc_config: dict[str, Any]
    trainer_config: dict[str, Any]
    k_rule: str
    holds_at: float
    fails_below: float
    surrogates: list[SurrogateRun] = field(default_factory=list)
    protections: list[ProtectionRun] = field(default_factory=list)
    runs: list[TrainerRun] = field(default_factory=list)
    countermeasures: list[CountermeasureRun] = field(default_factory=list)
    figure: str = ""
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def run(self, protection: str, labeling: str) -> TrainerRun | None:
        """The trainer run of ``protection`` under ``labeling`` (None if not run)."""
        for r in self.runs:
            if r.protection == protection and r.labeling == labeling:
                return r
        return None


# --------------------------------------------------------------------------------------------- surrogates


def _split_shadow(shadow: ImageDataset, holdout: float, seed: int) -> tuple[ImageDataset, ImageDataset]:
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(shadow), generator=g)
    n_hold = max(1, round(holdout * len(shadow)))
    return shadow.subset(perm[n_hold:].sort().values), shadow.subset(perm[:n_hold].sort().values)


def _surrogate(
    name: str, ctx: StageContext, config: ProtectionAuditConfig, fit_data: ImageDataset
) -> tuple[Encoder | None, SurrogateRun]:
    """The encoder of surrogate ``name`` (None and a reason when it cannot be used)."""
    from ..attacks.unlearnable.surrogate import train_surrogate

    if name == "victim":
        victim = ctx.victim()
        if not isinstance(victim, WhiteBox):
            return None, SurrogateRun(name, ctx.victim_label, skipped="the victim's weights are not at hand")
        return victim, SurrogateRun(name, f"the encoder under audit ({ctx.victim_label})")
    opts = dict(config.surrogate_train)
    t0 = time.perf_counter()
    enc = train_surrogate(
        fit_data, "supervised" if name == "supervised" else "simclr", seed=ctx.seed, device=ctx.device, **opts
    )
    seconds = time.perf_counter() - t0
    arch = opts.get("arch", "cnn-small")
    how = "supervised with labels" if name == "supervised" else "SimCLR, no labels"
    desc = f"{arch} {how}, {opts.get('epochs', 8)} epochs on {len(fit_data):,} shadow images (disjoint)"
    return enc, SurrogateRun(name, desc, train_seconds=round(seconds, 1))


def _choose_k(
    enc: Encoder, held: ImageDataset, n_protected: int, config: ProtectionAuditConfig, seed: int
) -> tuple[list[KChoiceRow], int]:
    from ..attacks.unlearnable.clustering import choose_k, embed_dataset, sweep_k

    assert held.labels is not None
    cands = tuple(k for k in config.k_candidates if k * config.min_cluster_images <= n_protected)
    cands = cands or (min(config.k_candidates),)
    feats = embed_dataset(enc, held)
    sweep = sweep_k(feats, held.labels, cands, seed=seed, n_init=1)
    if not sweep:
        k = max(2, min(cands[0], len(held) // 2))
        return [], k
    return [KChoiceRow(c.k, c.purity, c.ami) for c in sweep], choose_k(sweep, config.k_tolerance)


# --------------------------------------------------------------------------------------------- protections


def _protect(
    name: str,
    method: str,
    role: str,
    train: ImageDataset,
    options: dict[str, Any],
    surrogate: Encoder | None,
    surrogate_name: str,
    progress: bool | None,
) -> tuple[ImageDataset, ProtectionRun]:
    from ..attacks.unlearnable import create_protection
    from ..attacks.unlearnable.clustering import agreement, purity
    from ..attacks.unlearnable.perceptibility import perceptibility

    prot = create_protection(method, options, surrogate=surrogate).protect(train, progress=progress)
    pct = perceptibility(train, prot.dataset)
    groups = prot.groups
    cluster_wise = groups is not None and train.labels is not None
    run = ProtectionRun(
        name=name,
        method=method,
        role=role,
        surrogate=surrogate_name,
        eps=prot.eps,
        clusters=int(groups.max()) + 1 if groups is not None else 0,
        purity=purity(groups, train.labels) if cluster_wise else None,  # type: ignore[arg-type]
        ami=agreement(groups, train.labels) if cluster_wise else None,  # type: ignore[arg-type]
        target_success=prot.meta.get("target_success"),
        stay_own=prot.meta.get("stay_own"),
        linf_levels=int(pct["linf_levels"]),
        psnr_db=float(pct["psnr_db"]),
        ssim=float(pct["ssim_mean"]),
        craft_seconds=round(prot.seconds, 1),
    )
    log.info(
        "protection %s: K=%d purity %s AMI %s target success %s (%.0f s)",
        name,
        run.clusters,
        run.purity,
        run.ami,
        run.target_success,
        prot.seconds,
    )
    return prot.dataset, run


def _uc_options(config: ProtectionAuditConfig, k: int, seed: int, **extra: Any) -> dict[str, Any]:
    return {**config.uc, "eps": config.eps, "clusters": k, "seed": seed, **extra}


# --------------------------------------------------------------------------------------------- trainer


def _train_all(
    sets: dict[str, ImageDataset],
    test: ImageDataset,
    labelings: list[Any],
    trainer: Any,
    only_true: set[str],
) -> list[TrainerRun]:
    from ..attacks.unlearnable.evaluation import chance_level, evaluate_protection

    runs = []
    for name, ds in sets.items():
        labs = [lab for lab in labelings if lab.name == "true"] if name in only_true else labelings
        res = evaluate_protection(ds, test, labs, trainer)
        for lab in labs:
            r = res[lab.name]
            runs.append(
                TrainerRun(
                    protection=name,
                    labeling=lab.name,
                    classes=lab.num_classes,
                    chance=chance_level(lab.test),
                    final=r["final"],
                    peak=r["peak"],
                    history=list(r["history"]),
                    seconds=r["seconds"],
                )
            )
    return runs


def strongest(result: ProtectionResult) -> str | None:
    """The protection (role ``method``) with the largest worst-case loss of room over the labelings.

    The rule: for each labeling, ``(clean - protected) / (clean - chance)`` of the final accuracy; a
    protection scores its smallest value over the labelings (protection must hold whatever the labels);
    the highest score wins.
    """
    best, score = None, float("-inf")
    for p in result.protections:
        if p.role != "method":
            continue
        s = worst_room_lost(result, p.name)
        if s is not None and s > score:
            best, score = p.name, s
    return best


def room_lost(result: ProtectionResult, protection: str, labeling: str) -> float | None:
    """``(clean - protected) / (clean - chance)`` of the final accuracy under ``labeling``."""
    c, p = result.run(CLEAN, labeling), result.run(protection, labeling)
    if c is None or p is None:
        return None
    room = max(c.final - c.chance, 1e-6)
    return (c.final - p.final) / room


def worst_room_lost(result: ProtectionResult, protection: str) -> float | None:
    """The smallest :func:`room_lost` over the labelings ``protection`` was trained under."""
    vals = [room_lost(result, protection, r.labeling) for r in result.runs if r.protection == protection]
    nums = [v for v in vals if v is not None]
    return min(nums) if nums else None


def _countermeasures(
    result: ProtectionResult,
    sets: dict[str, ImageDataset],
    test: ImageDataset,
    labelings: list[Any],
    trainer: Any,
    specs: tuple[str, ...],
) -> list[CountermeasureRun]:
    from ..attacks.unlearnable.countermeasures import parse_countermeasure, train_with_countermeasure

    best = strongest(result)
    if not specs or best is None:
        return []
    true = next(lab for lab in labelings if lab.name == "true")
    out = []
    for spec in specs:
        cm = parse_countermeasure(spec, channels=sets[CLEAN].info.channels)
        c = train_with_countermeasure(sets[CLEAN], test, true, cm, trainer)
        p = train_with_countermeasure(sets[best], test, true, cm, trainer)
        out.append(CountermeasureRun(spec, best, c["final"], p["final"], c["peak"], p["peak"], cm.note))
    return out


# --------------------------------------------------------------------------------------------- figure


def _figure(result: ProtectionResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    names = [CLEAN, *[p.name for p in result.protections]]
    labelings = sorted({r.labeling for r in result.runs}, key=["true", "coarse", "pseudo", "fine", "ssl"].index)
    fig = Figure(figsize=(6.4, 3.4))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(len(names), 1)
    for j, name in enumerate(names):
        xs, ys, peaks = [], [], []
        for i, lab in enumerate(labelings):
            r = result.run(name, lab)
            if r is not None:
                xs.append(i + j * width)
                ys.append(r.final)
                peaks.append(r.peak)
        ax.bar(xs, ys, width, label=name)
        ax.scatter(xs, peaks, marker="_", s=120, color="black")
    ax.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(labelings))], labelings)
    ax.set_ylabel("clean test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("Trainer on clean vs protected data (bar: final, tick: peak)", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


# --------------------------------------------------------------------------------------------- the stage


def _data(ctx: StageContext, config: ProtectionAuditConfig) -> tuple[ImageDataset, ImageDataset]:
    train = subsample(ctx.data.queries, config.train, derive_seed(ctx.seed, "protected"))
    test = subsample(ctx.data.test, config.test, derive_seed(ctx.seed, "test"))
    if train.labels is None or test.labels is None:
        raise ValueError("the protection audit needs a labelled dataset (to score the trainer)")
    return train, test


def _trainer(ctx: StageContext, config: ProtectionAuditConfig) -> Any:
    from ..attacks.unlearnable.evaluation import TrainerConfig

    device = ctx.device
    return replace(TrainerConfig(seed=derive_seed(ctx.seed, "trainer") % 2**31, device=device), **config.trainer)


def run_protection(ctx: StageContext, config: ProtectionAuditConfig) -> ProtectionResult:
    """Protect the query images with UC per surrogate, add the controls, train and score the trainer."""
    from ..attacks.unlearnable.evaluation import make_labelings

    t0 = time.perf_counter()
    train, test = _data(ctx, config)
    trainer = _trainer(ctx, config)
    fit_data, held = _split_shadow(ctx.data.shadow, config.surrogate_holdout, derive_seed(ctx.seed, "holdout"))
    result = ProtectionResult(
        seed=ctx.seed,
        dataset=train.info.name,
        train_images=len(train),
        test_images=len(test),
        eps=config.eps,
        uc_config=dict(config.uc),
        trainer_config=config_to_dict(trainer),
        k_rule=(
            f"smallest K in {list(config.k_candidates)} (at least {config.min_cluster_images} protected images per "
            f"cluster) whose cluster AMI on {len(held):,} held-out labelled images is within "
            f"{config.k_tolerance:.2f} of the best"
        ),
        holds_at=config.holds_at,
        fails_below=config.fails_below,
    )
    sets: dict[str, ImageDataset] = {CLEAN: train}
    for i, name in enumerate(config.surrogates):
        enc, srun = _surrogate(name, ctx, config, fit_data)
        result.surrogates.append(srun)
        if enc is None:
            result.notes.append(f"surrogate {name} skipped: {srun.skipped}")
            continue
        srun.k_sweep, srun.chosen_k = _choose_k(enc, held, len(train), config, derive_seed(ctx.seed, "k", i))
        log.info("surrogate %s: K sweep %s -> K=%d", name, srun.k_sweep, srun.chosen_k)
        opts = _uc_options(config, srun.chosen_k, derive_seed(ctx.seed, "uc", i) % 2**31)
        sets[f"uc-{name}"], prun = _protect(f"uc-{name}", "uc", "method", train, opts, enc, name, ctx.progress)
        result.protections.append(prun)
        if config.controls and ORACLE not in sets:
            assert train.labels is not None
            k = int(train.labels.max()) + 1
            oracle = _uc_options(config, k, derive_seed(ctx.seed, "oracle") % 2**31, cluster_source="labels")
            sets[ORACLE], prun = _protect(ORACLE, "uc", "positive-control", train, oracle, enc, name, ctx.progress)
            result.protections.append(prun)
    if config.controls:
        rnd = {"eps": config.eps, "seed": derive_seed(ctx.seed, "random") % 2**31}
        sets[RANDOM], prun = _protect(RANDOM, "random", "negative-control", train, rnd, None, "", ctx.progress)
        result.protections.append(prun)
    labelings = make_labelings(train, test, config.labelings, config=trainer)
    result.runs = _train_all(sets, test, labelings, trainer, only_true={ORACLE, RANDOM})
    result.countermeasures = _countermeasures(result, sets, test, labelings, trainer, config.countermeasures)
    figure = ctx.out_dir / "protection.png"
    _figure(result, figure)
    result.figure = ctx.figure(figure, "").path
    result.wall_seconds = round(time.perf_counter() - t0, 1)
    return result


def _skip(ctx: StageContext) -> str | None:
    if ctx.data.queries.labels is None or ctx.data.shadow.labels is None:
        return "the protection audit needs labelled images (it scores a trainer on the clean task)"
    return None


def _build(result: ProtectionResult) -> Any:
    from .sections.protection import build_protection_section

    return build_protection_section(result)


FAMILY = register_family(
    Family(
        key="protection",
        title="Data protection",
        config_attr="protection",
        result_type=ProtectionResult,
        run=run_protection,
        build=_build,
        skip=_skip,
    )
)
