"""Projection heads placed on top of an encoder during contrastive training (and dropped after)."""

from __future__ import annotations

from torch import nn


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

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.net(x)
