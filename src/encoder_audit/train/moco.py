"""MoCo (He, Fan, Wu, Xie, Girshick. "Momentum Contrast for Unsupervised Visual Representation
Learning", CVPR 2020, arXiv 1911.05722) and the v2 recipe (Chen, Fan, Girshick, He, arXiv 2003.04297).

A query encoder is trained with InfoNCE against the key of the same image from a momentum encoder
and a queue of past keys. v1: linear head, tau = 0.07 ("we set the temperature to 0.07"); v2: MLP
head, tau = 0.2, blur in the augmentations. On one device, batch norm of the key encoder is computed
per chunk of a shuffled batch, emulating the paper's "shuffling BN" across GPUs so that the model
cannot cheat through batch statistics.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..augment import create_views
from ..models.base import EncoderNet
from ..models.heads import HEADS, HeadKind, create_head, head_output_dim
from .distributed import gather_no_grad
from .objective import Objective, register_objective


def moco_infonce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of MoCo (eq. 1): positive logit q.k, negatives q.queue; inputs already unit-norm.

    Shape:
        q, k: (B, d); queue: (K, d).
    """
    pos = (q * k).sum(dim=1, keepdim=True)
    neg = q @ queue.T
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


@dataclass(frozen=True)
class MoCoConfig:
    """MoCo hyperparameters.

    Attributes:
        version: ``v1`` or ``v2``.
        queue_size: K; the paper uses 65,536 on ImageNet, far more than small datasets need.
        momentum: m of the key encoder ("m = 0.999"); 0.99 suits short CPU runs.
        temperature: tau (None = 0.07 for v1, 0.2 for v2).
        projection_dim: key/query dimension (128).
        shuffle_bn_splits: chunks for per-chunk key batch norm on one device.
        head: ``linear`` (v1: "a fc layer ... 128-D output"), ``mlp`` (v2: "a 2-layer MLP head") or
            ``none`` (InfoNCE on the encoder output); None = the version's own head.
    """

    version: Literal["v1", "v2"] = "v2"
    queue_size: int = 4096
    momentum: float = 0.99
    temperature: float | None = None
    projection_dim: int = 128
    shuffle_bn_splits: int = 4
    head: HeadKind | None = None

    def __post_init__(self) -> None:
        if self.version not in ("v1", "v2"):
            raise ValueError(f"version must be v1 or v2, got {self.version!r}")
        if self.head is not None and self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.queue_size <= 0:
            raise ValueError(f"queue_size must be positive, got {self.queue_size}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.temperature is not None and self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.shuffle_bn_splits < 1:
            raise ValueError("shuffle_bn_splits must be >= 1")

    @property
    def tau(self) -> float:
        if self.temperature is not None:
            return self.temperature
        return 0.07 if self.version == "v1" else 0.2

    @property
    def head_kind(self) -> str:
        """The head in use: ``head``, or the version's own (v1 linear, v2 MLP)."""
        if self.head is not None:
            return self.head
        return "linear" if self.version == "v1" else "mlp"


class MoCo(Objective):
    """Query encoder + head trained against a momentum key encoder and a queue."""

    views_per_image = 2
    queue: torch.Tensor
    queue_ptr: torch.Tensor

    def __init__(self, encoder: EncoderNet, config: MoCoConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or MoCoConfig()
        self.encoder = encoder
        self.head = create_head(c.head_kind, encoder.feature_dim, c.projection_dim, batch_norm=False)
        dim = head_output_dim(c.head_kind, encoder.feature_dim, c.projection_dim)
        self.key_encoder = copy.deepcopy(encoder)
        self.key_head = copy.deepcopy(self.head)
        for p in [*self.key_encoder.parameters(), *self.key_head.parameters()]:
            p.requires_grad_(False)
        self.register_buffer("queue", F.normalize(torch.randn(c.queue_size, dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.views = create_views("moco-v1" if c.version == "v1" else "moco-v2", size=encoder.image_size)

    def _keys(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = x.shape[0]
        perm = torch.randperm(n, generator=generator).to(x.device)
        chunks = [
            F.normalize(self.key_head(self.key_encoder(chunk)), dim=1)
            for chunk in x[perm].chunk(min(self.config.shuffle_bn_splits, n))
        ]
        k = torch.empty(n, chunks[0].shape[1], device=x.device, dtype=chunks[0].dtype)
        k[perm] = torch.cat(chunks)
        return k

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
        xq, xk = self.views(images, generator), self.views(images, generator)
        q = F.normalize(self.head(self.encoder(xq)), dim=1)
        with torch.no_grad():
            k = self._keys(xk, generator)
        loss = moco_infonce(q, k, self.queue.clone().detach(), self.config.tau)
        self._enqueue(gather_no_grad(k))
        return loss

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        size = self.queue.shape[0]
        ptr = int(self.queue_ptr)
        idx = (torch.arange(keys.shape[0], device=keys.device) + ptr) % size
        # a batch larger than the queue: only its newest `size` keys survive, at distinct slots
        self.queue[idx[-size:]] = keys[-size:]
        self.queue_ptr.fill_((ptr + keys.shape[0]) % size)

    @torch.no_grad()
    def after_step(self) -> None:
        m = self.config.momentum
        for online, target in (
            (self.encoder, self.key_encoder),
            (self.head, self.key_head),
        ):
            for po, pt in zip(online.parameters(), target.parameters()):
                pt.mul_(m).add_(po.detach(), alpha=1 - m)
            for bo, bt in zip(online.buffers(), target.buffers()):
                bt.copy_(bo)


@register_objective("moco", config=MoCoConfig, help="MoCo v1/v2: momentum encoder + queue")
def _make_moco(encoder: EncoderNet, config: MoCoConfig | None = None) -> MoCo:
    """MoCo v1/v2: momentum encoder + queue."""
    return MoCo(encoder, config)
