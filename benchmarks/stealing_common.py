"""Shared pieces of the stealing benchmarks: the attacker's query pool and the quick-scale attack options."""

from __future__ import annotations

from typing import Any

import torch

from encoder_audit.data import ImageDataset, create_dataset

# The quick scale of docs/benchmarks/stealing.md: cnn-small surrogate, RDA with Q = 2 training views.
QUICK_OPTIONS: dict[str, dict[str, Any]] = {"rda": {"train_views": 2}}
QUICK_COMMON: dict[str, Any] = {"surrogate": "cnn-small"}


def query_pool(victim_images: int = 20_000, victim_seed: int = 0) -> ImageDataset:
    """The Fashion-MNIST train images the quick victim was not trained on (40,000; same distribution)."""
    full = create_dataset("fashion-mnist", "train")
    used = torch.randperm(len(full), generator=torch.Generator().manual_seed(victim_seed))[:victim_images]
    mask = torch.ones(len(full), dtype=torch.bool)
    mask[used] = False
    return full.subset(torch.nonzero(mask).flatten())
