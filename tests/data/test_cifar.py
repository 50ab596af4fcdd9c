"""CIFAR-10/100 loaders on tiny files written in the official binary and python on-disk formats."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from encoder_audit.data import create_dataset
from encoder_audit.data.cifar import CIFAR10_CLASSES
from encoder_audit.errors import CorruptFileError, DataNotFoundError

PIX = 3 * 32 * 32


def _images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


def _naive_record(labels: list[int], image: np.ndarray) -> bytes:
    """One CIFAR binary record built pixel by pixel: label byte(s), then R plane, G plane, B plane, row-major."""
    out = bytearray(labels)
    for c in range(3):
        for y in range(32):
            for x in range(32):
                out.append(int(image[c, y, x]))
    return bytes(out)


def write_cifar10_binary(folder: Path, n: int = 10, batches: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """data_batch_1..B.bin and test_batch.bin with ``n`` images each; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for b in range(1, batches + 1):
        x, y = _images(rng, n), rng.integers(0, 10, n)
        (folder / f"data_batch_{b}.bin").write_bytes(b"".join(_naive_record([int(y[i])], x[i]) for i in range(n)))
        xs.append(x)
        ys.append(y)
    xt, yt = _images(rng, n), rng.integers(0, 10, n)
    (folder / "test_batch.bin").write_bytes(b"".join(_naive_record([int(yt[i])], xt[i]) for i in range(n)))
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n\n")
    return {"x": np.concatenate(xs), "y": np.concatenate(ys), "xt": xt, "yt": yt}


