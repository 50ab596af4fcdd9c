"""Synthetic linearly separable patches (LSP / SynPer): a model-free, class-wise shortcut.

Yu et al., "Availability Attacks Create Shortcuts", KDD 2022 (``dayu11/Availability-Attacks-Create-
Shortcuts``): draw one point per image from a C-class, linearly separable Gaussian mixture (scikit-learn
``make_classification`` with ``class_sep = 10``, one cluster per class, all features informative),
reshape each point to a ``g x g x C`` grid (CIFAR: 4 x 4 x 3, patch size 8), upsample every cell to a
patch and rescale the whole perturbation to L2 norm ``sqrt(d) * 6/255`` (d = pixels x channels).
Each image of class ``c`` receives a distinct sample of class ``c``.

Here the mixture is drawn directly: class centres at random vertices of the hypercube
``{-class_sep, +class_sep}^f`` plus unit Gaussian noise (what ``make_classification`` does, without its
random covariance). Label-agnostic mode (``label_source="clusters"``) crafts with K-means pseudo-labels
of a surrogate instead of the true labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ...data.base import ImageDataset
from ...runs import derive_seed
from .base import LabelBasedProtection, apply_perturbation, project, register_protection

__all__ = ["LSPConfig", "LinearlySeparablePatches"]


@dataclass(frozen=True)
class LSPConfig:
    """Attributes:
    grid: patches per side (paper: 32 px / patch 8 = 4).
    class_sep: distance scale of the class centres (paper: 10).
    rms: per-pixel RMS of the perturbation; the L2 norm is ``sqrt(d) * rms`` (paper: 6/255).
    linf_cap: optional extra L-inf clip (None = the paper's pure L2 budget).
    label_source: ``true`` labels or K-means ``clusters`` of the surrogate (label-agnostic mode).
    label_clusters: K of those pseudo-labels.
    seed: sampling seed.
    """

    grid: int = 4
    class_sep: float = 10.0
    rms: float = 6 / 255
    linf_cap: float | None = None
    label_source: Literal["true", "clusters"] = "true"
    label_clusters: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.grid < 1 or self.class_sep <= 0 or self.rms <= 0:
            raise ValueError("grid must be >= 1 and class_sep, rms positive")
        if self.linf_cap is not None and self.linf_cap <= 0:
            raise ValueError("linf_cap must be positive")
        if self.label_source not in ("true", "clusters"):
            raise ValueError(f"label_source must be 'true' or 'clusters', got {self.label_source!r}")


@register_protection("lsp", config=LSPConfig, help="synthetic linearly separable patches (model-free, class-wise)")
class LinearlySeparablePatches(LabelBasedProtection):
    """LSP: class-wise linearly separable patch noise (L2-bounded)."""

    name = "lsp"

    config_class = LSPConfig

    def _protect(
        self, dataset: ImageDataset, *, progress: bool | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]:
        c = self.config
        labels, k = self._labels(dataset)
        n, ch, h, w = dataset.images.shape
        feats = c.grid * c.grid * ch
        g = torch.Generator().manual_seed(derive_seed(c.seed, "lsp"))
        centers = (torch.randint(0, 2, (k, feats), generator=g).float() * 2 - 1) * c.class_sep
        points = centers[labels] + torch.randn(n, feats, generator=g)
        patches = points.view(n, ch, c.grid, c.grid)
        delta = F.interpolate(patches, size=(h, w), mode="nearest")
        eps = math.sqrt(ch * h * w) * c.rms
        delta = project(delta * 1e6, eps, "l2")  # rescale every image's perturbation to norm eps
        if c.linf_cap is not None:
            delta = delta.clamp(-c.linf_cap, c.linf_cap)
        images = apply_perturbation(dataset.images, delta, eps, "l2")
        meta = {"label_source": c.label_source, "protector_classes": k, "eps": eps, "norm": "l2"}
        return images, labels, meta
