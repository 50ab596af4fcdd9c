"""STL-10 (Coates, Ng and Lee, "An Analysis of Single-Layer Networks in Unsupervised Feature Learning",
AISTATS 2011), read from the official binary archive ``stl10_binary/``.

Files: ``{train,test,unlabeled}_X.bin`` hold uint8 images of 3x96x96, "stored in column-major order,
one channel at a time" (the archive's README): read as (N, 3, 96, 96) the last two axes are (x, y),
so they are swapped to (y, x). ``{train,test}_y.bin`` hold one label byte per image, 1..10, mapped to
0..9; ``class_names.txt`` lists the names. Sizes: 5,000 train, 8,000 test and 100,000 unlabeled
images (the last 2.7 GB, memory-mapped rather than read, so loading it copies nothing until images
are used). ``size=`` downsamples once at load (e.g. 32 for CIFAR-sized encoders), a chunk at a time.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import CorruptFileError
from .base import DatasetInfo, ImageDataset, register_dataset
from .locate import find_dataset_dir
from .stats import train_stats

log = logging.getLogger(__name__)

CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
_SIDE = 96
_IMAGE_BYTES = 3 * _SIDE * _SIDE
_SPLITS = ("train", "test", "unlabeled")
_HINT = (
    "Expected the official STL-10 binary archive (stl10_binary/train_X.bin, train_y.bin, test_X.bin, test_y.bin, "
    "unlabeled_X.bin, class_names.txt) from https://cs.stanford.edu/~acoates/stl10/, extracted under a data root."
)


def read_stl10_images(path: Path) -> np.ndarray:
    """Memory-map an STL-10 ``*_X.bin`` file as uint8 (N, 3, 96, 96) in (channel, row, column) order.

    The mapping is copy-on-write: nothing is read until used and the file is never modified.

    Raises:
        CorruptFileError: the size is not a whole number of 3x96x96 images.
    """
    size = path.stat().st_size
    if size == 0 or size % _IMAGE_BYTES:
        raise CorruptFileError(f"{path} is not an STL-10 image file: {size} bytes is not a multiple of {_IMAGE_BYTES}")
    raw = np.memmap(path, dtype=np.uint8, mode="c", shape=(size // _IMAGE_BYTES, 3, _SIDE, _SIDE))
    return raw.transpose(0, 1, 3, 2)  # stored column-major: (N, C, x, y) -> (N, C, y, x)


def read_stl10_labels(path: Path, count: int) -> np.ndarray:
    """Labels of an STL-10 ``*_y.bin`` file, shifted from 1..10 to 0..9.

    Raises:
        CorruptFileError: wrong count or a label outside 1..10.
    """
    y = np.fromfile(path, dtype=np.uint8)
    if len(y) != count:
        raise CorruptFileError(f"{path} has {len(y)} labels for {count} images")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise CorruptFileError(f"{path}: labels must be 1..10, found {int(y.min())}..{int(y.max())}")
    return y.astype(np.int64) - 1


def downsample(
    images: np.ndarray | torch.Tensor, size: int, *, chunk: int = 512, progress: bool | None = False
) -> torch.Tensor:
    """Resize uint8 (N, C, H, W) images to ``size`` x ``size`` (antialiased bilinear), a chunk at a time."""
    n = int(images.shape[0])
    out = torch.empty((n, int(images.shape[1]), size, size), dtype=torch.uint8)
    for start in tqdm(range(0, n, chunk), disable=progress is False, desc="resize", unit="chunk", leave=False):
        block = torch.as_tensor(np.ascontiguousarray(images[start : start + chunk])).float()
        resized = F.interpolate(block, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + chunk] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _class_names(d: Path) -> tuple[str, ...]:
    path = d / "class_names.txt"
    if path.is_file():
        names = tuple(s.strip() for s in path.read_text(encoding="utf-8", errors="replace").splitlines() if s.strip())
        if len(names) >= 10:
            return names[:10]
    return CLASSES


@register_dataset("stl10", help="STL-10, 96x96 RGB, 10 classes; splits train, test, unlabeled (memory-mapped)")
def stl10(
    split: str = "train",
    root: Path | None = None,
    download: bool = False,
    size: int | None = None,
    progress: bool | None = False,
) -> ImageDataset:
    """STL-10, 96x96 RGB, 10 classes; splits train, test, unlabeled (memory-mapped).

    Args:
        split: ``train`` (5,000), ``test`` (8,000) or ``unlabeled`` (100,000, labels None).
        root: data root searched first.
        download: fetch the archive with torchvision (2.6 GB) if nothing is found.
        size: side length to downsample to once at load (None keeps 96 and the memory map).
        progress: show a progress bar while resizing.

    Raises:
        DataNotFoundError: files missing. CorruptFileError: a file of the wrong size or bad labels.
    """
    if split not in _SPLITS:
        raise ValueError(f"stl10 has splits {', '.join(_SPLITS)}, not {split!r}")
    if size is not None and not 4 <= int(size) <= 1024:
        raise ValueError(f"stl10 size must be between 4 and 1024, not {size}")
    needed = [f"{split}_X.bin"] + ([] if split == "unlabeled" else [f"{split}_y.bin"])

    def fetch(target: Path) -> None:
        from torchvision.datasets import STL10

        STL10(str(target), split=split, download=True)

    d = find_dataset_dir(
        "stl10",
        split,
        root,
        subdirs=("stl10_binary", "stl10/stl10_binary", "stl10", "STL10/stl10_binary"),
        required=needed,
        hint=_HINT,
        download=fetch if download else None,
    )
    x = read_stl10_images(d / f"{split}_X.bin")
    labels = None if split == "unlabeled" else torch.from_numpy(read_stl10_labels(d / f"{split}_y.bin", len(x)))
    train_file = d / "train_X.bin"
    if not train_file.is_file():
        log.warning("stl10: no train_X.bin beside %s; normalization measured on the %s split", d, split)
        train_file = d / f"{split}_X.bin"
    mean, std = train_stats([train_file], lambda: read_stl10_images(train_file))
    if size is None or int(size) == _SIDE:
        images = torch.from_numpy(x)  # a strided view of the copy-on-write memory map: nothing copied
        side = _SIDE
    else:
        side = int(size)
        images = downsample(x, side, progress=progress)
    info = DatasetInfo(
        name="stl10", channels=3, image_size=side, num_classes=10, class_names=_class_names(d), mean=mean, std=std
    )
    return ImageDataset(images=images, labels=labels, info=info, split=split)
