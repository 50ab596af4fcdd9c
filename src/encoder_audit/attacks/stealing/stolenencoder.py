"""StolenEncoder (Liu, Jia, Liu, Gong, CCS 2022, arXiv 2201.05889).

The victim is queried **once** per clean image. The surrogate is trained so that its normalised
embedding of the clean image *and* of ``k`` surrogate-side augmented views of it all match the
victim's normalised embedding of the clean image (augmentation only on the surrogate side, so the
augmentations cost no queries):

    L = d(g(x), f(x)) + (lambda / k) * sum_j d(g(A_j(x)), f(x))

Defaults follow RDA's re-implementation used in its comparison (``StolenEncoder.py``): ``d`` = MSE,
``lambda = 20``, ``k = 1`` (the official evaluation script's ``λ = 20, k = 1``), Adam 1e-3. The official
code's unsquared L2 distance is ``distance="l2"`` (we average over the batch where it sums; Adam is
insensitive to that scale). Augmentations: the official StolenEncoder chain (flip, colour jitter,
grayscale, no crop), view recipe ``"stolenencoder"``.

Query cost: N images, once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...augment import create_views
from ...models.base import EncoderNet
from .base import StealingAttack, StealingConfig

__all__ = ["StolenEncoderAttack", "StolenEncoderConfig", "stolenencoder_loss"]

DISTANCES = ("mse", "l2")


@dataclass(frozen=True)
class StolenEncoderConfig(StealingConfig):
    """Attributes:
    lam: weight lambda of the augmented-view term (20, official evaluation script and RDA re-impl).
    k: augmented views per image and step (1).
    distance: ``"mse"`` (RDA re-implementation) or ``"l2"`` (official, unsquared Euclidean distance).
    views: surrogate-side view recipe (``"stolenencoder"``: flip, jitter, grayscale, no crop).
    """

    lam: float = 20.0
    k: int = 1
    distance: str = "mse"
    views: str = "stolenencoder"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lam < 0 or self.k < 0:
            raise ValueError(f"lam and k must be >= 0, got {self.lam}, {self.k}")
        if self.distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {self.distance!r}")


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


class StolenEncoderAttack(StealingAttack):
    """Clean-query targets plus a surrogate-side augmentation-consistency term."""

    name = "stolenencoder"
    config_class = StolenEncoderConfig
    config: StolenEncoderConfig

    def expected_queries(self, n: int) -> int:
        return n

    def views_per_image(self) -> int:
        return 1 + self.config.k

    def prepare(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        self._views = create_views(self.config.views)
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
        return stolenencoder_loss(chunks[0], chunks[1:], state[index], c.lam, c.distance)
