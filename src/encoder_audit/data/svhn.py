"""SVHN (Netzer et al., "Reading Digits in Natural Images with Unsupervised Feature Learning", NIPS-W 2011),
cropped-digits format: ``train_32x32.mat``, ``test_32x32.mat`` and ``extra_32x32.mat``.

Each ``.mat`` file (MATLAB v5, read with :func:`scipy.io.loadmat`) holds ``X``, uint8 of shape
(32, 32, 3, N) (row, column, channel, image) and ``y`` of shape (N, 1) with labels 1..10, where 10
stands for the digit 0 (the dataset's README: "'0' has label 10"); labels are mapped so that the label
is the digit. 73,257 train, 26,032 test and 531,131 extra images.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..errors import CorruptFileError
from .base import DatasetInfo, ImageDataset, register_dataset
from .locate import find_dataset_dir
from .stats import train_stats

log = logging.getLogger(__name__)

_SPLITS = ("train", "test", "extra")
_HINT = (
    "Expected the SVHN cropped-digits files (train_32x32.mat, test_32x32.mat, extra_32x32.mat) from "
    "http://ufldl.stanford.edu/housenumbers/ in a data root or its svhn/ folder."
)


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 3, 32, 32) and labels int64 (N,) (digit values 0..9) of one SVHN ``.mat`` file.

    Raises:
        CorruptFileError: unreadable file, missing ``X``/``y``, wrong shapes or labels outside 1..10.
    """
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path), variable_names=("X", "y"))
    except Exception as exc:  # scipy raises many types (IndexError, MatReadError, ...) on a damaged file
        raise CorruptFileError(f"cannot read {path} as a MATLAB v5 file: {type(exc).__name__}: {exc}") from None
    x, y = mat.get("X"), mat.get("y")
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise CorruptFileError(f"{path}: 'X' must have shape (32, 32, 3, N)")
    if not isinstance(y, np.ndarray) or y.size != x.shape[3]:
        raise CorruptFileError(f"{path}: 'y' must hold one label per image ({x.shape[3]})")
    y = y.reshape(-1).astype(np.int64)
    if y.size and (y.min() < 1 or y.max() > 10):
        raise CorruptFileError(f"{path}: labels must be 1..10, found {int(y.min())}..{int(y.max())}")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1)).astype(np.uint8, copy=False)
    return images, y % 10


@register_dataset("svhn", help="SVHN cropped digits, 32x32 RGB, 10 classes; splits train, test, extra")
def svhn(split: str = "train", root: Path | None = None, download: bool = False) -> ImageDataset:
    """SVHN cropped digits, 32x32 RGB, 10 classes; splits train, test, extra.

    Args:
        split: ``train``, ``test`` or ``extra``.
        root: data root searched first.
        download: fetch the ``.mat`` file with torchvision if nothing is found.

    Raises:
        DataNotFoundError: the file is missing. CorruptFileError: the file cannot be decoded.
    """
    if split not in _SPLITS:
        raise ValueError(f"svhn has splits {', '.join(_SPLITS)}, not {split!r}")
    fname = f"{split}_32x32.mat"

    def fetch(target: Path) -> None:
        from torchvision.datasets import SVHN

        SVHN(str(target), split=split, download=True)

    d = find_dataset_dir(
        "svhn",
        split,
        root,
        subdirs=("svhn", "SVHN"),
        required=[fname],
        hint=_HINT,
        download=fetch if download else None,
    )
    images, labels = read_svhn_mat(d / fname)
    train_file = d / "train_32x32.mat"
    if split == "train":
        mean, std = train_stats([train_file], lambda: images)
    elif train_file.is_file():
        mean, std = train_stats([train_file], lambda: read_svhn_mat(train_file)[0])
    else:
        log.warning("svhn: no train_32x32.mat beside %s; normalization measured on the %s split", d, split)
        mean, std = train_stats([d / fname], lambda: images)
    info = DatasetInfo(
        name="svhn",
        channels=3,
        image_size=32,
        num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
        mean=mean,
        std=std,
    )
    return ImageDataset(images=torch.from_numpy(images), labels=torch.from_numpy(labels), info=info, split=split)
