"""In-memory image datasets: uint8 tensors plus the facts an encoder needs about them.

Every dataset, whatever its on-disk format, is loaded into an :class:`ImageDataset`: ``images`` is a
``uint8`` tensor of shape (N, C, H, W) and ``labels`` an ``int64`` tensor of shape (N,) or ``None``
for unlabeled data. Batches come out as float tensors in [0, 1]; normalization belongs to the
encoder, never to the data.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..registry import Registry

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "ImageDataset",
    "create_dataset",
    "default_data_root",
    "register_dataset",
]


@dataclass(frozen=True)
class DatasetInfo:
    """What an encoder and a report need to know about a dataset.

    Attributes:
        name: registry name ("fashion-mnist", "cifar10", ...).
        channels: image channels (1 or 3).
        image_size: side length in pixels (images are square).
        num_classes: number of classes, 0 for unlabeled data.
        class_names: one name per class (used for captions and reports).
        mean: per-channel mean of the training split in [0, 1] units.
        std: per-channel standard deviation of the training split.
    """

    name: str
    channels: int
    image_size: int
    num_classes: int
    class_names: tuple[str, ...] = ()
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)


@dataclass
class ImageDataset:
    """Images held as one uint8 tensor, with optional labels.

    Shape:
        images: (N, C, H, W), dtype uint8.
        labels: (N,), dtype int64, or None.

    Attributes:
        indices: row numbers in the source split (kept through :meth:`subset`).
        paths: for datasets read from image files, each row's file path relative to the dataset
            folder (kept through :meth:`subset`), so that outputs can be written at the same places.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    info: DatasetInfo
    split: str = "train"
    indices: np.ndarray | None = field(default=None, repr=False)
    paths: list[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError("labels and images differ in length")
        if self.indices is None:
            self.indices = np.arange(len(self.images), dtype=np.int64)
        if self.paths is not None and len(self.paths) != len(self.images):
            raise ValueError("paths and images differ in length")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def name(self) -> str:
        return self.info.name

    def float_images(self, index: Sequence[int] | torch.Tensor | slice | None = None) -> torch.Tensor:
        """Images (or a subset) as float32 in [0, 1]."""
        x = self.images if index is None else self.images[index]
        return x.float().div_(255.0)

    def subset(self, index: Sequence[int] | np.ndarray | torch.Tensor, split: str | None = None) -> ImageDataset:
        """A new dataset holding the rows ``index``; ``indices`` keep pointing into the source split."""
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        assert self.indices is not None
        return ImageDataset(
            images=self.images[idx],
            labels=None if self.labels is None else self.labels[idx],
            info=self.info,
            split=split or self.split,
            indices=self.indices[idx.numpy()],
            paths=None if self.paths is None else [self.paths[int(i)] for i in idx],
        )

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]]:
        """Yield ``(images in [0,1], labels or None, row indices)`` batches."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - (n % batch_size) if drop_last else n
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size]
            yield (
                self.float_images(idx),
                None if self.labels is None else self.labels[idx],
                idx,
            )

    def fingerprint(self) -> str:
        """sha256 over dataset name, split and the source indices: names exactly which samples were used."""
        h = hashlib.sha256(f"{self.info.name}:{self.split}:".encode())
        assert self.indices is not None
        h.update(np.ascontiguousarray(self.indices, dtype=np.int64).tobytes())
        return h.hexdigest()

    def with_info(self, **changes: Any) -> ImageDataset:
        return ImageDataset(
            self.images, self.labels, replace(self.info, **changes), self.split, self.indices, self.paths
        )


DATASETS: Registry[ImageDataset] = Registry("dataset")
register_dataset = DATASETS.register


def subsample(ds: ImageDataset, n: int | None, seed: int) -> ImageDataset:
    """A seeded random subset of ``n`` images of ``ds`` in their original order (``ds`` itself if ``n`` is
    None or not smaller than it): the one way every audit caps a split."""
    if n is None or len(ds) <= n:
        return ds
    g = torch.Generator().manual_seed(int(seed))
    return ds.subset(torch.randperm(len(ds), generator=g)[:n].sort().values)


def default_data_root() -> Path:
    """``$ENCODER_AUDIT_DATA`` if set, else ``~/.cache/encoder-audit/data``."""
    env = os.environ.get("ENCODER_AUDIT_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "encoder-audit" / "data"


def create_dataset(
    name: str,
    split: str = "train",
    *,
    root: str | Path | None = None,
    download: bool = False,
    **kwargs: object,
) -> ImageDataset:
    """Load a dataset by name.

    Args:
        name: a registered name (``fashion-mnist``, ``digits``, ``cifar10``, ``cifar100``, ``stl10``,
            ``svhn``, ``synthetic``) or ``imagefolder:PATH``.
        split: ``train`` or ``test`` (``unlabeled`` for stl10).
        root: data root; defaults to ``$ENCODER_AUDIT_DATA`` then ``~/.cache/encoder-audit/data``.
        download: allow fetching missing files (never happens otherwise).
        **kwargs: dataset-specific options (e.g. ``size`` for synthetic).

    Raises:
        UnknownNameError: no such dataset.
        DataNotFoundError: the files are missing; the message says where we looked.
    """
    if name.startswith("imagefolder:"):
        kwargs["path"] = name.split(":", 1)[1]
        name = "imagefolder"
    factory = DATASETS.get(name)
    return factory(split=split, root=Path(root).expanduser() if root else None, download=download, **kwargs)


def channel_stats(
    images: torch.Tensor | np.ndarray, *, max_images: int = 10_000, chunk: int = 1024
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] units of uint8 (N, C, H, W) images.

    At most ``max_images`` evenly spaced images are used, read ``chunk`` at a time with float64
    accumulators, so a memory-mapped array is never copied whole.
    """
    n = int(images.shape[0])
    if n == 0:
        raise ValueError("cannot compute channel statistics of an empty dataset")
    rows = np.linspace(0, n - 1, max_images).round().astype(np.int64) if n > max_images else np.arange(n)
    total = np.zeros(images.shape[1])
    total_sq = np.zeros(images.shape[1])
    count = 0
    for start in range(0, len(rows), chunk):
        sel = rows[start : start + chunk]
        block = images[torch.as_tensor(sel)] if isinstance(images, torch.Tensor) else images[sel]
        x = np.asarray(block, dtype=np.float64) / 255.0
        total += x.sum(axis=(0, 2, 3))
        total_sq += np.square(x).sum(axis=(0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    var = np.maximum(total_sq / count - mean**2, 0.0) * count / max(count - 1, 1)
    std = np.maximum(np.sqrt(var), 1e-3)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)
