"""Targeted poisoning of image-text contrastive training (Carlini & Terzis, ICLR 2022, arXiv 2106.09667).

Goal: one chosen image x' (not in the training set) is zero-shot classified as a chosen label y'. The
attacker adds k pairs (x', c) with captions c drawn from a caption set C(y') that names y': either
the prompt templates filled with y' (variant b) or the training captions that contain the label word
(variant a) (research notes, poisoning.md Sec. 1.3). The same image is repeated with different captions;
the poison count is k. Success: y' is top-1 under the zero-shot classifier; we also report its rank.

To amortise CPU training, one poisoned run may hold several independent (target, label) trials
(``targets``): each trial uses a different target image; the total poison count is ``targets * k``.
This is a deviation from the paper (one trial per training run) and is recorded in the manifest.

Poisons replace clean pairs by default (``mode="replace"``: the web set keeps its size, as in the
paper's threat model and HanxunH's reimplementation); ``mode="add"`` appends them as extra copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ...data.base import ImageDataset
from ...data.captions import CAPTION_TEMPLATES, PairedDataset, caption_set, class_synonyms
from ...evaluate.zeroshot import ZeroShotClassifier
from ...victim import Encoder
from ..registry import register_attack
from .base import MODES, PoisoningAttack, PoisonResult, insert_poisons, replacement_rows
from .manifest import PoisonManifest

__all__ = ["TargetedConfig", "TargetedPoisoning", "evaluate_targeted"]


@dataclass(frozen=True)
class TargetedConfig:
    """Targeted poisoning settings.

    Attributes:
        poisons: k, copies of the target image per trial, each with a caption from C(y'). The paper's
            headline is 3 poisons in 3M pairs (0.0001%, ICLR abstract).
        targets: independent (target image, target label) trials planted in the same training set.
        caption_source: ``templates`` (variant b) or ``corpus`` (variant a, falls back to templates if
            no training caption names the label).
        target_label: force y' (class index) for every trial; None draws y' != true label at random.
        mode: ``replace`` (each poison overwrites a random clean pair: the set keeps its size, the
            paper's setting) or ``add`` (poisons appended as extra pairs).
    """

    poisons: int = 3
    targets: int = 1
    caption_source: str = "templates"
    target_label: int | None = None
    mode: str = "replace"

    def __post_init__(self) -> None:
        if self.poisons < 0:
            raise ValueError(f"poisons must be >= 0, got {self.poisons}")
        if self.targets < 1:
            raise ValueError(f"targets must be >= 1, got {self.targets}")
        if self.caption_source not in ("templates", "corpus"):
            raise ValueError(f"caption_source must be 'templates' or 'corpus', got {self.caption_source!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {self.mode!r}")


@register_attack(
    "poisoning", "targeted", config=TargetedConfig, help="Carlini-Terzis targeted poisoning (image -> label)"
)
class TargetedPoisoning(PoisoningAttack):
    """Carlini-Terzis targeted poisoning: k pairs (target image, caption naming y')."""

    def __init__(self, config: TargetedConfig | None = None) -> None:
        self.config = config or TargetedConfig()

    def choose_targets(self, pool: ImageDataset, num_classes: int, seed: int) -> list[dict[str, Any]]:
        """Draw target images from ``pool`` (held-out) and labels y' different from their true label."""
        c = self.config
        if pool.labels is None:
            raise ValueError("the target pool needs labels (to pick y' != the true label)")
        if c.targets > len(pool):
            raise ValueError(f"{c.targets} targets requested but the pool holds {len(pool)} images")
        rng = np.random.default_rng(seed)
        rows = rng.choice(len(pool), size=c.targets, replace=False)
        out = []
        for r in rows:
            true = int(pool.labels[r])
            if c.target_label is not None:
                if not 0 <= c.target_label < num_classes:
                    raise ValueError(f"target_label {c.target_label} outside [0, {num_classes})")
                label = c.target_label
                if label == true:  # the trial would succeed trivially: pick another image of a different class
                    others = np.flatnonzero(pool.labels.numpy() != label)
                    r = int(rng.choice(others))
                    true = int(pool.labels[r])
            else:
                label = int(rng.choice([k for k in range(num_classes) if k != true]))
            out.append({"pool_index": int(r), "true_label": true, "target_label": label})
        return out

    def poison(
        self,
        clean: PairedDataset,
        *,
        pool: ImageDataset | None = None,
        seed: int = 0,
        keep: Sequence[int] = (),
    ) -> PoisonResult:
        """Put ``targets * poisons`` pairs into (a copy of) ``clean``.

        Args:
            clean: the victim's clean pairs (labelled images, for class names).
            pool: held-out images to choose targets from (e.g. the test split).
            seed: attack seed (targets, labels, captions, replaced rows).
            keep: clean rows that must not be replaced (another attack's poisons).
        """
        if pool is None:
            raise ValueError("targeted poisoning needs a pool of held-out target images (pool=)")
        c = self.config
        info = clean.images.info
        syn = class_synonyms(info)
        targets = self.choose_targets(pool, len(syn), seed)
        rng = np.random.default_rng(seed + 1)
        corpus = clean.captions if c.caption_source == "corpus" else None
        images, captions, src_idx = [], [], []
        for t in targets:
            cset = caption_set(syn[t["target_label"]], CAPTION_TEMPLATES, corpus)
            picks = [cset[int(i)] for i in rng.integers(0, len(cset), size=c.poisons)]
            t["target_name"] = syn[t["target_label"]][0]
            t["captions"] = picks
            images += [pool.images[t["pool_index"]]] * c.poisons
            captions += picks
            src_idx += [t["pool_index"]] * c.poisons
        img = torch.stack(images) if images else clean.images.images[:0]
        n = len(clean)
        if c.mode == "replace":
            rows = replacement_rows(n, len(captions), rng, keep).tolist()
            paired = insert_poisons(clean, img, captions, rows)
        else:
            rows = list(range(n, n + len(captions)))
            paired = insert_poisons(clean, img, captions, None)
        manifest = PoisonManifest(
            attack=self.name,
            config=asdict(c),
            seed=seed,
            clean_size=n,
            clean_fingerprint=clean.images.fingerprint(),
            poison_rows=[int(r) for r in rows],
            source=["pool"] * len(captions),
            source_indices=src_idx,
            captions=captions,
            targets=targets,
            mode=c.mode,
        )
        return PoisonResult(paired, manifest)


@torch.no_grad()
def evaluate_targeted(
    encoder: Encoder, classifier: ZeroShotClassifier, pool: ImageDataset, manifest: PoisonManifest
) -> dict[str, Any]:
    """Zero-shot outcome of every targeted trial: success (y' top-1) and the rank of y'.

    Returns:
        ``{"trials": [...], "success_rate", "mean_rank", "median_rank"}``.
    """
    if not manifest.targets:
        raise ValueError("the manifest holds no targeted trials")
    rows = [t["pool_index"] for t in manifest.targets]
    feats = encoder.embed(pool.float_images(torch.tensor(rows)))
    labels = torch.tensor([t["target_label"] for t in manifest.targets])
    ranks = classifier.rank_of(feats, labels)
    pred = classifier.predict(feats)
    trials = [
        {**{k: t[k] for k in ("pool_index", "true_label", "target_label")}, "rank": int(r), "predicted": int(p)}
        for t, r, p in zip(manifest.targets, ranks, pred)
    ]
    return {
        "trials": trials,
        "success_rate": float((ranks == 1).float().mean()),
        "mean_rank": float(ranks.float().mean()),
        "median_rank": float(ranks.float().median()),
    }
