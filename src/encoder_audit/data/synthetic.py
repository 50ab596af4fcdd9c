"""A procedural, deterministic dataset for tests: oriented gratings hidden among nuisance variation.

Class ``c`` of ``k`` is a sinusoidal grating whose orientation is ``+/- (pi/2) * c / (k - 1)``: ten
orientations from 0 to 90 degrees, each drawn with a random sign, so that a horizontal flip (part of
every contrastive augmentation recipe) maps a class onto itself and contrastive training can learn
it. Everything else is nuisance, drawn independently of the class: orientation jitter (std 0.04 rad),
spatial frequency (2-4 cycles per image), phase, grating contrast (0.2-0.5), brightness offset, four
soft blobs of random size, place and sign (clutter), and per-pixel Gaussian noise. With three
channels each image also gets a random per-channel gain, so colour carries no class information.

The classes are separable (the orientation of the strongest Fourier component recovers them; see
``tests/data/test_synthetic.py``) but not trivially: a randomly initialised ``cnn-small`` reaches
well below 100% linear-probe accuracy (measured in ``docs/DATA.md``), so a trained encoder has room
to show that it learned something. Different seeds give different samples; the same seed gives the
same bytes on every machine. The train and test splits use disjoint seeds.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .base import DatasetInfo, ImageDataset, register_dataset


def make_synthetic(
    n: int, *, classes: int = 10, channels: int = 1, size: int = 28, seed: int = 0, noise: float = 0.15
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate ``n`` uint8 images (N, C, size, size) and int64 labels (balanced, shuffled)."""
    if n <= 0 or classes <= 0 or size < 4 or channels not in (1, 3):
        raise ValueError("synthetic needs n > 0, classes > 0, size >= 4 and channels in {1, 3}")
    if noise < 0:
        raise ValueError("synthetic noise must be >= 0")
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    labels = labels[torch.randperm(n, generator=g)]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=g)

    def per_image(t: torch.Tensor) -> torch.Tensor:
        return t[:, None, None]

    coords = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    # class signal: orientation in [0, pi/2], mirrored at random (flip-invariant), slightly jittered
    sign = torch.randint(0, 2, (n,), generator=g).float() * 2 - 1
    angle = sign * (math.pi / 2) * labels.float() / max(classes - 1, 1) + 0.04 * torch.randn(n, generator=g)
    freq, phase, contrast = uniform(2.0, 4.0), uniform(0, 2 * math.pi), uniform(0.2, 0.5)
    proj = xx[None] * per_image(torch.cos(angle)) + yy[None] * per_image(torch.sin(angle))
    img = per_image(contrast) * torch.sin(per_image(freq) * math.pi * proj + per_image(phase))
    # nuisance: brightness offset and soft blobs of random size, place and sign
    img = img + 0.5 + per_image(uniform(-0.15, 0.15))
    for _ in range(4):
        bx, by, width, amp = uniform(-1, 1), uniform(-1, 1), uniform(0.15, 0.5), uniform(-0.075, 0.075)
        dist = (xx[None] - per_image(bx)) ** 2 + (yy[None] - per_image(by)) ** 2
        img = img + per_image(amp) * torch.exp(-dist / (2 * per_image(width) ** 2))
    img = img[:, None].repeat(1, channels, 1, 1)
    if channels == 3:
        img = img * (0.7 + 0.3 * torch.rand(n, 3, 1, 1, generator=g))
    img = img + noise * torch.randn(img.shape, generator=g)
    images = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels.long()


@register_dataset("synthetic", help="procedural oriented gratings among nuisance variation, deterministic (tests)")
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
    """Procedural oriented gratings among nuisance variation, deterministic (tests)."""
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
        # channel_stats of create_dataset("synthetic", n=2000) with 1 and 3 channels
        mean=(0.5,) if channels == 1 else (0.43,) * 3,
        std=(0.29,) if channels == 1 else (0.265,) * 3,
    )
    return ImageDataset(images=images, labels=labels, info=info, split=split)
