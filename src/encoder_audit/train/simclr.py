"""SimCLR (Chen, Kornblith, Norouzi, Hinton. "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020, arXiv 2002.05709) with the NT-Xent loss.

Defaults follow the SimCLR set-up that BadEncoder, EncoderMI and RDA use for their CIFAR targets
(RDA's ``SimCLR.py``, adapted from BadEncoder: "Adam 1e-3, wd 1e-6, batch 512, temperature 0.5").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..augment import create_views
from ..models.base import EncoderNet
from ..models.heads import HEADS, HeadKind, create_head
from .distributed import gather_with_grad, rank, world_size
from .objective import Objective, register_objective


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, *, gather: bool = True) -> torch.Tensor:
    """Normalized temperature-scaled cross entropy over 2B views (SimCLR eq. 1).

    For each view the positive is the other view of the same image; the 2B - 2 other views are
    negatives. Under DDP (``gather=True``) negatives come from every rank and the loss is the mean over
    this rank's anchors, so the DDP-averaged gradient equals the single-process one.

    Args:
        z1: (B, d) projections of view 1 (any norm; normalized here).
        z2: (B, d) projections of view 2.
        temperature: tau.

    Returns:
        Scalar loss.
    """
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    b = z1.shape[0]
    if gather:
        a1, a2, r = gather_with_grad(z1), gather_with_grad(z2), rank()
    else:
        a1, a2, r = z1, z2, 0
    big_b = a1.shape[0]
    keys = torch.cat([a1, a2])  # (2B, d)
    anchors = torch.cat([z1, z2])  # (2b, d)
    logits = anchors @ keys.T / temperature
    local = torch.arange(b, device=z1.device) + r * b
    self_idx = torch.cat([local, local + big_b])
    pos_idx = torch.cat([local + big_b, local])
    logits = logits.masked_fill(F.one_hot(self_idx, num_classes=2 * big_b).bool(), float("-inf"))
    return F.cross_entropy(logits, pos_idx)


@dataclass(frozen=True)
class SimCLRConfig:
    """SimCLR hyperparameters.

    Attributes:
        temperature: NT-Xent tau (0.5 in BadEncoder/RDA's SimCLR targets).
        projection_dim: output of the projection head ("we use 128-dimensional latent space").
        hidden_dim: hidden width of the head (0 = the encoder's feature dimension).
        views: augmentation recipe name (``encoder_audit.augment.VIEWS``).
        head: ``mlp`` (SimCLR: "a MLP with one hidden layer"), ``linear`` (one fc layer, as MoCo v1) or
            ``none`` (NT-Xent on the encoder output itself, which then holds all of the memorisation).
    """

    temperature: float = 0.5
    projection_dim: int = 128
    hidden_dim: int = 0
    views: str = "simclr"
    head: HeadKind = "mlp"

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.projection_dim <= 0 or self.hidden_dim < 0:
            raise ValueError("projection_dim must be positive and hidden_dim >= 0")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")


class SimCLR(Objective):
    """Two views per image through encoder + projection head, NT-Xent between them."""

    views_per_image = 2

    def __init__(self, encoder: EncoderNet, config: SimCLRConfig | None = None) -> None:
        super().__init__()
        self.config = config or SimCLRConfig()
        self.encoder = encoder
        c = self.config
        self.head = create_head(c.head, encoder.feature_dim, c.projection_dim, hidden_dim=c.hidden_dim)
        self.views = create_views(self.config.views, size=encoder.image_size)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
        b = images.shape[0]
        both = torch.cat([self.views(images, generator), self.views(images, generator)])
        z = self.head(self.encoder(both))
        return nt_xent_loss(z[:b], z[b:], self.config.temperature, gather=world_size() > 1)


@register_objective("simclr", config=SimCLRConfig, help="SimCLR: NT-Xent between two augmented views")
def _make_simclr(encoder: EncoderNet, config: SimCLRConfig | None = None) -> SimCLR:
    """SimCLR: NT-Xent between two augmented views."""
    return SimCLR(encoder, config)
