"""Trigger pasting, poisoned-set construction, manifests and the z-score."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from encoder_audit.attacks.poisoning.backdoor import BackdoorConfig, PatchBackdoor, backdoor_zscore
from encoder_audit.attacks.poisoning.base import create_poisoning, rebuild_poisoned
from encoder_audit.attacks.poisoning.manifest import PoisonManifest
from encoder_audit.attacks.poisoning.targeted import TargetedConfig, TargetedPoisoning
from encoder_audit.attacks.poisoning.trigger import Trigger
from encoder_audit.attacks.registry import create_attack
from encoder_audit.data import DatasetInfo, ImageDataset
from encoder_audit.data.captions import make_paired
from encoder_audit.errors import CorruptFileError

INFO = DatasetInfo(
    "fashion-mnist",
    1,
    12,
    10,
    ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"),
)


def dataset(n: int, seed: int = 0) -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 100, (n, 1, 12, 12), generator=g, dtype=torch.uint8)
    return ImageDataset(images, torch.arange(n) % 10, INFO)


def test_trigger_pastes_exact_pattern_at_positions() -> None:
    t = Trigger(size=3, pattern="checkerboard")
    x = torch.zeros(4, 2, 10, 10, dtype=torch.uint8)
    pos = torch.tensor([[0, 0], [7, 7], [2, 5], [4, 1]])
    out = t.apply(x, pos)
    assert x.sum() == 0  # the input is untouched
    patch = torch.tensor([[255, 0, 255], [0, 255, 0], [255, 0, 255]], dtype=torch.uint8)
    for i, (r, c) in enumerate(pos.tolist()):
        assert torch.equal(out[i, 0, r : r + 3, c : c + 3], patch) and torch.equal(
            out[i, 1, r : r + 3, c : c + 3], patch
        )
        assert int(out[i].sum()) == 2 * int(patch.sum())  # nothing outside the patch changed
    f = t.apply(x.float(), pos)
    assert f.max() == 1.0 and torch.equal((f * 255).round().to(torch.uint8), out)


def test_trigger_placement() -> None:
    g = torch.Generator().manual_seed(0)
    pos = Trigger(size=4, placement="random").positions(500, 28, g)
    assert pos.min() >= 0 and pos.max() <= 24 and len({tuple(p) for p in pos.tolist()}) > 100
    fixed = Trigger(size=4, placement="fixed", position=(-5, -5)).positions(3, 28)
    assert fixed.tolist() == [[23, 23]] * 3
    with pytest.raises(ValueError):
        Trigger(size=4, placement="fixed", position=(26, 0)).positions(1, 28)
    with pytest.raises(ValueError):
        Trigger(size=30).positions(1, 28)
    with pytest.raises(ValueError):
        Trigger(pattern="plaid")
    r1, r2 = Trigger(pattern="random", pattern_seed=1).patch(1), Trigger(pattern="random", pattern_seed=1).patch(1)
    assert torch.equal(r1, r2)


def test_backdoor_poisons_manifest_and_rebuild(tmp_path) -> None:
    clean = make_paired(dataset(200), seed=0)
    attack = PatchBackdoor(BackdoorConfig(poisons=12, target_label=8, trigger=Trigger(size=3), mode="add"))
    res = attack.poison(clean, seed=7)
    p, m = res.paired, res.manifest
    assert len(p) == 212 and p.captions[:200] == clean.captions
    assert m.poison_rows == list(range(200, 212)) and m.target_name == "bag"
    assert all(any(w in c for w in ("bag", "handbag", "purse")) for c in p.captions[200:])
    for row, src, (r, c) in zip(m.poison_rows, m.source_indices, m.positions):
        img = p.images.images[row]
        orig = clean.images.images[src]
        mask = torch.ones_like(img, dtype=torch.bool)
        mask[:, r : r + 3, c : c + 3] = False
        assert torch.equal(img[mask], orig[mask]) and img[0, r, c] == 255
    assert m.poison_rate() == pytest.approx(12 / 212)
    assert m.is_poison(212).sum() == 12
    path = m.save(tmp_path / "manifest.json")
    on_disk = json.loads(path.read_text())
    assert on_disk["num_poisons"] == 12 and on_disk["trigger"]["size"] == 3 and len(on_disk["positions"]) == 12
    loaded = PoisonManifest.load(path)
    rebuilt = rebuild_poisoned(clean, loaded)
    assert torch.equal(rebuilt.images.images, p.images.images) and rebuilt.captions == p.captions
    # same seed -> same poisons; another seed -> different ones
    assert attack.poison(clean, seed=7).manifest.source_indices == m.source_indices
    assert attack.poison(clean, seed=8).manifest.source_indices != m.source_indices
    with pytest.raises(ValueError):
        rebuild_poisoned(make_paired(dataset(199), seed=0), loaded)


def test_targeted_poisons_repeat_the_target_with_label_captions(tmp_path) -> None:
    clean = make_paired(dataset(100), seed=0)
    pool = dataset(50, seed=1)
    res = TargetedPoisoning(TargetedConfig(poisons=4, targets=3, mode="add")).poison(clean, pool=pool, seed=3)
    m = res.manifest
    assert m.num_poisons == 12 and len(m.targets) == 3
    for j, t in enumerate(m.targets):
        assert t["target_label"] != t["true_label"] == int(pool.labels[t["pool_index"]])
        rows = m.poison_rows[4 * j : 4 * j + 4]
        for r in rows:
            assert torch.equal(res.paired.images.images[r], pool.images[t["pool_index"]])
        assert res.paired.captions[rows[0] : rows[-1] + 1] == t["captions"]
    rebuilt = rebuild_poisoned(clean, PoisonManifest.load(m.save(tmp_path / "m.json")), pool=pool)
    assert torch.equal(rebuilt.images.images, res.paired.images.images)
    with pytest.raises(ValueError):
        rebuild_poisoned(clean, m)  # the pool is needed
    forced = TargetedPoisoning(TargetedConfig(poisons=1, targets=5, target_label=2)).poison(clean, pool=pool, seed=0)
    assert all(t["target_label"] == 2 != t["true_label"] for t in forced.manifest.targets)
    corpus = TargetedPoisoning(TargetedConfig(poisons=3, caption_source="corpus")).poison(clean, pool=pool, seed=0)
    assert {corpus.paired.captions[r] for r in corpus.manifest.poison_rows} <= set(clean.captions)


def test_replacement_keeps_the_size_and_removes_the_originals(tmp_path) -> None:
    clean = make_paired(dataset(200), seed=0)
    bd = PatchBackdoor(BackdoorConfig(poisons=12, target_label=8, trigger=Trigger(size=3))).poison(clean, seed=7)
    p, m = bd.paired, bd.manifest
    assert m.mode == "replace" and len(p) == 200 and m.poison_rate() == pytest.approx(12 / 200)
    assert m.poison_rows == m.source_indices  # each triggered pair sits where its clean original was
    untouched = sorted(set(range(200)) - set(m.poison_rows))
    assert [p.captions[i] for i in untouched] == [clean.captions[i] for i in untouched]
    assert torch.equal(p.images.images[untouched], clean.images.images[untouched])
    for row, (r, c) in zip(m.poison_rows, m.positions):
        assert p.images.images[row, 0, r, c] == 255 and any(w in p.captions[row] for w in ("bag", "handbag", "purse"))
        assert int(p.images.labels[row]) == -1 and int(p.images.indices[row]) == -1
    rebuilt = rebuild_poisoned(clean, PoisonManifest.load(m.save(tmp_path / "bd.json")))
    assert torch.equal(rebuilt.images.images, p.images.images) and rebuilt.captions == p.captions
    pool = dataset(50, seed=1)
    tp = TargetedPoisoning(TargetedConfig(poisons=4, targets=2)).poison(clean, pool=pool, seed=3, keep=m.poison_rows)
    assert len(tp.paired) == 200 and not set(tp.manifest.poison_rows) & set(m.poison_rows)
    for j, t in enumerate(tp.manifest.targets):
        for r in tp.manifest.poison_rows[4 * j : 4 * j + 4]:
            assert torch.equal(tp.paired.images.images[r], pool.images[t["pool_index"]])
    with pytest.raises(ValueError):
        TargetedPoisoning(TargetedConfig(poisons=150, targets=2)).poison(clean, pool=pool, seed=0)


def test_registry_and_manifest_errors(tmp_path) -> None:
    assert isinstance(create_poisoning("backdoor"), PatchBackdoor)
    assert create_poisoning("targeted", poisons=5).config.poisons == 5
    bad = create_attack("backdoor", "badencoder", epochs=2)
    assert bad.white_box and bad.config.epochs == 2 and callable(bad.backdoor)
    assert not PatchBackdoor.white_box and PatchBackdoor().query_cost(100) == 0
    with pytest.raises(ValueError):
        BackdoorConfig(mode="sprinkle")
    with pytest.raises(ValueError):
        TargetedConfig(poisons=-1)
    (tmp_path / "x.json").write_text('{"attack": 1}')
    with pytest.raises(CorruptFileError):
        PoisonManifest.load(tmp_path / "x.json")
    with pytest.raises(FileNotFoundError):
        PoisonManifest.load(tmp_path / "none.json")


def naive_zscore(clean: torch.Tensor, trig: torch.Tensor) -> tuple[float, float]:
    def sims(z: torch.Tensor) -> np.ndarray:
        z = F.normalize(z, dim=1)
        return np.array([float(z[i] @ z[j]) for i in range(len(z)) for j in range(len(z)) if i != j])

    c, t = sims(clean), sims(trig)
    return (t.mean() - c.mean()) / c.std(ddof=1), (t.mean() - c.mean()) / c.var(ddof=1)


def test_zscore_matches_naive_reference_and_detects_collapse() -> None:
    g = torch.Generator().manual_seed(0)
    clean = torch.randn(12, 64, generator=g)
    collapsed = torch.randn(1, 64, generator=g) + 0.05 * torch.randn(12, 64, generator=g)
    got = backdoor_zscore(clean, collapsed)
    z, zv = naive_zscore(clean, collapsed)
    assert got["zscore"] == pytest.approx(z, rel=1e-4) and got["zscore_var"] == pytest.approx(zv, rel=1e-4)
    assert got["zscore"] > 2.5
    assert abs(backdoor_zscore(clean, clean)["zscore"]) < 1e-6