def test_cifar10_binary_reads_pixels_labels_and_info(tmp_path: Path) -> None:
    ref = write_cifar10_binary(tmp_path / "cifar-10-batches-bin")
    train = create_dataset("cifar10", "train", root=tmp_path)
    test = create_dataset("cifar10", "test", root=tmp_path)
    assert train.images.shape == (20, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (10, 3, 32, 32)
    assert np.array_equal(train.images.numpy(), ref["x"]) and np.array_equal(test.images.numpy(), ref["xt"])
    assert train.labels is not None and train.labels.dtype == torch.int64
    assert train.labels.tolist() == ref["y"].tolist()
    info = train.info
    assert (info.name, info.channels, info.image_size, info.num_classes) == ("cifar10", 3, 32, 10)
    assert info.class_names == CIFAR10_CLASSES
    # normalization is the training split's, for both splits, and equals a naive computation
    x = ref["x"].astype(np.float64) / 255
    assert np.allclose(info.mean, x.mean(axis=(0, 2, 3)), atol=1e-4)
    assert np.allclose(info.std, x.std(axis=(0, 2, 3), ddof=1), atol=1e-4)
    assert test.info.mean == info.mean and test.info.std == info.std


def test_cifar10_single_pixel_layout(tmp_path: Path) -> None:
    """Byte 1 + c*1024 + y*32 + x of a record is channel c, row y, column x."""
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    rec = bytearray(1 + PIX)
    rec[0] = 7
    rec[1 + 2 * 1024 + 3 * 32 + 5] = 201  # blue, row 3, column 5
    (d / "data_batch_1.bin").write_bytes(bytes(rec))
    ds = create_dataset("cifar10", "train", root=tmp_path)
    assert ds.labels is not None and ds.labels.tolist() == [7]
    assert int(ds.images[0, 2, 3, 5]) == 201 and int(ds.images.sum()) == 201


def test_cifar10_truncated_and_bad_label(tmp_path: Path) -> None:
    write_cifar10_binary(tmp_path / "cifar-10-batches-bin", n=2, batches=1)
    f = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(CorruptFileError, match=r"test_batch\.bin"):
        create_dataset("cifar10", "test", root=tmp_path)
    rec = bytearray(1 + PIX)
    rec[0] = 12
    f.write_bytes(bytes(rec))
    with pytest.raises(CorruptFileError, match="labels outside"):
        create_dataset("cifar10", "test", root=tmp_path)


def _py_batch(x: np.ndarray, labels: list[int], key: str = "labels", bytes_keys: bool = False) -> dict:
    d = {
        "batch_label": "testing batch 1 of 1",
        key: labels,
        "data": x.reshape(len(x), -1),
        "filenames": ["a.png"] * len(x),
    }
    if bytes_keys:  # what a Python 2 pickle loaded with encoding="bytes" looks like
        d = {k.encode(): v for k, v in d.items()}
    return d


@pytest.mark.parametrize(("protocol", "bytes_keys"), [(2, False), (4, True), (5, False)])
def test_cifar10_python_version(tmp_path: Path, protocol: int, bytes_keys: bool) -> None:
    rng = np.random.default_rng(1)
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    x1, x2, xt = _images(rng, 10), _images(rng, 10), _images(rng, 10)
    y1, y2, yt = (rng.integers(0, 10, 10).tolist() for _ in range(3))
    for name, x, y in (("data_batch_1", x1, y1), ("data_batch_2", x2, y2), ("test_batch", xt, yt)):
        with (d / name).open("wb") as f:
            pickle.dump(_py_batch(x, y, bytes_keys=bytes_keys), f, protocol=protocol)
    with (d / "batches.meta").open("wb") as f:
        pickle.dump({"label_names": [f"n{i}" for i in range(10)], "num_vis": 3072}, f, protocol=protocol)
    train = create_dataset("cifar10", "train", root=tmp_path)
    test = create_dataset("cifar10", "test", root=tmp_path)
    assert np.array_equal(train.images.numpy(), np.concatenate([x1, x2]))
    assert train.labels is not None and train.labels.tolist() == y1 + y2
    assert np.array_equal(test.images.numpy(), xt)
    assert train.info.class_names == tuple(f"n{i}" for i in range(10))


def write_cifar100_binary(folder: Path, n: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    out = {}
    for split in ("train", "test"):
        x, coarse, fine = _images(rng, n), rng.integers(0, 20, n), rng.integers(0, 100, n)
        recs = b"".join(_naive_record([int(coarse[i]), int(fine[i])], x[i]) for i in range(n))
        (folder / f"{split}.bin").write_bytes(recs)
        out[split] = (x, coarse, fine)
    (folder / "fine_label_names.txt").write_text("\n".join(f"fine{i}" for i in range(100)) + "\n")
    (folder / "coarse_label_names.txt").write_text("\n".join(f"coarse{i}" for i in range(20)) + "\n")
    return out


def test_cifar100_binary_fine_and_coarse(tmp_path: Path) -> None:
    ref = write_cifar100_binary(tmp_path / "cifar100" / "cifar-100-binary")
    fine = create_dataset("cifar100", "train", root=tmp_path)
    coarse = create_dataset("cifar100", "test", root=tmp_path, label_type="coarse")
    x, _, y_fine = ref["train"]
    assert np.array_equal(fine.images.numpy(), x)
    assert fine.labels is not None and fine.labels.tolist() == y_fine.tolist()
    assert fine.info.num_classes == 100 and fine.info.class_names[5] == "fine5"
    _, y_coarse, _ = ref["test"]
    assert coarse.labels is not None and coarse.labels.tolist() == y_coarse.tolist()
    assert coarse.info.num_classes == 20 and coarse.info.class_names[-1] == "coarse19"
    with pytest.raises(ValueError, match="label_type"):
        create_dataset("cifar100", "train", root=tmp_path, label_type="medium")


def test_cifar100_python_version(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    x = _images(rng, 6)
    fine, coarse = rng.integers(0, 100, 6).tolist(), rng.integers(0, 20, 6).tolist()
    for split in ("train", "test"):
        with (d / split).open("wb") as f:
            pickle.dump({"data": x.reshape(6, -1), "fine_labels": fine, "coarse_labels": coarse}, f)
    with (d / "meta").open("wb") as f:
        pickle.dump(
            {"fine_label_names": [f"f{i}" for i in range(100)], "coarse_label_names": [f"c{i}" for i in range(20)]}, f
        )
    ds = create_dataset("cifar100", "test", root=tmp_path)
    assert np.array_equal(ds.images.numpy(), x) and ds.labels is not None and ds.labels.tolist() == fine
    assert create_dataset("cifar100", "train", root=tmp_path, label_type="coarse").labels.tolist() == coarse  # type: ignore[union-attr]


class _Evil:
    def __reduce__(self) -> tuple:
        import os

        return (os.system, ("touch pwned-by-pickle",))


def test_malicious_cifar_pickle_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    with (d / "test_batch").open("wb") as f:
        pickle.dump({"data": _Evil(), "labels": [0]}, f, protocol=2)
    with pytest.raises(CorruptFileError, match=r"test_batch.*refusing to unpickle (posix|os)\.system"):
        create_dataset("cifar10", "test", root=tmp_path)
    assert not (tmp_path / "pwned-by-pickle").exists()


def test_missing_cifar_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCODER_AUDIT_DATA", str(tmp_path / "env-root"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(DataNotFoundError) as err:
        create_dataset("cifar100", "train", root=tmp_path / "arg-root")
    msg = str(err.value)
    assert str(tmp_path / "arg-root") in msg and str(tmp_path / "env-root") in msg
    assert msg.index("arg-root") < msg.index("env-root") < msg.index(".cache")
    assert "--download" in msg and "cifar-100-binary" in msg
