"""Fashion-MNIST (Xiao et al., 2017): the embedded default, read from the standard IDX ``.gz`` files.

Looked up, in order: ``--data-root`` (or ``root=``), ``$ENCODER_AUDIT_DATA``, the Debian package's
folder ``/usr/share/datasets/fashion-mnist`` and ``~/.cache/encoder-audit/data``. Within a root the
files may sit directly, in ``fashion-mnist/`` or in torchvision's ``FashionMNIST/raw/``.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch

from ..errors import CorruptFileError, DataNotFoundError
from .base import DatasetInfo, ImageDataset, default_data_root, register_dataset

CLASS_NAMES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
DEBIAN_ROOT = Path("/usr/share/datasets/fashion-mnist")
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
INFO = DatasetInfo(
    name="fashion-mnist",
    channels=1,
    image_size=28,
    num_classes=10,
    class_names=CLASS_NAMES,
    mean=(0.286,),
    std=(0.353,),
)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array.

    Raises:
        CorruptFileError: bad magic number or truncated data.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise CorruptFileError(f"cannot read {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise CorruptFileError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise CorruptFileError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {data.size}")
    return data.reshape(dims)


def candidate_roots(root: Path | None) -> list[Path]:
    roots = [root] if root is not None else []
    if os.environ.get("ENCODER_AUDIT_DATA"):
        roots.append(Path(os.environ["ENCODER_AUDIT_DATA"]).expanduser())
    roots += [DEBIAN_ROOT, default_data_root()]
    out: list[Path] = []
    for r in roots:
        for sub in (r, r / "fashion-mnist", r / "FashionMNIST" / "raw"):
            if sub not in out:
                out.append(sub)
    return out


def _find(stem: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        for name in (stem + ".gz", stem):
            if (d / name).is_file():
                return d / name
    return None


@register_dataset("fashion-mnist", help="Fashion-MNIST, 28x28 grayscale, 10 classes (embedded default)")
def fashion_mnist(split: str = "train", root: Path | None = None, download: bool = False) -> ImageDataset:
    """Fashion-MNIST, 28x28 grayscale, 10 classes (embedded default)."""
    if split not in _FILES:
        raise ValueError(f"fashion-mnist has splits 'train' and 'test', not {split!r}")
    dirs = candidate_roots(root)
    img_stem, lbl_stem = _FILES[split]
    img_path, lbl_path = _find(img_stem, dirs), _find(lbl_stem, dirs)
    if (img_path is None or lbl_path is None) and download:
        from torchvision.datasets import FashionMNIST

        target = root or default_data_root()
        FashionMNIST(str(target), train=split == "train", download=True)
        dirs = candidate_roots(target)
        img_path, lbl_path = _find(img_stem, dirs), _find(lbl_stem, dirs)
    if img_path is None or lbl_path is None:
        looked = ", ".join(str(d) for d in dirs)
        raise DataNotFoundError(
            f"fashion-mnist {split} files ({img_stem}.gz) not found; looked in: {looked}. "
            "Install them with `apt-get install dataset-fashion-mnist`, point --data-root at a folder "
            "holding the IDX files, or pass --download."
        )
    images = read_idx(img_path)
    labels = read_idx(lbl_path)
    if len(images) != len(labels):
        raise CorruptFileError(f"{img_path} and {lbl_path} disagree in length")
    return ImageDataset(
        images=torch.from_numpy(images.copy()).unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        info=INFO,
        split=split,
    )
