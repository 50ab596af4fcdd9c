"""CIFAR-10 and CIFAR-100 (Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009).

Both on-disk versions of the official archives are read:

- **binary version** (preferred, read natively with numpy): ``cifar-10-batches-bin/data_batch_{1..5}.bin``
  and ``test_batch.bin``, each record one label byte then 3,072 pixel bytes (1,024 red, 1,024 green,
  1,024 blue, rows top to bottom), names in ``batches.meta.txt``; ``cifar-100-binary/train.bin`` and
  ``test.bin``, each record a coarse label byte, a fine label byte and 3,072 pixel bytes, names in
  ``fine_label_names.txt`` / ``coarse_label_names.txt``.
- **python version** (what torchvision downloads): ``cifar-10-batches-py/data_batch_{1..5}``,
  ``test_batch``, ``batches.meta``; ``cifar-100-python/train``, ``test``, ``meta``. These are pickles;
  they are read with :func:`~encoder_audit.data.safe_pickle.load_restricted_pickle`, which admits only
  numpy arrays, so a crafted file cannot run code.

Images are 3x32x32; 50,000 train and 10,000 test images. ``info.mean``/``info.std`` are measured on
the training files found.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CorruptFileError
from .base import DatasetInfo, ImageDataset, register_dataset
from .locate import find_dataset_dir
from .safe_pickle import load_restricted_pickle
from .stats import Stats, train_stats

log = logging.getLogger(__name__)

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_PIXELS = 3 * 32 * 32
_CIFAR10_DIRS = (
    "cifar-10-batches-bin",
    "cifar-10-batches-py",
    "cifar10/cifar-10-batches-bin",
    "cifar10/cifar-10-batches-py",
    "cifar10",
    "CIFAR10/cifar-10-batches-py",
)
_CIFAR100_DIRS = (
    "cifar-100-binary",
    "cifar-100-python",
    "cifar100/cifar-100-binary",
    "cifar100/cifar-100-python",
    "cifar100",
    "CIFAR100/cifar-100-python",
)
_HINT10 = (
    "Expected the official CIFAR-10 binary version (cifar-10-batches-bin/data_batch_1.bin ... test_batch.bin) "
    "or python version (cifar-10-batches-py/data_batch_1 ... test_batch) from "
    "https://www.cs.toronto.edu/~kriz/cifar.html, extracted under a data root."
)
_HINT100 = (
    "Expected the official CIFAR-100 binary version (cifar-100-binary/train.bin, test.bin) or python version "
    "(cifar-100-python/train, test) from https://www.cs.toronto.edu/~kriz/cifar.html, extracted under a data root."
)


def _check_split(name: str, split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"{name} has splits 'train' and 'test', not {split!r}")


# --------------------------------------------------------------------------- CIFAR-10 files


def _cifar10_train_batches(d: Path, suffix: str) -> list[Path]:
    """``data_batch_N{suffix}`` files in numeric order (the official archives hold N = 1..5)."""
    pattern = re.compile(rf"data_batch_(\d+){re.escape(suffix)}$")
    found = sorted(
        (int(m.group(1)), p) for p in d.glob(f"data_batch_*{suffix}") if (m := pattern.match(p.name)) and p.is_file()
    )
    return [p for _, p in found]


def _cifar10_files(d: Path, split: str) -> tuple[str, list[Path]] | None:
    """(format, files) of a CIFAR-10 split in folder ``d``, binary preferred, or None."""
    for fmt, suffix in (("binary", ".bin"), ("python", "")):
        if split == "train":
            files = _cifar10_train_batches(d, suffix)
        else:
            files = [d / f"test_batch{suffix}"] if (d / f"test_batch{suffix}").is_file() else []
        if files:
            return fmt, files
    return None


def read_cifar_binary(path: Path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR binary file.

    Args:
        path: the ``.bin`` file.
        label_bytes: 1 for CIFAR-10 (label), 2 for CIFAR-100 (coarse label, fine label).

    Returns:
        images uint8 (N, 3, 32, 32) and labels uint8 (N, label_bytes).

    Raises:
        CorruptFileError: the size is not a whole number of records.
    """
    record = label_bytes + _PIXELS
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise CorruptFileError(f"cannot read {path}: {exc}") from None
    if raw.size == 0 or raw.size % record:
        raise CorruptFileError(
            f"{path} is not a CIFAR binary file: {raw.size} bytes is not a whole number of {record}-byte records"
        )
    rows = raw.reshape(-1, record)
    return np.ascontiguousarray(rows[:, label_bytes:]).reshape(-1, 3, 32, 32), rows[:, :label_bytes].copy()


