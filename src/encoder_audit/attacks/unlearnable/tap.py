"""Targeted adversarial poisoning (TAP): adversarial examples toward the next class.

Fowl et al., "Adversarial Examples Make Strong Poisons", NeurIPS 2021 (``lhfowl/adversarial_poisons``).
Train a shadow classifier on clean data, then perturb every image toward a *wrong* class with PGD,

    min_{||delta||_inf <= eps} CE(f(x + delta), pi(y)),    pi(y) = (y + 1) mod C

(``forgemaster_targeted._label_map``), 250 iterations, eps = 8/255 on CIFAR-10. The images then carry
features of class ``pi(y)`` under label ``y``, which a trainer learns instead of the real ones. The
perturbation is crafted through random crops and flips (the official code uses differentiable
augmentation during crafting). Label-agnostic mode (``label_source="clusters"``) uses K-means
pseudo-labels of a surrogate for both the shadow model and ``pi``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ...augment import ops
from ...data.base import ImageDataset
from ...runs import derive_seed
from .base import (
    LabelBasedProtection,
    Norm,
    apply_perturbation,
    check_eps,
    project,
    register_protection,
    steepest_direction,
)
from .shadow import make_classifier, train_steps

__all__ = ["TAPConfig", "TargetedAdversarialPoisoning"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TAPConfig:
    """Attributes:
    eps: budget (paper: 8/255).
    norm: ``linf`` or ``l2``.
    steps: PGD iterations (official ``--attackiter`` 250).
    step_size: PGD step (default ``2.5 * eps / steps``, at least eps/50).
    shadow_epochs: epochs of clean training of the shadow classifier.
    batch_size: shadow batch size.
    lr: shadow Adam learning rate.
    augment: craft through random crops (0.8-1) and flips.
    arch: shadow encoder architecture.
    label_offset: pi(y) = (y + offset) mod C.
    label_source: ``true`` labels or K-means ``clusters`` (label-agnostic mode).
    label_clusters: K of those pseudo-labels.
    random_start: start PGD from ``U(-eps, eps)`` (Madry et al.'s random start). Starting at zero with a
        clamp to [0, 1] gives zero gradient on pixels that are exactly 0 or 1 (the black background of
        Fashion-MNIST), so the craft never leaves them.
    min_target_success: the craft is marked failed (``meta["failed"]``) when fewer protected images
        than this share are classified as their target by the shadow model.
    seed: seed.
    """

    eps: float = 8 / 255
    norm: Norm = "linf"
    steps: int = 250
    step_size: float | None = None
    shadow_epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    augment: bool = True
    arch: str = "cnn-small"
    label_offset: int = 1
    label_source: Literal["true", "clusters"] = "true"
    label_clusters: int = 10
    random_start: bool = True
    min_target_success: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        check_eps(self.eps, self.norm)
        if not 0 <= self.min_target_success <= 1:
            raise ValueError("min_target_success must be in [0, 1]")
        if self.eps <= 0 or self.steps < 1 or self.shadow_epochs < 1 or self.batch_size < 2:
            raise ValueError("need eps > 0, steps >= 1, shadow_epochs >= 1, batch_size >= 2")
        if self.step_size is not None and self.step_size <= 0:
            raise ValueError("step_size must be positive")
        if self.label_source not in ("true", "clusters"):
            raise ValueError(f"label_source must be 'true' or 'clusters', got {self.label_source!r}")


@register_protection("tap", config=TAPConfig, help="targeted adversarial poisoning toward (y + 1) mod C")
class TargetedAdversarialPoisoning(LabelBasedProtection):
    """TAP: class-targeted adversarial poisons (labels shifted by one)."""

    name = "tap"

    config_class = TAPConfig

    def _protect(
        self, dataset: ImageDataset, *, progress: bool | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]:
        c = self.config
        labels, k = self._labels(dataset)
        if c.label_offset % k == 0:
            raise ValueError(f"label_offset {c.label_offset} maps every class to itself for {k} classes")
        n = len(dataset)
        x_all = dataset.float_images()
        model = make_classifier(dataset.info, k, arch=c.arch, seed=derive_seed(c.seed, "shadow"))
        opt = torch.optim.Adam(model.parameters(), lr=c.lr)
        g = torch.Generator().manual_seed(derive_seed(c.seed, "order"))
        for epoch in range(c.shadow_epochs):
            perm = torch.randperm(n, generator=g)
            batches = []
            for s in range(0, n - c.batch_size + 1, c.batch_size):
                idx = perm[s : s + c.batch_size]
                x = ops.resized_crop_flip(x_all[idx], x_all.shape[-1], scale=(0.8, 1.0), generator=g)
                batches.append((x, labels[idx]))
            loss = train_steps(model, opt, batches)
            log.debug("TAP shadow epoch %d loss %.4f", epoch + 1, loss)
        with torch.no_grad():
            clean_acc = float((model.logits(x_all).argmax(1) == labels).float().mean())
        target = (labels + c.label_offset) % k
        step = c.step_size or max(2.5 * c.eps / c.steps, c.eps / 50)
        delta = torch.zeros_like(x_all)
        for start in tqdm(range(0, n, 512), disable=progress is False, desc="TAP", unit="batch"):
            idx = torch.arange(start, min(start + 512, n))
            x, t = x_all[idx], target[idx]
            if c.random_start:
                g_start = torch.Generator().manual_seed(derive_seed(c.seed, "start", start))
                d = project((torch.rand(x.shape, generator=g_start) * 2 - 1) * c.eps, c.eps, c.norm)
                d = (x + d).clamp(0, 1) - x
            else:
                d = torch.zeros_like(x)
            for it in range(c.steps):
                d.requires_grad_(True)
                xp = (x + d).clamp(0, 1)
                if c.augment:
                    aug = torch.Generator().manual_seed(derive_seed(c.seed, "aug", start, it))
                    xp = ops.resized_crop_flip(xp, xp.shape[-1], scale=(0.8, 1.0), generator=aug)
                pgd_loss = F.cross_entropy(model.logits(xp), t)
                (grad,) = torch.autograd.grad(pgd_loss, d)
                with torch.no_grad():
                    d = project(d - step * steepest_direction(grad, c.norm), c.eps, c.norm)
                    d = (x + d).clamp(0, 1) - x
            delta[idx] = d.detach()
        images = apply_perturbation(dataset.images, delta, c.eps, c.norm)
        with torch.no_grad():
            written = ImageDataset(images, None, dataset.info).float_images()
            hit = float((model.logits(written).argmax(1) == target).float().mean())
        failed = hit < c.min_target_success
        log.log(
            logging.WARNING if failed else logging.INFO,
            "TAP: shadow clean acc %.3f, protected images classified as target %.3f%s",
            clean_acc,
            hit,
            " (craft FAILED)" if failed else "",
        )
        meta = {
            "label_source": c.label_source,
            "protector_classes": k,
            "shadow_clean_accuracy": round(clean_acc, 4),
            "target_success": round(hit, 4),
            "failed": failed,
        }
        return images, labels, meta
