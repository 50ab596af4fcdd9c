"""Conventional encoder stealing: regress the victim's embeddings of clean query images.

The baseline named "Conventional" in Cont-Steal (Sha et al., CVPR 2023, arXiv 2201.07513) and
re-implemented in RDA (Wu et al., ECCV 2024, ``Conventional_Attack.py``): query the victim once per
clean image, cache the L2-normalised embedding, and train the surrogate so that its L2-normalised
embedding of the same clean image matches it ("Loss: MSE (default; ``cos_similarity`` selectable)").

Query cost: N images, once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...models.base import EncoderNet
from ..registry import register_attack
from .base import StealingAttack, StealingConfig

__all__ = ["ConventionalAttack", "ConventionalConfig", "conventional_loss"]

LOSSES = ("mse", "cosine")


@dataclass(frozen=True)
class ConventionalConfig(StealingConfig):
    """Attributes:
    loss: ``"mse"`` between normalised embeddings (RDA re-implementation default) or ``"cosine"``
        (negative cosine similarity).
    """

    loss: str = "mse"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")


def conventional_loss(z: torch.Tensor, t: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Distance between surrogate embeddings ``z`` and victim embeddings ``t`` (both L2-normalised here).

    Args:
        z: (B, D) surrogate embeddings.
        t: (B, D) victim embeddings.
        kind: ``"mse"`` (mean over all elements, ``torch.nn.functional.mse_loss``) or ``"cosine"``
            (mean of ``-cos``).

    Returns:
        Scalar loss.
    """
    if z.shape != t.shape:
        raise ValueError(f"z and t must have the same shape, got {tuple(z.shape)} and {tuple(t.shape)}")
    z, t = F.normalize(z, dim=1), F.normalize(t, dim=1)
    if kind == "mse":
        return F.mse_loss(z, t)
    if kind == "cosine":
        return -(z * t).sum(dim=1).mean()
    raise ValueError(f"unknown loss {kind!r}; choose one of {LOSSES}")


@register_attack(
    "stealing",
    "conventional",
    config=ConventionalConfig,
    help="Conventional (Cont-Steal baseline): MSE to victim embeddings of clean queries; N queries",
)
class ConventionalAttack(StealingAttack):
    """Feature regression on clean queries (see module docstring)."""

    config: ConventionalConfig

    def query_cost(self, n: int) -> int:
        return n

    def prepare(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return F.normalize(self.query(images), dim=1)

    def batch_loss(
        self,
        net: EncoderNet,
        images: torch.Tensor,
        index: torch.Tensor,
        state: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        return conventional_loss(net(images), state[index], self.config.loss)
