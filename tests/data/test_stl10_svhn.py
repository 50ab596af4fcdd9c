"""STL-10 (column-major binary) and SVHN (.mat) loaders on tiny files in the real on-disk formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from encoder_audit.data import create_dataset
from encoder_audit.data.stl10 import CLASSES as STL_CLASSES
from encoder_audit.errors import CorruptFileError, DataNotFoundError

SIDE = 96
IMG = 3 * SIDE * SIDE


def _pattern(n: int) -> np.ndarray:
    """Images (N, C, row, col) whose value depends asymmetrically on row and column."""
    n_, c, y, x = np.meshgrid(np.arange(n), np.arange(3), np.arange(SIDE), np.arange(SIDE), indexing="ij")
    return ((n_ * 40 + c * 70 + y * 1 + x * 3) % 256).astype(np.uint8)


def _column_major_bytes(images: np.ndarray) -> bytes:
    """STL-10's file layout built naively: per image, per channel, column by column (x outer, y inner)."""
    out = bytearray()
    for img in images:
        for c in range(3):
            out += img[c].T.tobytes()  # img[c].T[x, y] = img[c, y, x], C order walks y fastest
    return bytes(out)


def write_stl10(root: Path, n_train: int = 4, n_test: int = 3, n_unlabeled: int = 5) -> dict[str, np.ndarray]:
    d = root / "stl10_binary"
    d.mkdir(parents=True)
    out = {}
    for split, n, y in (
        ("train", n_train, [1, 10, 3, 5]),
        ("test", n_test, [2, 2, 9]),
        ("unlabeled", n_unlabeled, None),
    ):
        imgs = _pattern(n)[::-1].copy() if split == "test" else _pattern(n)
        (d / f"{split}_X.bin").write_bytes(_column_major_bytes(imgs))
        if y is not None:
            (d / f"{split}_y.bin").write_bytes(bytes(y))
        out[split] = imgs
    (d / "class_names.txt").write_text("\n".join(STL_CLASSES) + "\n")
    return out


def test_stl10_transposes_column_major_images(tmp_path: Path) -> None:
    ref = write_stl10(tmp_path)
    ds = create_dataset("stl10", "train", root=tmp_path)
    assert ds.images.shape == (4, 3, 96, 96) and ds.images.dtype == torch.uint8
    assert np.array_equal(ds.images.numpy(), ref["train"])
    # one pixel checked against the raw byte offset: image 1, green, row 2, column 7
    raw = (tmp_path / "stl10_binary" / "train_X.bin").read_bytes()
    assert int(ds.images[1, 1, 2, 7]) == raw[1 * IMG + 1 * SIDE * SIDE + 7 * SIDE + 2]
    assert int(ds.images[0, 0, 0, 1]) == 3 and int(ds.images[0, 0, 1, 0]) == 1  # columns step by 3, rows by 1
    assert ds.labels is not None and ds.labels.tolist() == [0, 9, 2, 4]
    info = ds.info
    assert (info.name, info.channels, info.image_size, info.num_classes) == ("stl10", 3, 96, 10)
    assert info.class_names == STL_CLASSES
    x = ref["train"].astype(np.float64) / 255
    assert np.allclose(info.mean, x.mean(axis=(0, 2, 3)), atol=1e-4)
    test = create_dataset("stl10", "test", root=tmp_path)
    assert np.array_equal(test.images.numpy(), ref["test"]) and test.info.mean == info.mean


def test_stl10_unlabeled_is_memory_mapped(tmp_path: Path) -> None:
    ref = write_stl10(tmp_path)
    ds = create_dataset("stl10", "unlabeled", root=tmp_path)
    assert ds.labels is None and len(ds) == 5
    assert np.array_equal(ds.images.numpy(), ref["unlabeled"])
    assert not ds.images.is_contiguous()  # a transposed view of the file's mapping, not a copy
    ds.images[0, 0, 0, 0] = 0  # copy-on-write: the file itself never changes
    assert (tmp_path / "stl10_binary" / "unlabeled_X.bin").read_bytes() == _column_major_bytes(ref["unlabeled"])
    batch, labels, _ = next(ds.batches(2))
    assert batch.shape == (2, 3, 96, 96) and labels is None


