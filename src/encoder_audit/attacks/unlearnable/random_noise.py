"""Random noise at the same budget: the control every protection must beat.

Uniform i.i.d. noise ``delta ~ U(-eps, eps)`` per pixel and per image (L-inf), or a Gaussian direction
scaled to norm ``eps`` (L2). Unlearnable-example papers use it to show that a bounded perturbation alone
does not stop learning (Huang et al., ICLR 2021, Table 1 "random noise").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ...data.base import ImageDataset
from ...runs import derive_seed
from .base import Norm, Protection, apply_perturbation, project, register_protection

__all__ = ["RandomNoise", "RandomNoiseConfig"]


@dataclass(frozen=True)
class RandomNoiseConfig:
    """Attributes:
    eps: budget in [0, 1] pixel units (16/255, the UC default, for a same-budget comparison).
    norm: ``linf`` (uniform noise) or ``l2`` (Gaussian direction scaled to ``eps``).
    seed: noise seed.
    """

    eps: float = 16 / 255
    norm: Norm = "linf"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.eps <= 0:
            raise ValueError(f"eps must be positive, got {self.eps}")
        if self.norm not in ("linf", "l2"):
            raise ValueError(f"norm must be 'linf' or 'l2', got {self.norm!r}")


@register_protection("random", config=RandomNoiseConfig, help="uniform random noise at the same budget (control)")
class RandomNoise(Protection):
    """Sample-wise random noise within the budget."""

    name = "random"

    def __init__(self, config: RandomNoiseConfig | None = None, **_: Any) -> None:
        self.config = config or RandomNoiseConfig()

    def _protect(
        self, dataset: ImageDataset, *, progress: bool | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]:
        c = self.config
        g = torch.Generator().manual_seed(derive_seed(c.seed, "random-noise"))
        shape = tuple(dataset.images.shape)
        if c.norm == "linf":
            delta = (torch.rand(shape, generator=g) * 2 - 1) * c.eps
        else:
            delta = project(torch.randn(shape, generator=g) * 1e3, c.eps, "l2")
        return apply_perturbation(dataset.images, delta, c.eps, c.norm), None, {}
