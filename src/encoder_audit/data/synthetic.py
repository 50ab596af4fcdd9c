"""A procedural, deterministic dataset for tests: each class is a distinct oriented pattern.

Class ``c`` draws a sinusoidal grating at angle ``pi * c / classes`` with a class-specific frequency,
plus a random phase, a random blob and pixel noise. Different seeds give different samples; the same
seed gives the same bytes on every machine. The train and test splits use disjoint seeds.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .base import DatasetInfo, ImageDataset, register_dataset


def make_synthetic(
    n: int, *, classes: int = 10, channels: int = 1, size: int = 28, seed: int = 0, noise: float = 0.15
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate ``n`` uint8 images (N, C, size, size) and int64 labels."""
    if n <= 0 or classes <= 0 or size < 4 or channels not in (1, 3):
        raise ValueError("synthetic needs n > 0, classes > 0, size >= 4 and channels in {1, 3}")
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    labels = labels[torch.randperm(n, generator=g)]
    coords = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    angle = math.pi * labels.float() / classes
    freq = 2.0 + 3.0 * (labels.float() % 3)
    phase = torch.rand(n, generator=g) * 2 * math.pi
    proj = xx[None] * torch.cos(angle)[:, None, None] + yy[None] * torch.sin(angle)[:, None, None]
    grating = 0.5 + 0.5 * torch.sin(freq[:, None, None] * math.pi * proj + phase[:, None, None])
    cx, cy = (torch.rand(n, generator=g) * 1.2 - 0.6), (torch.rand(n, generator=g) * 1.2 - 0.6)
    blob = torch.exp(-((xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2) / 0.08)
    img = 0.7 * grating + 0.3 * blob
    img = img[:, None].repeat(1, channels, 1, 1)
    if channels == 3:
        tint = 0.6 + 0.4 * torch.stack([torch.cos(angle), torch.sin(angle), torch.cos(angle + 1.0)], dim=1).abs()
        img = img * tint[:, :, None, None]
    img = img + noise * torch.randn(img.shape, generator=g)
    images = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels.long()


@register_dataset("synthetic", help="procedural oriented gratings, deterministic (for tests and smoke runs)")
def synthetic(
    split: str = "train",
    root: Path | None = None,
    download: bool = False,
    size: int = 28,
    channels: int = 1,
    classes: int = 10,
    n: int | None = None,
    seed: int = 0,
) -> ImageDataset:
    """Procedural oriented gratings, deterministic (for tests and smoke runs)."""
    if split not in ("train", "test"):
        raise ValueError(f"synthetic has splits 'train' and 'test', not {split!r}")
    count = n if n is not None else (2000 if split == "train" else 500)
    images, labels = make_synthetic(
        count, classes=classes, channels=channels, size=size, seed=seed * 2 + (split == "test")
    )
    info = DatasetInfo(
        name="synthetic",
        channels=channels,
        image_size=size,
        num_classes=classes,
        class_names=tuple(f"pattern {i}" for i in range(classes)),
        mean=(0.5,) * channels,
        std=(0.25,) * channels,
    )
    return ImageDataset(images=images, labels=labels, info=info, split=split)
