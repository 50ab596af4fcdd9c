"""Fashion-MNIST's IDX parsing on generated ``.gz`` files, and the real Debian files when installed."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from encoder_audit.data import create_dataset
from encoder_audit.data.fashion_mnist import DEBIAN_ROOT, read_idx
from encoder_audit.errors import CorruptFileError, DataNotFoundError


def _idx_bytes(array: np.ndarray) -> bytes:
    """IDX written naively: 0, 0, type 0x08 (unsigned byte), ndim, big-endian dims, then the values."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fashion(folder: Path, n_train: int = 12, n_test: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(x)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(y)))
        out[prefix] = (x, y)
    return out


def test_generated_idx_gz_files(tmp_path: Path) -> None:
    ref = write_fashion(tmp_path / "FashionMNIST" / "raw")
    train = create_dataset("fashion-mnist", "train", root=tmp_path)
    test = create_dataset("fashion-mnist", "test", root=tmp_path)
    x, y = ref["train"]
    assert train.images.shape == (12, 1, 28, 28) and train.images.dtype == torch.uint8
    assert np.array_equal(train.images[:, 0].numpy(), x)
    assert train.labels is not None and train.labels.tolist() == y.tolist()
    assert np.array_equal(test.images[:, 0].numpy(), ref["t10k"][0])
    info = train.info
    assert (info.channels, info.image_size, info.num_classes, len(info.class_names)) == (1, 28, 10, 10)


def test_uncompressed_idx_and_one_pixel(tmp_path: Path) -> None:
    x = np.zeros((2, 28, 28), dtype=np.uint8)
    x[1, 3, 20] = 99  # image 1, row 3, column 20
    (tmp_path / "img-idx3-ubyte").write_bytes(_idx_bytes(x))
    arr = read_idx(tmp_path / "img-idx3-ubyte")
    assert arr.shape == (2, 28, 28) and arr[1, 3, 20] == 99 and arr.sum() == 99


def test_truncated_and_bad_files(tmp_path: Path) -> None:
    write_fashion(tmp_path)
    f = tmp_path / "t10k-images-idx3-ubyte.gz"
    f.write_bytes(gzip.compress(gzip.decompress(f.read_bytes())[:-100]))
    with pytest.raises(CorruptFileError, match=r"t10k-images-idx3-ubyte\.gz is truncated"):
        create_dataset("fashion-mnist", "test", root=tmp_path)
    f.write_bytes(f.read_bytes()[:30])  # a cut-off gzip stream
    with pytest.raises(CorruptFileError, match=r"t10k-images-idx3-ubyte\.gz"):
        create_dataset("fashion-mnist", "test", root=tmp_path)
    f.write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + b"\x00" * 12))  # float IDX, not unsigned byte
    with pytest.raises(CorruptFileError, match="not an unsigned-byte IDX"):
        create_dataset("fashion-mnist", "test", root=tmp_path)
    write_fashion(tmp_path, n_test=5)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(np.zeros(4, np.uint8))))
    with pytest.raises(CorruptFileError, match="disagree in length"):
        create_dataset("fashion-mnist", "test", root=tmp_path)


def test_root_wins_over_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = write_fashion(tmp_path / "a", seed=1)
    write_fashion(tmp_path / "b", seed=2)
    monkeypatch.setenv("ENCODER_AUDIT_DATA", str(tmp_path / "b"))
    ds = create_dataset("fashion-mnist", "train", root=tmp_path / "a")
    assert np.array_equal(ds.images[:, 0].numpy(), a["train"][0])
    from_env = create_dataset("fashion-mnist", "train")
    assert not np.array_equal(from_env.images[:, 0].numpy(), a["train"][0])


@pytest.mark.skipif(not (DEBIAN_ROOT / "t10k-images-idx3-ubyte.gz").is_file(), reason="dataset-fashion-mnist absent")
def test_real_debian_files() -> None:
    test = create_dataset("fashion-mnist", "test", root=DEBIAN_ROOT)
    assert test.images.shape == (10_000, 1, 28, 28)
    assert test.labels is not None and torch.bincount(test.labels).tolist() == [1000] * 10
    mean = test.images.float().mean().item() / 255
    assert abs(mean - 0.286) < 0.01  # the published training-set mean; the test set is within 1%


def test_missing_files_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import encoder_audit.data.fashion_mnist as fm

    monkeypatch.setattr(fm, "DEBIAN_ROOT", tmp_path / "no-debian")
    monkeypatch.delenv("ENCODER_AUDIT_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(DataNotFoundError) as err:
        create_dataset("fashion-mnist", "train", root=tmp_path / "here")
    msg = str(err.value)
    assert str(tmp_path / "here") in msg and "apt-get install dataset-fashion-mnist" in msg and "--download" in msg
