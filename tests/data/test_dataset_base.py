"""ImageDataset bookkeeping (paths through subsets), channel statistics, and the data-root search order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from encoder_audit.data import DatasetInfo, ImageDataset
from encoder_audit.data.base import channel_stats
from encoder_audit.data.locate import find_dataset_dir, search_roots
from encoder_audit.errors import DataNotFoundError


def test_paths_follow_subsets_and_are_optional() -> None:
    images = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    info = DatasetInfo("toy", 1, 2, 0)
    ds = ImageDataset(images, None, info, paths=["a.png", "b.png", "c.png", "d.png"])
    sub = ds.subset([2, 0])
    assert sub.paths == ["c.png", "a.png"] and sub.subset([1]).paths == ["a.png"]
    assert ds.with_info(image_size=2).paths == ds.paths
    assert ImageDataset(images, None, info).paths is None and ImageDataset(images, None, info).subset([1]).paths is None
    with pytest.raises(ValueError, match="paths and images differ"):
        ImageDataset(images, None, info, paths=["a.png"])


def test_channel_stats_matches_naive_reference() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(50, 3, 5, 7), dtype=np.uint8)
    x[:, 1] //= 4
    mean, std = channel_stats(torch.from_numpy(x), chunk=7)
    ref = x.astype(np.float64) / 255
    for c in range(3):
        vals = ref[:, c].ravel()
        assert abs(mean[c] - vals.mean()) < 1e-4 and abs(std[c] - vals.std(ddof=1)) < 1e-4
    assert channel_stats(x, chunk=7) == (mean, std)  # a numpy (or memory-mapped) array works too
    sub_mean, _ = channel_stats(torch.from_numpy(x), max_images=10)
    rows = np.linspace(0, 49, 10).round().astype(int)
    assert abs(sub_mean[0] - ref[rows, 0].mean()) < 1e-4


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCODER_AUDIT_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert search_roots(tmp_path / "arg") == [
        tmp_path / "arg",
        tmp_path / "env",
        tmp_path / "home" / ".cache" / "encoder-audit" / "data",
    ]
    monkeypatch.delenv("ENCODER_AUDIT_DATA")
    assert search_roots(None) == [tmp_path / "home" / ".cache" / "encoder-audit" / "data"]
    # the first root holding the files wins; sub-folders are tried within each root before the next root
    cache = tmp_path / "home" / ".cache" / "encoder-audit" / "data"
    (cache / "thing").mkdir(parents=True)
    (cache / "thing" / "f.bin").write_bytes(b"x")
    assert find_dataset_dir("thing", "train", None, subdirs=("thing",), required=["f.bin"], hint="") == cache / "thing"
    (tmp_path / "arg").mkdir()
    (tmp_path / "arg" / "f.bin").write_bytes(b"x")
    found = find_dataset_dir("thing", "train", tmp_path / "arg", subdirs=("thing",), required=["f.bin"], hint="")
    assert found == tmp_path / "arg"


def test_missing_message_and_failed_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENCODER_AUDIT_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(DataNotFoundError) as err:
        find_dataset_dir("thing", "test", tmp_path / "r", subdirs=("sub",), required=["f.bin"], hint="Get it at X.")
    msg = str(err.value)
    assert msg.startswith("thing test: f.bin not found; looked in " + str(tmp_path / "r"))
    assert "sub-folders sub" in msg and "Get it at X." in msg and "--download" in msg

    def offline(target: Path) -> None:
        raise OSError("network is unreachable")

    with pytest.raises(DataNotFoundError, match=r"download into .* failed: network is unreachable"):
        find_dataset_dir("thing", "test", tmp_path / "r", subdirs=(), required=["f.bin"], hint="", download=offline)