def test_stl10_downsamples_once(tmp_path: Path) -> None:
    write_stl10(tmp_path)
    flat = np.full((2, 3, SIDE, SIDE), 77, dtype=np.uint8)
    flat[1] = 200
    (tmp_path / "stl10_binary" / "unlabeled_X.bin").write_bytes(_column_major_bytes(flat))
    ds = create_dataset("stl10", "unlabeled", root=tmp_path, size=32)
    assert ds.images.shape == (2, 3, 32, 32) and ds.info.image_size == 32 and ds.images.is_contiguous()
    assert (ds.images[0] == 77).all() and (ds.images[1] == 200).all()
    # a smooth pattern survives downsampling: mean intensity is preserved
    small = create_dataset("stl10", "train", root=tmp_path, size=48).images.float().mean()
    big = create_dataset("stl10", "train", root=tmp_path).images.float().mean()
    assert abs(float(small - big)) < 2.0


def test_stl10_bad_files(tmp_path: Path) -> None:
    write_stl10(tmp_path)
    d = tmp_path / "stl10_binary"
    (d / "test_y.bin").write_bytes(bytes([1, 2]))
    with pytest.raises(CorruptFileError, match=r"test_y\.bin has 2 labels for 3 images"):
        create_dataset("stl10", "test", root=tmp_path)
    (d / "test_X.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(CorruptFileError, match=r"test_X\.bin"):
        create_dataset("stl10", "test", root=tmp_path)
    (d / "train_y.bin").write_bytes(bytes([0, 1, 2, 3]))
    with pytest.raises(CorruptFileError, match=r"1\.\.10"):
        create_dataset("stl10", "train", root=tmp_path)
    with pytest.raises(ValueError, match="splits"):
        create_dataset("stl10", "extra", root=tmp_path)


def write_svhn(folder: Path, split: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)  # (row, column, channel, image)
    y = rng.integers(1, 11, size=(n, 1)).astype(np.uint8)
    y[0, 0] = 10
    folder.mkdir(parents=True, exist_ok=True)
    savemat(str(folder / f"{split}_32x32.mat"), {"X": x, "y": y})
    return x, y


def test_svhn_mat_files(tmp_path: Path) -> None:
    x, y = write_svhn(tmp_path / "svhn", "train", 7, 0)
    _, yt = write_svhn(tmp_path / "svhn", "test", 5, 1)
    ds = create_dataset("svhn", "train", root=tmp_path)
    assert ds.images.shape == (7, 3, 32, 32) and ds.images.dtype == torch.uint8
    for n, c, r, col in ((0, 0, 0, 0), (3, 2, 5, 17), (6, 1, 31, 2)):
        assert int(ds.images[n, c, r, col]) == int(x[r, col, c, n])
    assert ds.labels is not None and ds.labels[0] == 0  # label 10 is the digit 0
    assert ds.labels.tolist() == [int(v) % 10 for v in y[:, 0]]
    assert ds.info.class_names == tuple(str(i) for i in range(10)) and ds.info.channels == 3
    xf = np.transpose(x, (3, 2, 0, 1)).astype(np.float64) / 255
    assert np.allclose(ds.info.mean, xf.mean(axis=(0, 2, 3)), atol=1e-4)
    test = create_dataset("svhn", "test", root=tmp_path)
    assert test.labels is not None and test.labels.tolist() == [int(v) % 10 for v in yt[:, 0]]
    assert test.info.mean == ds.info.mean


def test_svhn_corrupt_and_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENCODER_AUDIT_DATA", raising=False)
    (tmp_path / "test_32x32.mat").write_bytes(b"MATLAB 5.0 MAT-file garbage" + b"\x00" * 50)
    with pytest.raises(CorruptFileError, match=r"test_32x32\.mat"):
        create_dataset("svhn", "test", root=tmp_path)
    with pytest.raises(DataNotFoundError, match=r"extra_32x32.mat not found.*--download"):
        create_dataset("svhn", "extra", root=tmp_path)


def test_download_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``download=True`` calls torchvision's downloader with the first search root; the default never does."""
    import sys
    import types

    calls: list[tuple[str, str]] = []

    class FakeSVHN:
        def __init__(self, root: str, split: str, download: bool) -> None:
            calls.append((root, split))
            write_svhn(Path(root), split, 3, 5)

    fake = types.ModuleType("torchvision.datasets")
    fake.SVHN = FakeSVHN  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake)  # importing the real one takes seconds
    with pytest.raises(DataNotFoundError):
        create_dataset("svhn", "test", root=tmp_path / "r")
    assert calls == []
    ds = create_dataset("svhn", "test", root=tmp_path / "r", download=True)
    assert calls == [(str(tmp_path / "r"), "test")] and len(ds) == 3
