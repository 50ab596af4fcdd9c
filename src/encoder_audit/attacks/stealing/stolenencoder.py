"""StolenEncoder (Liu, Jia, Liu, Gong, CCS 2022, arXiv 2201.05889).

The victim is queried **once** per clean image. The surrogate is trained so that its normalised
embedding of the clean image *and* of ``k`` surrogate-side augmented views of it all match the
victim's normalised embedding of the clean image (augmentation only on the surrogate side, so the
augmentations cost no queries):

    L = d(g(x), f(x)) + (lambda / k) * sum_j d(g(A_j(x)), f(x))

Two labelled variants (``variant``), so the loss and the augmentation chain always come from the same
implementation:

* ``"rda"`` (default; RDA's re-implementation ``StolenEncoder.py``, the one RDA compares against):
  ``d`` = MSE, the augmented term weighted 20 ("``loss += 20*loss_function(...aug...)``"), and the
  augmented view drawn from RDA's own query chain (``query_pair_*_transform``: 0.75-area crop, flip,
  jitter, grayscale, blur 0.1, solarize 0.1) = view recipe ``"rda-train"``.
* ``"official"`` (``liu00222/StolenEncoder``): ``d`` = unsquared L2 distance (we average over the
  batch where it sums; Adam is insensitive to that scale), ``lambda = 20, k = 1`` (its evaluation
  script) and its own chain (flip, colour jitter, grayscale, no crop) = view recipe ``"stolenencoder"``.

``distance`` and ``views`` may still be set explicitly (an ablation that mixes the two is then named
in the config).

Query cost: N images, once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...models.base import EncoderNet
from ..registry import register_attack
from .base import StealingAttack, StealingConfig
from .views import stealing_views

__all__ = ["StolenEncoderAttack", "StolenEncoderConfig", "stolenencoder_loss"]

DISTANCES = ("mse", "l2")
VARIANTS = ("rda", "official")
_VARIANT_DEFAULTS = {"rda": ("mse", "rda-train"), "official": ("l2", "stolenencoder")}


@dataclass(frozen=True)
class StolenEncoderConfig(StealingConfig):
    """Attributes:
    variant: ``"rda"`` (RDA's re-implementation: MSE, RDA's 0.75-crop chain) or ``"official"``
        (unsquared L2, the official flip/jitter/grayscale chain).
    lam: weight lambda of the augmented-view term (20, official evaluation script and RDA re-impl).
    k: augmented views per image and step (1).
    distance: ``"mse"`` or ``"l2"``; None: the variant's.
    views: surrogate-side view recipe; None: the variant's (``"rda-train"`` / ``"stolenencoder"``).
    """

    variant: str = "rda"
    lam: float = 20.0
    k: int = 1
    distance: str | None = None
    views: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.lam < 0 or self.k < 0:
            raise ValueError(f"lam and k must be >= 0, got {self.lam}, {self.k}")
        if self.distance is not None and self.distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {self.distance!r}")

    @property
    def resolved_distance(self) -> str:
        """The distance in use (the variant's unless set)."""
        return self.distance or _VARIANT_DEFAULTS[self.variant][0]

    @property
    def resolved_views(self) -> str:
        """The view recipe in use (the variant's unless set)."""
        return self.views or _VARIANT_DEFAULTS[self.variant][1]


def _distance(z: torch.Tensor, t: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "mse":
        return F.mse_loss(z, t)
    return (z - t).norm(dim=1).mean()


def stolenencoder_loss(
    z_clean: torch.Tensor, z_views: list[torch.Tensor], t: torch.Tensor, lam: float = 20.0, distance: str = "mse"
) -> torch.Tensor:
    """StolenEncoder loss; every embedding is L2-normalised here.

    Args:
        z_clean: (B, D) surrogate embeddings of the clean images.
        z_views: k tensors (B, D), surrogate embeddings of augmented views.
        t: (B, D) victim embeddings of the clean images.
        lam: weight of the view term (divided by k).
        distance: ``"mse"`` or ``"l2"``.

    Returns:
        Scalar loss.
    """
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; choose one of {DISTANCES}")
    t = F.normalize(t, dim=1)
    loss = _distance(F.normalize(z_clean, dim=1), t, distance)
    if z_views and lam:
        loss = loss + lam / len(z_views) * sum(_distance(F.normalize(v, dim=1), t, distance) for v in z_views)
    return loss


@register_attack(
    "stealing",
    "stolenencoder",
    config=StolenEncoderConfig,
    help="StolenEncoder (CCS'22): clean targets + surrogate-side augmentation term; N queries",
)
class StolenEncoderAttack(StealingAttack):
    """Clean-query targets plus a surrogate-side augmentation-consistency term."""

    config: StolenEncoderConfig

    def query_cost(self, n: int) -> int:
        return n

    def views_per_image(self) -> int:
        return 1 + self.config.k

    def prepare(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        self._views = stealing_views(self.config.resolved_views)
        return self.query(images)

    def batch_loss(
        self,
        net: EncoderNet,
        images: torch.Tensor,
        index: torch.Tensor,
        state: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        c = self.config
        views = [self._views(images.cpu(), generator).to(images.device) for _ in range(c.k)]
        z = net(torch.cat([images, *views]))
        chunks = list(z.split(images.shape[0]))
        return stolenencoder_loss(chunks[0], chunks[1:], state[index], c.lam, c.resolved_distance)
