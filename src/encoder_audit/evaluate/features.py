"""Embedding a whole dataset through any :class:`~encoder_audit.victim.Encoder`."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ..data.base import ImageDataset
from ..victim import Encoder


def extract_features(
    encoder: Encoder, dataset: ImageDataset, *, batch_size: int = 1024, progress: bool | None = False
) -> torch.Tensor:
    """Embed every image of ``dataset`` (in order).

    Shape:
        returns (N, D) float32.
    """
    outs = []
    for images, _, _ in tqdm(
        dataset.batches(batch_size),
        total=-(-len(dataset) // batch_size),
        disable=progress is False,
        desc="embed",
        unit="batch",
        leave=False,
    ):
        outs.append(encoder.embed(images))
    return torch.cat(outs) if outs else torch.empty(0, encoder.embedding_dim)
