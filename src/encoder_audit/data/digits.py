"""scikit-learn's bundled 8x8 handwritten digits (UCI), upsampled to a chosen size.

1,797 images; a fixed, seeded 70/30 stratified split gives ``train`` and ``test``. Useful as a second
downstream task for an encoder trained on Fashion-MNIST, with no files to fetch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .base import DatasetInfo, ImageDataset, channel_stats, register_dataset


@register_dataset("digits", help="scikit-learn digits (1,797 images), upsampled to 28x28 grayscale")
def digits(split: str = "train", root: Path | None = None, download: bool = False, size: int = 28) -> ImageDataset:
    """scikit-learn digits (1,797 images), upsampled to 28x28 grayscale."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test"):
        raise ValueError(f"digits has splits 'train' and 'test', not {split!r}")
    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    images = (x * 255).round().to(torch.uint8)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(idx, test_size=0.3, random_state=0, stratify=labels.numpy())
    chosen = np.sort(train_idx if split == "train" else test_idx)
    mean, std = channel_stats(images[np.sort(train_idx)])
    info = DatasetInfo(
        name="digits",
        channels=1,
        image_size=size,
        num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
        mean=mean,
        std=std,
    )
    t = torch.as_tensor(chosen)
    return ImageDataset(images=images[t], labels=labels[t], info=info, split=split, indices=chosen)