def _read_python_batch(path: Path, label_keys: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """images (N, 3, 32, 32) and labels (N, len(label_keys)) of one python-version batch."""
    obj = load_restricted_pickle(path)
    if not isinstance(obj, dict):
        raise CorruptFileError(f"{path} does not hold a CIFAR batch dict")
    obj = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    data = obj.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        raise CorruptFileError(f"{path}: 'data' must be a uint8 array of shape (N, {_PIXELS})")
    labels = []
    for key in label_keys:
        vals = obj.get(key)
        if vals is None or len(vals) != len(data):
            raise CorruptFileError(f"{path}: {key!r} is missing or does not match the {len(data)} images")
        labels.append(np.asarray(vals, dtype=np.int64))
    return data.reshape(-1, 3, 32, 32), np.stack(labels, axis=1)


def _read_names_txt(path: Path) -> tuple[str, ...] | None:
    if not path.is_file():
        return None
    return tuple(
        line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()
    )


def _read_names_pickle(path: Path, key: str) -> tuple[str, ...] | None:
    if not path.is_file():
        return None
    obj: Any = load_restricted_pickle(path)
    if isinstance(obj, dict):
        obj = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
        names = obj.get(key)
        if isinstance(names, list | tuple):
            return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)
    raise CorruptFileError(f"{path}: no {key!r} list of class names")


