"""Projection heads placed on top of an encoder during contrastive training (and usually dropped after).

Three kinds (``HEADS``), chosen per training run and recorded in the checkpoint sidecar:

* ``mlp``: SimCLR (Chen et al., 2020, Sec. 2.1): "a MLP with one hidden layer to obtain
  z_i = g(h_i) = W(2) sigma(W(1) h_i)"; also MoCo v2 (Chen, Fan, Girshick, He 2020).
* ``linear``: MoCo v1 (He et al., 2020): the query/key encoders end in "a fc layer ... with 128-D output".
* ``none``: the loss is applied to the encoder output ``h`` itself.

Where the memorisation of the members ends up depends on the head: with an MLP head most of it is
absorbed by the head, which is thrown away before the encoder is served (docs/benchmarks/membership.md
measures the gap on the encoder output ``h`` and the head output ``z``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

__all__ = ["HEADS", "HeadKind", "ProjectionHead", "create_head", "head_output_dim"]

HeadKind = Literal["mlp", "linear", "none"]
HEADS: tuple[str, ...] = ("mlp", "linear", "none")


class ProjectionHead(nn.Module):
    """MLP projection head.

    SimCLR (Chen et al., 2020, Sec. 2.1): "a MLP with one hidden layer to obtain
    z_i = g(h_i) = W(2) sigma(W(1) h_i)". With ``hidden_dim=0`` it is a single linear layer (MoCo v1).

    Args:
        in_dim: encoder feature dimension.
        hidden_dim: hidden width (0 for a linear head).
        out_dim: projection dimension (128 in SimCLR and MoCo).
        batch_norm: batch norm after the hidden layer.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 512, out_dim: int = 128, batch_norm: bool = True) -> None:
        super().__init__()
        if in_dim <= 0 or out_dim <= 0 or hidden_dim < 0:
            raise ValueError("projection head dimensions must be positive")
        if hidden_dim == 0:
            self.net: nn.Module = nn.Linear(in_dim, out_dim)
        else:
            layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim, bias=not batch_norm)]
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers += [nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)]
            self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def head_output_dim(kind: str, in_dim: int, out_dim: int) -> int:
    """Dimension of the head's output ``z`` (``in_dim`` for ``none``)."""
    if kind not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {kind!r}")
    return in_dim if kind == "none" else out_dim


def create_head(
    kind: str, in_dim: int, out_dim: int = 128, *, hidden_dim: int = 0, batch_norm: bool = True
) -> nn.Module:
    """A projection head of ``kind``: ``mlp`` (hidden width ``hidden_dim`` or ``in_dim``), ``linear`` or ``none``.

    Raises:
        ValueError: an unknown kind or non-positive dimensions.

    >>> create_head("none", 128)(torch.ones(2, 128)).shape
    torch.Size([2, 128])
    >>> create_head("linear", 128, 64)(torch.ones(2, 128)).shape
    torch.Size([2, 64])
    """
    if kind not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {kind!r}")
    if kind == "none":
        if in_dim <= 0:
            raise ValueError("projection head dimensions must be positive")
        return nn.Identity()
    if kind == "linear":
        return ProjectionHead(in_dim, 0, out_dim)
    return ProjectionHead(in_dim, hidden_dim or in_dim, out_dim, batch_norm=batch_norm)
