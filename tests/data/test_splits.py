"""Split manifests: disjoint parts of the asked sizes, stratified balance, hashed save/load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from encoder_audit.data import DatasetInfo, ImageDataset, SplitManifest, make_splits


def _dataset(n: int = 300, classes: int = 3) -> ImageDataset:
    images = torch.arange(n, dtype=torch.int64).remainder(256).to(torch.uint8).view(n, 1, 1, 1).repeat(1, 1, 4, 4)
    labels = torch.arange(n) % classes
    return ImageDataset(images, labels, DatasetInfo("toy", 1, 4, classes), split="train")


def test_parts_are_disjoint_and_sized() -> None:
    ds = _dataset()
    m = make_splits(ds, {"members": 100, "nonmembers": 100, "queries": 50}, seed=3)
    sets = {k: set(v) for k, v in m.parts.items()}
    assert {k: len(v) for k, v in sets.items()} == {"members": 100, "nonmembers": 100, "queries": 50}
    assert not (sets["members"] & sets["nonmembers"]) and not (sets["members"] & sets["queries"])
    assert not (sets["nonmembers"] & sets["queries"])
    assert all(0 <= i < len(ds) for v in sets.values() for i in v)
    assert m.parts == make_splits(ds, {"members": 100, "nonmembers": 100, "queries": 50}, seed=3).parts
    assert m.parts != make_splits(ds, {"members": 100, "nonmembers": 100, "queries": 50}, seed=4).parts
    with pytest.raises(ValueError, match="need 400 samples"):
        make_splits(ds, {"a": 200, "b": 200})


def test_stratified_parts_keep_class_balance() -> None:
    labels = np.array([0] * 200 + [1] * 80 + [2] * 20)
    ds = ImageDataset(
        torch.zeros(300, 1, 2, 2, dtype=torch.uint8), torch.as_tensor(labels), DatasetInfo("toy", 1, 2, 3)
    )
    m = make_splits(ds, {"a": 50, "b": 100}, seed=0, stratify=True)
    for part, size in (("a", 50), ("b", 100)):
        counts = np.bincount(labels[list(m.parts[part])], minlength=3)
        expected = np.array([200, 80, 20]) / 300 * size
        assert np.abs(counts - expected).max() <= 1.5, (part, counts, expected)
    assert not set(m.parts["a"]) & set(m.parts["b"])


def test_save_load_round_trip_and_select(tmp_path: Path) -> None:
    ds = _dataset()
    m = make_splits(ds, {"members": 10, "nonmembers": 5}, seed=1)
    path = m.save(tmp_path / "split.json")
    back = SplitManifest.load(path)
    assert back == m and back.hash() == m.hash()
    data = json.loads(path.read_text())
    assert data["sha256"] == m.hash() and data["parts"]["members"]["count"] == 10
    members = back.select(ds, "members")
    assert len(members) == 10 and members.indices is not None
    assert members.indices.tolist() == list(m.parts["members"])
    assert members.images[:, 0, 0, 0].tolist() == [i % 256 for i in m.parts["members"]]
    assert members.fingerprint() != back.select(ds, "nonmembers").fingerprint()
    with pytest.raises(ValueError, match="no part 'queries'"):
        back.select(ds, "queries")
    other = ImageDataset(ds.images, ds.labels, DatasetInfo("other", 1, 4, 3))
    with pytest.raises(ValueError, match="manifest is for toy/train"):
        back.select(other, "members")


def test_tampered_manifest_is_rejected(tmp_path: Path) -> None:
    m = make_splits(_dataset(), {"members": 10, "nonmembers": 10}, seed=0)
    path = m.save(tmp_path / "split.json")
    data = json.loads(path.read_text())
    data["parts"]["members"]["indices"][0] = data["parts"]["nonmembers"]["indices"][0]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="part 'members' does not match its sha256"):
        SplitManifest.load(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read split manifest"):
        SplitManifest.load(path)
