"""Bring embeddings of one dimension to another: how a surrogate is compared with a victim of another width."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["DIM_MATCH", "match_dim"]

DIM_MATCH = ("pool", "none")


def match_dim(embeddings: torch.Tensor, dim: int, mode: str = "pool") -> torch.Tensor:
    """Bring victim embeddings (N, D_v) to the surrogate's dimension ``dim``.

    ``"pool"`` = 1-d adaptive average pooling (RDA's ``AdaptiveAvgPool1d``); identity when equal.

    Raises:
        ValueError: ``mode="none"`` and the dimensions differ, or an unknown mode.

    >>> match_dim(torch.arange(8.0).view(1, 8), 4)
    tensor([[0.5000, 2.5000, 4.5000, 6.5000]])
    """
    if embeddings.shape[1] == dim:
        return embeddings
    if mode == "pool":
        return F.adaptive_avg_pool1d(embeddings.unsqueeze(1), dim).squeeze(1)
    if mode == "none":
        raise ValueError(
            f"victim embeddings are {embeddings.shape[1]}-d but the surrogate is {dim}-d; use dim_match='pool'"
        )
    raise ValueError(f"unknown dim_match {mode!r}; choose one of {DIM_MATCH}")
