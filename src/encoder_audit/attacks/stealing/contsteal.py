"""Cont-Steal: end-to-end contrastive stealing (Sha, He, Yu, Backes, Zhang, CVPR 2023, arXiv 2201.07513).

Every epoch, every query image is augmented afresh and the augmented view is sent to the victim, so
the query cost grows with training: **N x epochs** images (RDA: "N·100 = 250,000 at N = 2,500").

Two variants:

* ``"rda"`` (default; RDA's re-implementation ``Con-Steal.py``, the one RDA compares against): the
  victim sees augmented view 1, the surrogate an independent view 2 (both the RDA 0.75-crop chain),
  and with t = victim and z = surrogate embeddings (L2-normalised), tau = 0.07 and the positive left
  out of the denominator:

      L = (1/B) sum_i -log[ exp(t_i.z_i/tau) / (sum_{j!=i} exp(t_i.z_j/tau) + sum_{j!=i} exp(z_i.z_j/tau)) ]

* ``"official"`` (``contrastive_steal.py``): the *same* augmented view goes to both encoders and the
  loss is the symmetric NT-Xent over [t; z] (SimCLR's) at the official temperature 0.5.

The temperature follows the variant (0.07 / 0.5) unless set explicitly.

With ``steps`` set (equal-compute comparisons) the cost is the images of the steps actually taken:
a partial last epoch queries only its batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...models.base import EncoderNet
from ...train.simclr import nt_xent_loss
from ..registry import register_attack
from .base import StealingAttack, StealingConfig, step_sizes
from .views import stealing_views

__all__ = ["ContStealAttack", "ContStealConfig", "contsteal_loss"]

VARIANTS = ("rda", "official")
TEMPERATURES = {"rda": 0.07, "official": 0.5}


@dataclass(frozen=True)
class ContStealConfig(StealingConfig):
    """Attributes:
    variant: ``"rda"`` (independent views, decoupled loss) or ``"official"`` (same view, NT-Xent).
    temperature: tau; None: the variant's (0.07 in RDA's re-implementation, 0.5 in the official code).
    views: view recipe of the queries and surrogate views (``"rda-train"``, RDA's 0.75-crop chain).
    """

    variant: str = "rda"
    temperature: float | None = None
    views: str = "rda-train"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.temperature is not None and self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")

    @property
    def tau(self) -> float:
        """The temperature in use (the variant's unless set)."""
        return self.temperature if self.temperature is not None else TEMPERATURES[self.variant]


def contsteal_loss(t: torch.Tensor, z: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """RDA's Cont-Steal loss (decoupled: the positive is not in the denominator).

    Args:
        t: (B, D) victim embeddings (normalised here).
        z: (B, D) surrogate embeddings (normalised here).
        temperature: tau.

    Returns:
        Scalar loss.
    """
    if t.shape != z.shape or t.shape[0] < 2:
        raise ValueError(f"t and z must have the same shape with B >= 2, got {tuple(t.shape)}, {tuple(z.shape)}")
    t, z = F.normalize(t, dim=1), F.normalize(z, dim=1)
    b = t.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=t.device)
    tz = t @ z.T / temperature  # t_i . z_j
    zz = z @ z.T / temperature
    pos = tz.diagonal()
    neg = torch.cat([tz.masked_fill(eye, -math.inf), zz.masked_fill(eye, -math.inf)], dim=1)
    return (torch.logsumexp(neg, dim=1) - pos).mean()


@register_attack(
    "stealing",
    "contsteal",
    config=ContStealConfig,
    help="Cont-Steal (CVPR'23): contrastive, fresh augmented queries every step; N x epochs queries",
)
class ContStealAttack(StealingAttack):
    """Queries fresh augmented views every step (see module docstring)."""

    config: ContStealConfig
    uses_views = True
    queries_during_training = True

    def query_cost(self, n: int) -> int:
        return sum(step_sizes(n, self.config))

    def api_calls(self, n: int) -> int:
        qb = self.config.query_batch_size
        return sum(math.ceil(size / qb) for size in step_sizes(n, self.config))

    def prepare(self, images: torch.Tensor, generator: torch.Generator) -> None:
        self._views = stealing_views(self.config.views)
        return None

    def batch_loss(
        self, net: EncoderNet, images: torch.Tensor, index: torch.Tensor, state: None, generator: torch.Generator
    ) -> torch.Tensor:
        c = self.config
        v1 = self._views(images.cpu(), generator)
        t = self.query(v1)
        if c.variant == "official":
            return nt_xent_loss(t, net(v1.to(images.device)), c.tau, gather=False)
        v2 = self._views(images.cpu(), generator).to(images.device)
        return contsteal_loss(t, net(v2), c.tau)
