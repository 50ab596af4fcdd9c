"""Patch backdoor of image-text contrastive training (Carlini & Terzis, ICLR 2022, arXiv 2106.09667).

The attacker pastes a trigger patch onto m random training images (random position per image) and
captions each with a caption that names the target label y' (research notes, poisoning.md Sec. 1.4;
headline: 0.01% of CC3M = 300 poisons, ICLR abstract). The image content is irrelevant; only the
trigger is shared. By default each poison takes the place of its clean original (``mode="replace"``:
the set keeps its size, as CleanCLIP's and HanxunH's poisoned CSVs do); ``mode="add"`` keeps the
original and appends the triggered copy.

Metrics (Sec. 1.6):

* **ASR**: triggered test images whose true class is not y', zero-shot classified as y'.
* **Baseline**: the same fraction *without* the trigger (how often y' is predicted anyway).
* **CA**: clean zero-shot top-1 accuracy.
* **Backdoor z-score**: with L2-normalised image *embeddings* (not class probabilities) of n held-out
  images and i != j,
  ``z = (mean cos(f(x_i+bd), f(x_j+bd)) - mean cos(f(x_i), f(x_j))) / s`` where ``s`` is the standard
  deviation of the clean pairwise cosines (``zscore``, our primary form) or their variance (``zscore_var``,
  the form of DECREE's ``compute_zscore.py``; DECREE flags z > 2.5). The paper's own normalisation is
  not verified in our notes, so both are reported and named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...data.base import ImageDataset
from ...data.captions import CAPTION_TEMPLATES, PairedDataset, caption_set, class_synonyms
from ...evaluate.zeroshot import ZeroShotClassifier
from ...victim import Encoder
from ..registry import register_attack
from .base import MODES, PoisoningAttack, PoisonResult, insert_poisons
from .manifest import PoisonManifest
from .trigger import Trigger

__all__ = ["BackdoorConfig", "PatchBackdoor", "backdoor_zscore", "evaluate_backdoor"]


@dataclass(frozen=True)
class BackdoorConfig:
    """Patch-backdoor settings.

    Attributes:
        poisons: m, triggered pairs added (paper headline: 300 of 3M).
        target_label: y' (class index).
        trigger: the patch (size, pattern, placement).
        caption_source: ``templates`` (CleanCLIP: one of the templates with y') or ``corpus``.
        exclude_target_class: draw poison images only from other classes (so the trigger, not the
            content, must carry y').
        mode: ``replace`` (the triggered pair takes its original's place: the paper's setting) or
            ``add`` (the original stays and the triggered copy is appended).
    """

    poisons: int = 32
    target_label: int = 0
    trigger: Trigger = field(default_factory=Trigger)
    caption_source: str = "templates"
    exclude_target_class: bool = False
    mode: str = "replace"

    def __post_init__(self) -> None:
        if self.poisons < 0:
            raise ValueError(f"poisons must be >= 0, got {self.poisons}")
        if self.target_label < 0:
            raise ValueError(f"target_label must be >= 0, got {self.target_label}")
        if self.caption_source not in ("templates", "corpus"):
            raise ValueError(f"caption_source must be 'templates' or 'corpus', got {self.caption_source!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {self.mode!r}")


@register_attack(
    "poisoning", "backdoor", config=BackdoorConfig, help="Carlini-Terzis patch backdoor (trigger -> label)"
)
class PatchBackdoor(PoisoningAttack):
    """m random training images + trigger, captioned with the target label."""

    def __init__(self, config: BackdoorConfig | None = None) -> None:
        self.config = config or BackdoorConfig()

    def poison(
        self,
        clean: PairedDataset,
        *,
        pool: ImageDataset | None = None,
        seed: int = 0,
        keep: Sequence[int] = (),
    ) -> PoisonResult:
        """Put m triggered pairs into (a copy of) ``clean`` (``pool`` is unused; ``keep``: rows not to touch)."""
        c = self.config
        info = clean.images.info
        syn = class_synonyms(info)
        if c.target_label >= len(syn):
            raise ValueError(f"target_label {c.target_label} outside [0, {len(syn)})")
        candidates = np.arange(len(clean))
        if c.exclude_target_class and clean.images.labels is not None:
            candidates = np.flatnonzero(clean.images.labels.numpy() != c.target_label)
        if len(keep):
            candidates = np.setdiff1d(candidates, np.asarray(list(keep), dtype=np.int64))
        if c.poisons > len(candidates):
            raise ValueError(f"{c.poisons} poisons requested but only {len(candidates)} candidate images")
        rng = np.random.default_rng(seed)
        src = np.sort(rng.choice(candidates, size=c.poisons, replace=False))
        corpus = clean.captions if c.caption_source == "corpus" else None
        cset = caption_set(syn[c.target_label], CAPTION_TEMPLATES, corpus)
        captions = [cset[int(i)] for i in rng.integers(0, len(cset), size=c.poisons)]
        gen = torch.Generator().manual_seed(seed)
        images, pos = c.trigger.paste(clean.images.images[torch.as_tensor(src, dtype=torch.long)], gen)
        n = len(clean)
        if c.mode == "replace":
            rows = [int(i) for i in src]
            paired = insert_poisons(clean, images, captions, rows)
        else:
            rows = list(range(n, n + c.poisons))
            paired = insert_poisons(clean, images, captions, None)
        cfg = asdict(c)
        manifest = PoisonManifest(
            attack=self.name,
            config=cfg,
            seed=seed,
            clean_size=n,
            clean_fingerprint=clean.images.fingerprint(),
            poison_rows=rows,
            source=["train"] * c.poisons,
            source_indices=[int(i) for i in src],
            captions=captions,
            positions=pos.tolist(),
            trigger=c.trigger.to_dict(),
            target_label=c.target_label,
            target_name=syn[c.target_label][0],
            mode=c.mode,
        )
        return PoisonResult(paired, manifest)


def _pairwise_offdiag(z: torch.Tensor) -> torch.Tensor:
    z = F.normalize(z.float(), dim=1)
    sim = z @ z.T
    mask = ~torch.eye(len(z), dtype=torch.bool)
    return sim[mask]


@torch.no_grad()
def backdoor_zscore(clean_emb: torch.Tensor, triggered_emb: torch.Tensor) -> dict[str, float]:
    """Backdoor z-score from embeddings of the same images without and with the trigger.

    Returns:
        ``mu_clean``, ``sigma_clean``, ``mu_triggered``, ``zscore`` (divided by the clean pairwise std) and
        ``zscore_var`` (divided by the clean pairwise variance, DECREE's form).
    """
    if len(clean_emb) < 2 or clean_emb.shape != triggered_emb.shape:
        raise ValueError("z-score needs at least two images, embedded with and without the trigger")
    c, t = _pairwise_offdiag(clean_emb), _pairwise_offdiag(triggered_emb)
    mu_c, sd_c, mu_t = float(c.mean()), float(c.std()), float(t.mean())
    return {
        "mu_clean": mu_c,
        "sigma_clean": sd_c,
        "mu_triggered": mu_t,
        "zscore": (mu_t - mu_c) / max(sd_c, 1e-12),
        "zscore_var": (mu_t - mu_c) / max(sd_c**2, 1e-12),
    }


@torch.no_grad()
def evaluate_backdoor(
    encoder: Encoder,
    classifier: ZeroShotClassifier,
    test: ImageDataset,
    trigger: Trigger,
    target_label: int,
    *,
    seed: int = 0,
    max_images: int | None = 2000,
    zscore_images: int = 500,
) -> dict[str, Any]:
    """ASR (excluding target-class images), no-trigger baseline, CA, target rank and z-score.

    Args:
        encoder: the trained model's image side (``CLIPModel.image_encoder()``).
        classifier: zero-shot classifier over the test classes.
        test: labelled held-out images.
        trigger: the attack's trigger (test positions are drawn fresh from ``seed``).
        target_label: y'.
        seed: trigger-position and subsampling seed.
        max_images: evaluate on at most this many test images (None = all).
        zscore_images: images used for the z-score.
    """
    if test.labels is None:
        raise ValueError("backdoor evaluation needs labelled test images")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(test), generator=g)
    if max_images is not None:
        idx = idx[:max_images]
    x = test.images[idx]
    y = test.labels[idx]
    trig, _ = trigger.paste(x, g)
    f_clean = encoder.embed(x.float() / 255.0)
    f_trig = encoder.embed(trig.float() / 255.0)
    pred_clean = classifier.predict(f_clean)
    pred_trig = classifier.predict(f_trig)
    keep = y != target_label
    ranks = classifier.rank_of(f_trig[keep], target_label)
    nz = min(zscore_images, len(x))
    out: dict[str, Any] = {
        "asr": float((pred_trig[keep] == target_label).float().mean()),
        "baseline_target_rate": float((pred_clean[keep] == target_label).float().mean()),
        "clean_accuracy": float((pred_clean == y).float().mean()),
        "triggered_accuracy": float((pred_trig[keep] == y[keep]).float().mean()),
        "mean_target_rank": float(ranks.float().mean()),
        "n_eval": len(x),
        "n_asr": int(keep.sum()),
        **backdoor_zscore(f_clean[:nz], f_trig[:nz]),
    }
    return out
