"""Error-minimizing noise (EM, "unlearnable examples"), sample-wise and class-wise.

Huang et al., "Unlearnable Examples: Making Personal Data Unexploitable", ICLR 2021
(``HanxunH/Unlearnable-Examples``). Bi-level min-min objective

    min_theta E_(x, y) [ min_{||delta|| <= eps} CE(f_theta(x + delta), y) ]

solved by alternation: ``train_steps`` (M = 10) SGD steps on the shadow model over the perturbed data,
then PGD steps that *descend* the loss w.r.t. delta, until the shadow model's error on the perturbed
data falls below ``stop_error``. Noise is crafted without augmentation (maintainer, issue #15).
Sample-wise (README): eps 8/255, 20 PGD steps of 0.8/255, stop error 0.01. Class-wise: one delta per
class updated with the batch gradient, stop error 0.1.

Label-agnostic mode (``label_source="clusters"``) crafts with K-means pseudo-labels of a surrogate,
the UC Sec. 3.2 protocol in which the protector's labels differ from the trainer's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ...data.base import ImageDataset
from ...runs import derive_seed
from ...train.supervised import Supervised
from .base import (
    LabelBasedProtection,
    Norm,
    apply_perturbation,
    project,
    register_protection,
    steepest_direction,
)
from .shadow import make_classifier, train_steps

__all__ = ["EMConfig", "ErrorMinimizingNoise"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EMConfig:
    """Attributes:
    mode: ``sample`` (one delta per image) or ``class`` (one delta per protector class).
    eps: budget (README: 8/255).
    norm: ``linf`` or ``l2``.
    step_size: PGD step (README: 0.8/255 = eps/10).
    pgd_steps: PGD steps per noise update (README sample-wise: 20).
    train_steps: shadow-model SGD steps between noise updates (M = 10).
    stop_error: stop when the shadow model's error on perturbed data is below this (0.01 sample, 0.1 class).
    max_rounds: hard cap on model/noise alternations.
    batch_size: shadow batch (README: 128... 512 for the noise pass).
    lr: shadow SGD learning rate (0.1, momentum 0.9, wd 5e-4 in the config).
    arch: shadow encoder architecture (registry name).
    label_source: ``true`` labels or K-means ``clusters`` (label-agnostic mode).
    label_clusters: K of those pseudo-labels.
    seed: seed.
    """

    mode: Literal["sample", "class"] = "sample"
    eps: float = 8 / 255
    norm: Norm = "linf"
    step_size: float = 0.8 / 255
    pgd_steps: int = 20
    train_steps: int = 10
    stop_error: float = 0.01
    max_rounds: int = 50
    batch_size: int = 128
    lr: float = 0.1
    arch: str = "cnn-small"
    label_source: Literal["true", "clusters"] = "true"
    label_clusters: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("sample", "class"):
            raise ValueError(f"mode must be 'sample' or 'class', got {self.mode!r}")
        if self.eps <= 0 or self.step_size <= 0:
            raise ValueError("eps and step_size must be positive")
        if self.pgd_steps < 1 or self.train_steps < 0 or self.max_rounds < 1 or self.batch_size < 2:
            raise ValueError("need pgd_steps >= 1, train_steps >= 0, max_rounds >= 1, batch_size >= 2")
        if not 0 <= self.stop_error < 1:
            raise ValueError("stop_error must be in [0, 1)")
        if self.label_source not in ("true", "clusters"):
            raise ValueError(f"label_source must be 'true' or 'clusters', got {self.label_source!r}")


@register_protection("em", config=EMConfig, help="error-minimizing noise (sample-wise or class-wise)")
class ErrorMinimizingNoise(LabelBasedProtection):
    """EM unlearnable examples (sample-wise or class-wise)."""

    name = "em"

    config_class = EMConfig

    def _protect(
        self, dataset: ImageDataset, *, progress: bool | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]:
        c = self.config
        labels, k = self._labels(dataset)
        n = len(dataset)
        x_all = dataset.float_images()
        model = make_classifier(dataset.info, k, arch=c.arch, seed=derive_seed(c.seed, "shadow"))
        opt = torch.optim.SGD(model.parameters(), lr=c.lr, momentum=0.9, weight_decay=5e-4)
        delta = torch.zeros((n if c.mode == "sample" else k, *x_all.shape[1:]))
        g = torch.Generator().manual_seed(derive_seed(c.seed, "order"))
        order = torch.randperm(n, generator=g)
        pos = 0
        error = 1.0
        rounds = 0
        bar = tqdm(total=c.max_rounds, disable=progress is False, desc="EM rounds", unit="round")
        for rounds in range(1, c.max_rounds + 1):
            batches = []
            for _ in range(c.train_steps):
                if pos + c.batch_size > n:
                    order, pos = torch.randperm(n, generator=g), 0
                idx = order[pos : pos + c.batch_size]
                pos += c.batch_size
                rows = idx if c.mode == "sample" else labels[idx]
                batches.append(((x_all[idx] + delta[rows]).clamp(0, 1), labels[idx]))
            train_steps(model, opt, batches)
            wrong = 0
            for start in range(0, n, 512):
                idx = torch.arange(start, min(start + 512, n))
                wrong += self._noise_step(model, x_all, labels, delta, idx)
            error = wrong / n
            bar.update(1)
            bar.set_postfix(error=f"{error:.3f}")
            log.debug("EM round %d: shadow error on perturbed data %.4f", rounds, error)
            if error < c.stop_error:
                break
        bar.close()
        log.info("EM (%s-wise) stopped after %d rounds at error %.4f", c.mode, rounds, error)
        per_image = delta if c.mode == "sample" else delta[labels]
        images = apply_perturbation(dataset.images, per_image, c.eps, c.norm)
        meta = {
            "mode": c.mode,
            "rounds": rounds,
            "final_error": round(error, 4),
            "label_source": c.label_source,
            "protector_classes": k,
        }
        return images, (None if c.mode == "sample" else labels), meta

    def _noise_step(
        self, model: Supervised, x_all: torch.Tensor, labels: torch.Tensor, delta: torch.Tensor, idx: torch.Tensor
    ) -> int:
        """PGD that descends the loss for the images ``idx``; updates ``delta`` in place; returns errors."""
        c = self.config
        x, y = x_all[idx], labels[idx]
        if c.mode == "sample":
            d = delta[idx].clone()
            for _ in range(c.pgd_steps):
                d.requires_grad_(True)
                loss = F.cross_entropy(model.logits((x + d).clamp(0, 1)), y)
                (grad,) = torch.autograd.grad(loss, d)
                with torch.no_grad():
                    step = steepest_direction(grad, c.norm)
                    d = project(d - c.step_size * step, c.eps, c.norm)
                    d = (x + d).clamp(0, 1) - x
            delta[idx] = d.detach()
        else:
            for _ in range(c.pgd_steps):
                d = delta.clone().requires_grad_(True)
                loss = F.cross_entropy(model.logits((x + d[y]).clamp(0, 1)), y)
                (grad,) = torch.autograd.grad(loss, d)
                with torch.no_grad():
                    present = torch.zeros(len(delta), dtype=torch.bool)
                    present[y] = True
                    step = steepest_direction(grad, c.norm)
                    new = project(delta - c.step_size * step, c.eps, c.norm)
                    delta[present] = new[present]
            d = delta[y]
        with torch.no_grad():
            pred = model.logits((x + d).clamp(0, 1)).argmax(1)
        return int((pred != y).sum())
