"""Poison-count experiments: train a CLIP-style model on poisoned pairs and measure every attack metric.

One *run* = one training set (a clean captioned subset plus targeted poisons and/or backdoor poisons),
one CLIP-style training with :func:`~encoder_audit.train.clip.train_clip`, and the evaluation:
clean zero-shot accuracy, targeted success and rank of y' per trial, backdoor ASR / baseline / z-score.
A *sweep* repeats runs over poison counts and seeds; at one seed every level shares the clean subset,
the training seed, the target trials and the trigger, so the curves isolate the effect of the count.

Targeted and backdoor poisons may share a run (the default in sweeps, to halve CPU cost): they use
disjoint images and different labels, and each is evaluated only on its own metric. Set one count to 0
to study an attack alone. Poisons replace clean pairs (``mode="replace"``, the paper's fixed-size
web set) unless ``mode="add"`` appends them as extra copies; every run records both the training-set
size and the poisoned fraction of it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.base import ImageDataset
from ...data.captions import PairedDataset, class_synonyms, make_paired
from ...evaluate.zeroshot import clip_zeroshot_classifier, zeroshot_accuracy
from ...models.clip import CLIPModel, save_clip
from ...runs import derive_seed
from ...train.clip import CLIPTrainConfig, train_clip
from ...train.loop import TrainConfig
from .backdoor import BackdoorConfig, PatchBackdoor, evaluate_backdoor
from .base import MODES, insert_poisons
from .manifest import PoisonManifest
from .targeted import TargetedConfig, TargetedPoisoning, evaluate_targeted
from .trigger import Trigger

log = logging.getLogger(__name__)

__all__ = ["ClipExperimentConfig", "PoisonedRun", "clean_pairs", "run_poisoned_clip", "run_sweep"]


@dataclass(frozen=True)
class ClipExperimentConfig:
    """Scale and attack settings of a poisoned CLIP run (defaults: the ``quick`` CPU scale).

    Attributes:
        train_size: clean pairs (a seeded subset of the training split; 0 = all).
        epochs: CLIP training epochs.
        batch_size: CLIP batch (in-batch negatives).
        lr: Adam learning rate (cosine schedule).
        image_encoder: image-tower architecture.
        image_width: image-tower width (16 = a quarter of cnn-small's cost).
        text_layers: text Transformer layers (0 = embeddings + mean pooling only).
        targets: targeted (image, label) trials per run.
        caption_source: ``templates`` or ``corpus`` captions for the poisons.
        backdoor_target: y' of the backdoor (class index).
        trigger: the backdoor patch.
        eval_images: test images for zero-shot and backdoor metrics.
        caption_seed: seed of the clean captions and subset (fixed across seeds so only training varies).
        mode: ``replace`` (each poison overwrites a clean pair; the paper's setting) or ``add``
            (poisons appended, the clean originals kept).
        device: where the CLIP-style model trains (``cpu``, ``cuda``).
    """

    train_size: int = 2000
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    image_encoder: str = "cnn-small"
    image_width: int = 16
    text_layers: int = 1
    targets: int = 8
    caption_source: str = "templates"
    backdoor_target: int = 0
    trigger: Trigger = field(default_factory=Trigger)
    eval_images: int = 2000
    caption_seed: int = 0
    mode: str = "replace"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.train_size < 0 or self.epochs < 1 or self.batch_size < 2 or self.lr <= 0:
            raise ValueError("train_size >= 0, epochs >= 1, batch_size >= 2 and lr > 0 are required")
        if self.targets < 1 or self.eval_images < 10:
            raise ValueError("targets >= 1 and eval_images >= 10 are required")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {self.mode!r}")

    def train_config(self, seed: int, epochs: int | None = None) -> TrainConfig:
        return TrainConfig(
            epochs=epochs or self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=seed,
            checkpoint_every=0,
            device=self.device,
        )

    def clip_config(self) -> CLIPTrainConfig:
        return CLIPTrainConfig(image_width=self.image_width, text_layers=self.text_layers)


@dataclass
class PoisonedRun:
    """Everything one run produced."""

    model: CLIPModel
    paired: PairedDataset
    manifests: dict[str, PoisonManifest]
    metrics: dict[str, Any]


def clean_pairs(train: ImageDataset, config: ClipExperimentConfig) -> PairedDataset:
    """The captioned clean subset every run of an experiment starts from."""
    ds = train
    if config.train_size and config.train_size < len(train):
        g = torch.Generator().manual_seed(derive_seed(config.caption_seed, "subset"))
        ds = train.subset(torch.randperm(len(train), generator=g)[: config.train_size].sort().values)
    return make_paired(ds, seed=config.caption_seed)


def run_poisoned_clip(
    clean: PairedDataset,
    test: ImageDataset,
    *,
    targeted_poisons: int = 0,
    backdoor_poisons: int = 0,
    config: ClipExperimentConfig | None = None,
    seed: int = 0,
    out_dir: Path | None = None,
    save_model: bool = False,
    progress: bool | None = False,
) -> PoisonedRun:
    """Poison, train, evaluate once.

    Args:
        clean: clean captioned pairs (from :func:`clean_pairs`).
        test: labelled held-out images: the targeted trials' pool and the evaluation set.
        targeted_poisons: k per targeted trial (0 = no targeted poisons, trials still evaluated as baseline).
        backdoor_poisons: m (0 = no backdoor poisons, the trigger is still evaluated as baseline).
        config: scale and attack settings.
        seed: training and attack seed.
        out_dir: write the manifests (``manifest_targeted.json``, ``manifest_backdoor.json``) here.
        save_model: also save ``clip.safetensors`` in ``out_dir``.
        progress: progress bars.
    """
    c = config or ClipExperimentConfig()
    t0 = time.perf_counter()
    paired, tp, bd = poison_pairs(clean, test, targeted_poisons, backdoor_poisons, c, seed)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        tp.manifest.save(out_dir / "manifest_targeted.json")
        bd.manifest.save(out_dir / "manifest_backdoor.json")
    model, result = train_clip(
        paired,
        image_encoder=c.image_encoder,
        config=c.clip_config(),
        train=c.train_config(seed),
        progress=progress,
    )
    if out_dir is not None and save_model:
        save_clip(out_dir / "clip.safetensors", model, training={"seed": seed, "experiment": asdict(c)})
    metrics = evaluate_run(model, test, tp.manifest, c, seed=seed)
    metrics.update(
        {
            "seed": seed,
            "mode": c.mode,
            "clean_pairs": len(clean),
            "train_pairs": len(paired),
            "targeted_poisons_per_target": targeted_poisons,
            "targeted_poisons_total": tp.manifest.num_poisons,
            "targeted_rate_per_target": targeted_poisons / len(paired),
            "backdoor_poisons": backdoor_poisons,
            "backdoor_rate": backdoor_poisons / len(paired),
            "train_seconds": round(result.seconds, 2),
            "run_seconds": round(time.perf_counter() - t0, 2),
            "final_loss": result.history[-1]["loss"],
        }
    )
    return PoisonedRun(model, paired, {"targeted": tp.manifest, "backdoor": bd.manifest}, metrics)


def poison_pairs(
    clean: PairedDataset,
    test: ImageDataset,
    targeted_poisons: int,
    backdoor_poisons: int,
    c: ClipExperimentConfig,
    seed: int,
) -> tuple[PairedDataset, Any, Any]:
    """The training set of one run: targeted and backdoor poisons on disjoint rows of ``clean``.

    Returns:
        (poisoned pairs, targeted result, backdoor result); both manifests' ``poison_rows`` index the
        returned set.
    """
    bd = PatchBackdoor(
        BackdoorConfig(
            poisons=backdoor_poisons,
            target_label=c.backdoor_target,
            trigger=c.trigger,
            caption_source=c.caption_source,
            mode=c.mode,
        )
    ).poison(clean, seed=derive_seed(seed, "backdoor"))
    tp = TargetedPoisoning(
        TargetedConfig(poisons=targeted_poisons, targets=c.targets, caption_source=c.caption_source, mode=c.mode)
    ).poison(clean, pool=test, seed=derive_seed(seed, "targeted"), keep=bd.manifest.poison_rows)
    rows = bd.manifest.poison_rows
    images = bd.paired.images.images[torch.as_tensor(rows, dtype=torch.long)]
    captions = [bd.paired.captions[r] for r in rows]
    if c.mode == "replace":
        paired = insert_poisons(tp.paired, images, captions, rows)
    else:
        paired = insert_poisons(tp.paired, images, captions, None)
        # The backdoor's poisons now sit after the targeted ones: shift its manifest rows.
        bd.manifest.poison_rows = [len(clean) + tp.manifest.num_poisons + i for i in range(len(rows))]
    return paired, tp, bd


def evaluate_run(
    model: CLIPModel, test: ImageDataset, targeted: PoisonManifest | None, c: ClipExperimentConfig, *, seed: int = 0
) -> dict[str, Any]:
    """Clean zero-shot accuracy, targeted trials and backdoor metrics of a trained model."""
    names = [s[0] for s in class_synonyms(test.info)]
    zs = clip_zeroshot_classifier(model, names)
    enc = model.image_encoder()
    g = torch.Generator().manual_seed(derive_seed(seed, "eval"))
    sub = test.subset(torch.randperm(len(test), generator=g)[: c.eval_images])
    out: dict[str, Any] = {"clean_zeroshot_top1": zeroshot_accuracy(zs, enc.embed, sub)["top1"]}
    if targeted is not None and targeted.targets:
        t = evaluate_targeted(enc, zs, test, targeted)
        out.update(
            {
                "targeted_success": t["success_rate"],
                "targeted_mean_rank": t["mean_rank"],
                "targeted_trials": t["trials"],
            }
        )
    b = evaluate_backdoor(enc, zs, test, c.trigger, c.backdoor_target, seed=derive_seed(seed, "bd-eval"))
    out.update({f"backdoor_{k}": v for k, v in b.items()})
    return out


def run_sweep(
    train: ImageDataset,
    test: ImageDataset,
    *,
    levels: list[tuple[int, int]],
    seeds: list[int],
    config: ClipExperimentConfig | None = None,
    out_dir: Path | None = None,
    progress: bool | None = False,
) -> list[dict[str, Any]]:
    """Runs over (targeted k, backdoor m) levels and seeds; one metrics row per run (no models kept)."""
    c = config or ClipExperimentConfig()
    clean = clean_pairs(train, c)
    rows = []
    for seed in seeds:
        for k, m in levels:
            sub = out_dir / f"seed{seed}_k{k}_m{m}" if out_dir is not None else None
            run = run_poisoned_clip(
                clean, test, targeted_poisons=k, backdoor_poisons=m, config=c, seed=seed, out_dir=sub, progress=progress
            )
            log.info(
                "seed %d k=%d m=%d: CA %.3f targeted %.2f ASR %.3f z %.2f (%.0fs)",
                seed,
                k,
                m,
                run.metrics["clean_zeroshot_top1"],
                run.metrics["targeted_success"],
                run.metrics["backdoor_asr"],
                run.metrics["backdoor_zscore"],
                run.metrics["run_seconds"],
            )
            rows.append(run.metrics)
    return rows


DEFENSES = ("cleanclip", "filter-similarity", "filter-density")
_KEYS = ("clean_zeroshot_top1", "targeted_success", "targeted_mean_rank", "backdoor_asr", "backdoor_zscore")


def _after(
    name: str, setting: str, value: float, steps: int, metrics: dict[str, Any], seconds: float
) -> dict[str, Any]:
    return {
        "defense": name,
        "setting": setting,
        "value": value,
        "steps": steps,
        **{k: metrics[k] for k in _KEYS if k in metrics},
        "seconds": round(seconds, 1),
    }


def _cleanclip_sweep(
    run: PoisonedRun,
    test: ImageDataset,
    trusted: PairedDataset,
    c: ClipExperimentConfig,
    epochs: tuple[int, ...],
    lr: float,
    seed: int,
    progress: bool | None,
) -> list[dict[str, Any]]:
    """CleanCLIP fine-tuning at a constant learning rate, the attacks measured after each of ``epochs``."""
    from ...defenses.cleanclip import cleanclip_finetune

    marks = set(epochs)
    per_epoch = max(1, len(trusted) // c.batch_size)
    run_seed = int(run.metrics.get("seed", seed))
    out: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def measure(epoch: int, model: CLIPModel) -> None:
        if epoch in marks:
            m = evaluate_run(model, test, run.manifests["targeted"], c, seed=run_seed)
            out.append(_after("cleanclip", "epochs", float(epoch), epoch * per_epoch, m, time.perf_counter() - t0))

    cleanclip_finetune(
        run.model,
        trusted,
        train=TrainConfig(
            epochs=max(marks),
            batch_size=c.batch_size,
            lr=lr,
            schedule="constant",
            seed=derive_seed(seed, "cleanclip"),
            checkpoint_every=0,
            device=c.device,
        ),
        progress=progress,
        on_epoch_end=measure,
    )
    return out


def _filter_sweep(
    name: str,
    run: PoisonedRun,
    test: ImageDataset,
    trusted: PairedDataset,
    c: ClipExperimentConfig,
    fractions: tuple[float, ...],
    retrain: tuple[float, ...],
    seed: int,
    progress: bool | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A filter's precision / recall over removal fractions (plus the true poisoned fraction), and the
    attacks after retraining without the flagged pairs at each fraction of ``retrain`` (0 = the true
    poisoned fraction)."""
    from ...defenses.poison_detector import DetectorConfig, detection_curve, filter_pairs, score_pairs

    n = len(run.paired)
    is_poison = run.manifests["targeted"].is_poison(n) | run.manifests["backdoor"].is_poison(n)
    rate = float(is_poison.sum()) / n
    run_seed = int(run.metrics.get("seed", seed))
    method = name.split("-", 1)[1]
    scorer = run.model
    if method == "similarity":
        scorer, _ = train_clip(
            trusted,
            image_encoder=c.image_encoder,
            config=c.clip_config(),
            train=c.train_config(derive_seed(seed, "reference")),
            tokenizer=run.model.tokenizer,
            progress=progress,
        )
    scores = score_pairs(scorer, run.paired, DetectorConfig(method=method))
    with_rate = {*fractions, rate} if 0 < rate < 1 else set(fractions)
    curve = [
        {"defense": name, **p, "at_poison_rate": abs(p["fraction"] - rate) < 1e-12}
        for p in detection_curve(scores, is_poison, sorted(with_rate))
    ]
    outcomes = []
    for q in retrain:
        q = rate if q == 0 else q
        if not 0 < q < 1:
            continue
        t0 = time.perf_counter()
        kept, rows = filter_pairs(run.paired, scores, q)
        retrained, _ = train_clip(
            kept,
            image_encoder=c.image_encoder,
            config=c.clip_config(),
            train=c.train_config(run_seed),
            tokenizer=run.model.tokenizer,
            progress=progress,
        )
        m = evaluate_run(retrained, test, run.manifests["targeted"], c, seed=run_seed)
        row = _after(name, "removed", q, c.epochs * (len(kept) // c.batch_size), m, time.perf_counter() - t0)
        removed = np.setdiff1d(np.arange(n), rows)
        row |= {"removed_pairs": len(removed), "clean_removed": int((~is_poison[removed]).sum())}
        outcomes.append(row)
    return curve, outcomes


def run_defenses(
    run: PoisonedRun,
    test: ImageDataset,
    trusted: PairedDataset,
    *,
    config: ClipExperimentConfig | None = None,
    defenses: tuple[str, ...] = DEFENSES,
    filter_fractions: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.3),
    retrain_fractions: tuple[float, ...] = (0.0,),
    cleanclip_epochs: tuple[int, ...] = (1, 3, 10),
    cleanclip_lr: float = 5e-4,
    seed: int = 0,
    progress: bool | None = False,
) -> dict[str, Any]:
    """Apply each defense to a poisoned run and measure the attacks again, over each defense's sweep.

    Args:
        run: the poisoned run (model, pairs, manifests, metrics).
        test: the evaluation set used for ``run``.
        trusted: clean pairs the defender owns (CleanCLIP's fine-tuning data; the similarity
            filter's reference model).
        config: the run's experiment config.
        defenses: ``cleanclip``, ``filter-similarity`` (reference-model image-caption cosine),
            ``filter-density`` (kNN density in the poisoned model's image space).
        filter_fractions: removal fractions of the filters' precision / recall sweep (the true
            poisoned fraction is added).
        retrain_fractions: fractions at which a filter's kept pairs are trained on again from
            scratch (0 = the true poisoned fraction, where every poison fits the removal budget).
        cleanclip_epochs: CleanCLIP epochs at which the attacks are measured (one run, constant lr).
        cleanclip_lr: CleanCLIP learning rate.
        seed: defense seed (retraining uses the run's seed so only the data changes).
        progress: progress bars.

    Returns:
        ``{"before": metrics, "filters": [curve rows], "after": [one row per defense setting]}``.
    """
    c = config or ClipExperimentConfig()
    unknown = set(defenses) - set(DEFENSES)
    if unknown:
        raise ValueError(f"unknown defense(s) {sorted(unknown)}; choose from {list(DEFENSES)}")
    before = {k: run.metrics[k] for k in _KEYS if k in run.metrics}
    curves: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    for name in defenses:
        if name == "cleanclip":
            after += _cleanclip_sweep(run, test, trusted, c, cleanclip_epochs, cleanclip_lr, seed, progress)
        else:
            curve, rows = _filter_sweep(
                name, run, test, trusted, c, filter_fractions, retrain_fractions, seed, progress
            )
            curves += curve
            after += rows
    for row in after:
        log.info("defense %s %s=%s: before %s after %s", row["defense"], row["setting"], row["value"], before, row)
    return {"before": before, "filters": curves, "after": after}