def _load_cifar10_split(fmt: str, files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    parts = [read_cifar_binary(p, 1) if fmt == "binary" else _read_python_batch(p, ("labels",)) for p in files]
    images = np.concatenate([x for x, _ in parts])
    labels = np.concatenate([y for _, y in parts])[:, 0].astype(np.int64)
    return images, labels


def _check_labels(labels: np.ndarray, num_classes: int, files: list[Path]) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise CorruptFileError(
            f"{', '.join(str(f) for f in files)}: labels outside 0..{num_classes - 1} (found {int(labels.max())})"
        )


FilesFn = Callable[[Path, str], "tuple[str, list[Path]] | None"]
LoadFn = Callable[[str, list[Path]], "tuple[np.ndarray, np.ndarray]"]


def _stats(d: Path, split: str, files_fn: FilesFn, load_fn: LoadFn, images: np.ndarray) -> Stats:
    """Training-split statistics; the loaded split's own if the training files are absent."""
    own = files_fn(d, split)
    assert own is not None
    if split == "train":
        return train_stats(own[1], lambda: images)
    found = files_fn(d, "train")
    if found is None:
        log.warning("%s: no training files beside the %s split; normalization measured on %s", d, split, split)
        return train_stats(own[1], lambda: images)
    return train_stats(found[1], lambda: load_fn(*found)[0])


@register_dataset("cifar10", help="CIFAR-10, 32x32 RGB, 10 classes (binary or python version)")
def cifar10(split: str = "train", root: Path | None = None, download: bool = False) -> ImageDataset:
    """CIFAR-10, 32x32 RGB, 10 classes (binary or python version).

    Args:
        split: ``train`` (50,000 images) or ``test`` (10,000).
        root: data root searched first (see :mod:`encoder_audit.data.locate`).
        download: fetch the python version with torchvision if nothing is found.

    Raises:
        DataNotFoundError: no CIFAR-10 files found (the message lists where we looked).
        CorruptFileError: a file has the wrong size, a bad label or an unsafe pickle (named).
    """
    _check_split("cifar10", split)

    def fetch(target: Path) -> None:
        from torchvision.datasets import CIFAR10

        CIFAR10(str(target), train=split == "train", download=True)

    d = find_dataset_dir(
        "cifar10",
        split,
        root,
        subdirs=_CIFAR10_DIRS,
        required=lambda p: _cifar10_files(p, split) is not None,
        hint=_HINT10,
        download=fetch if download else None,
        what="data_batch_*.bin" if split == "train" else "test_batch.bin",
    )
    found = _cifar10_files(d, split)
    assert found is not None
    fmt, files = found
    if split == "train" and len(files) != 5:
        log.warning("cifar10: %d training batches in %s (the official archive has 5)", len(files), d)
    images, labels = _load_cifar10_split(fmt, files)
    _check_labels(labels, 10, files)
    names = (
        _read_names_txt(d / "batches.meta.txt")
        if fmt == "binary"
        else _read_names_pickle(d / "batches.meta", "label_names")
    )
    names = names[:10] if names and len(names) >= 10 else CIFAR10_CLASSES
    mean, std = _stats(d, split, _cifar10_files, _load_cifar10_split, images)
    info = DatasetInfo(name="cifar10", channels=3, image_size=32, num_classes=10, class_names=names, mean=mean, std=std)
    return ImageDataset(images=torch.from_numpy(images), labels=torch.from_numpy(labels), info=info, split=split)


# --------------------------------------------------------------------------- CIFAR-100


def _cifar100_files(d: Path, split: str) -> tuple[str, list[Path]] | None:
    for fmt, name in (("binary", f"{split}.bin"), ("python", split)):
        if (d / name).is_file():
            # a bare "train"/"test" file only counts as the python version inside a CIFAR-100 folder
            if fmt == "python" and not ((d / "meta").is_file() or d.name == "cifar-100-python"):
                continue
            return fmt, [d / name]
    return None


def _load_cifar100_split(fmt: str, files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """images and labels (N, 2) as (coarse, fine)."""
    if fmt == "binary":
        images, labels = read_cifar_binary(files[0], 2)
        return images, labels.astype(np.int64)
    return _read_python_batch(files[0], ("coarse_labels", "fine_labels"))


@register_dataset("cifar100", help="CIFAR-100, 32x32 RGB, 100 fine or 20 coarse classes (binary or python version)")
def cifar100(
    split: str = "train", root: Path | None = None, download: bool = False, label_type: str = "fine"
) -> ImageDataset:
    """CIFAR-100, 32x32 RGB, 100 fine or 20 coarse classes (binary or python version).

    Args:
        split: ``train`` (50,000 images) or ``test`` (10,000).
        root: data root searched first.
        download: fetch the python version with torchvision if nothing is found.
        label_type: ``fine`` (100 classes) or ``coarse`` (20 superclasses).

    Raises:
        DataNotFoundError: no CIFAR-100 files found.
        CorruptFileError: a file has the wrong size, a bad label or an unsafe pickle (named).
    """
    _check_split("cifar100", split)
    if label_type not in ("fine", "coarse"):
        raise ValueError(f"cifar100 label_type must be 'fine' or 'coarse', not {label_type!r}")

    def fetch(target: Path) -> None:
        from torchvision.datasets import CIFAR100

        CIFAR100(str(target), train=split == "train", download=True)

    d = find_dataset_dir(
        "cifar100",
        split,
        root,
        subdirs=_CIFAR100_DIRS,
        required=lambda p: _cifar100_files(p, split) is not None,
        hint=_HINT100,
        download=fetch if download else None,
        what=f"{split}.bin",
    )
    found = _cifar100_files(d, split)
    assert found is not None
    fmt, files = found
    images, both = _load_cifar100_split(fmt, files)
    _check_labels(both[:, 0], 20, files)
    _check_labels(both[:, 1], 100, files)
    col, k = (1, 100) if label_type == "fine" else (0, 20)
    labels = np.ascontiguousarray(both[:, col])
    if fmt == "binary":
        names = _read_names_txt(d / f"{label_type}_label_names.txt")
    else:
        names = _read_names_pickle(d / "meta", f"{label_type}_label_names")
    if not names or len(names) < k:
        log.warning("cifar100: no %s class names found in %s; using numbers", label_type, d)
        names = tuple(f"{label_type} class {i}" for i in range(k))
    mean, std = _stats(d, split, _cifar100_files, _load_cifar100_split, images)
    info = DatasetInfo(
        name="cifar100", channels=3, image_size=32, num_classes=k, class_names=names[:k], mean=mean, std=std
    )
    return ImageDataset(images=torch.from_numpy(images), labels=torch.from_numpy(labels), info=info, split=split)
