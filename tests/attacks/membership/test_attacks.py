"""End-to-end: the attacks find members of an encoder that memorises them, and only then.

The fast test uses a hand-built *memorising* encoder (its members' views collapse onto one stored
vector, other images get view-dependent random features), so the statistical claim is checked in
seconds; a ``slow`` test trains a real tiny SimCLR encoder to overfit instead.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from encoder_audit.attacks.membership import MEMBERSHIP_ATTACKS, Shadow, create_attack, evaluate_scores
from encoder_audit.attacks.membership.engine import run_attacks
from encoder_audit.attacks.membership.features import FeatureConfig
from encoder_audit.data import create_dataset
from encoder_audit.victim import QueryCounter

VIEWS = "stolenencoder"  # flip + jitter + grayscale, no crop: a descriptor robust to them finds members


def _descriptor(x: torch.Tensor) -> torch.Tensor:
    x = F.adaptive_avg_pool2d(x.mean(1, keepdim=True), 4)
    x = (x + x.flip(-1)) / 2  # flip invariant
    x = x.flatten(1)
    x = x - x.mean(1, keepdim=True)  # brightness invariant
    return F.normalize(x, dim=1)  # contrast invariant


class Memorizer:
    """An encoder that maps every view of a member to (nearly) the same vector."""

    def __init__(self, members: torch.Tensor, dim: int = 16, seed: int = 0, strength: float = 3.0) -> None:
        g = torch.Generator().manual_seed(seed)
        c, h, w = members.shape[1:]
        self.input_shape = (c, h, w)
        self.embedding_dim = dim
        self.keys = _descriptor(members)
        self.codes = torch.randn(len(members), dim, generator=g)
        self.proj = torch.randn(c * h * w, dim, generator=g) / (c * h * w) ** 0.5
        self.strength = strength

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        d = _descriptor(x)
        sim, idx = (d @ self.keys.T).max(dim=1)
        hit = (sim > 0.97).float().unsqueeze(1)
        noise = (x.flatten(1) - 0.5) @ self.proj * 4.0
        return noise + hit * self.strength * self.codes[idx]


def _data(seed: int) -> tuple:
    ds = create_dataset("synthetic", "train", n=360, size=16, seed=seed)
    rng = np.random.default_rng(seed)
    p = rng.permutation(len(ds))
    parts = [ds.subset(np.sort(p[i : i + 60])) for i in range(0, 360, 60)]
    return parts  # target in / out, shadow in / out, shadow reference, spare


def _shadow(parts: list, *, shuffle: bool = False) -> Shadow:
    s_in, s_out, ref = parts[2], parts[3], parts[4]
    enc = Memorizer(s_in.float_images(), seed=1)
    if shuffle:  # the same images, labels randomly reassigned: nothing to learn
        both = np.concatenate([s_in.indices, s_out.indices])
        imgs = torch.cat([s_in.images, s_out.images])
        perm = np.random.default_rng(5).permutation(len(both))
        s_in = s_out.__class__(imgs[perm[:60]], None, s_in.info, indices=both[perm[:60]])
        s_out = s_out.__class__(imgs[perm[60:]], None, s_in.info, indices=both[perm[60:]])
    return Shadow(enc, s_in, s_out, ref, seed=0)


FAST = {"encodermi-v": {"epochs": 40}, "encodermi-s": {"epochs": 40}, "single-embedding": {"epochs": 20}}


def test_encodermi_finds_members_of_a_memorising_encoder() -> None:
    parts = _data(0)
    victim = QueryCounter(Memorizer(parts[0].float_images(), seed=0))
    feats = FeatureConfig(n_views=6, views=VIEWS)
    names = ("encodermi-v", "encodermi-s", "encodermi-t", "two-view", "blind")
    results, usage = run_attacks(victim, parts[0], parts[1], _shadow(parts), names, features=feats, attack_params=FAST)
    auc = {r.attack: evaluate_scores(r.scores, r.labels)["auc"] for r in results}
    assert auc["encodermi-v"] > 0.8 and auc["encodermi-s"] > 0.8 and auc["encodermi-t"] > 0.8
    assert results[2].metrics()["accuracy"] > 0.7  # the shadow threshold transfers
    assert auc["encodermi-t"] > auc["two-view"] + 0.05  # n views beat a single pair
    assert abs(auc["blind"] - 0.5) < 0.2  # an i.i.d. split: pixels alone do not tell
    assert usage["query_images"] == 120 * 6  # n views per input, shared by every attack

    # control 1: trained on shuffled shadow labels, the learned classifier cannot find members
    shuffled, _ = run_attacks(
        victim, parts[0], parts[1], _shadow(parts, shuffle=True), ("encodermi-v",), features=feats, attack_params=FAST
    )
    auc_shuffled = evaluate_scores(shuffled[0].scores, shuffled[0].labels)["auc"]
    # (with random labels half of each shadow part is memorised, so the classifier may still lean on the
    # similarity level by chance; it stays well below the one trained on the true labels)
    assert auc["encodermi-v"] - auc_shuffled > 0.15

    # control 2: the same scores against shuffled membership labels (permutation null of the AUC)
    t = results[2]
    rng = np.random.default_rng(0)
    null = [evaluate_scores(t.scores, rng.permutation(t.labels))["auc"] for _ in range(200)]
    assert auc["encodermi-t"] > np.quantile(null, 0.99) + 0.2


def test_no_memorisation_no_signal() -> None:
    """A victim that memorised a *different* set shows no signal on these members."""
    parts = _data(1)
    victim = Memorizer(parts[5].float_images(), seed=0)  # memorised the spare part, not parts[0]
    feats = FeatureConfig(n_views=6, views=VIEWS)
    results, _ = run_attacks(victim, parts[0], parts[1], _shadow(parts), ("encodermi-t",), features=feats)
    assert abs(evaluate_scores(results[0].scores, results[0].labels)["auc"] - 0.5) < 0.15


def test_every_registered_attack_runs_and_saves_scores(tmp_path) -> None:
    from encoder_audit.attacks.membership import save_scores

    parts = _data(2)
    victim = Memorizer(parts[0].float_images(), seed=0)
    names = MEMBERSHIP_ATTACKS.names()
    feats = FeatureConfig(n_views=3, views=VIEWS)
    results, usage = run_attacks(victim, parts[0], parts[1], _shadow(parts), names, features=feats, attack_params=FAST)
    assert [r.attack for r in results] == names
    for r in results:
        assert r.scores.shape == (120,) and np.isfinite(r.scores).all()
    path = save_scores(results, tmp_path / "scores.npz")
    z = np.load(path)
    assert z["labels"].sum() == 60
    np.testing.assert_array_equal(z["encodermi-t/scores"], results[names.index("encodermi-t")].scores)
    # 3 views + 1 clean per evaluated image, plus the reference set once (clean)
    assert usage["query_images"] == 120 * 4 + 60


def test_view_draws_are_averaged_and_kept_apart() -> None:
    parts = _data(0)
    victim = QueryCounter(Memorizer(parts[0].float_images(), seed=0))
    feats = FeatureConfig(n_views=4, views=VIEWS)
    names = ("encodermi-t", "single-embedding")
    results, usage = run_attacks(
        victim, parts[0], parts[1], _shadow(parts), names, features=feats, attack_params=FAST, draws=3
    )
    t, single = results
    assert len(t.per_draw) == 3 and t.queries_per_image == 12
    np.testing.assert_allclose(t.scores, np.mean(t.per_draw, axis=0))
    assert not np.allclose(t.per_draw[0], t.per_draw[1])  # independent view draws
    assert single.per_draw == [] and single.queries_per_image == 1  # no views: scored once
    assert usage["query_images"] == 120 * 4 * 3 + 120


def test_capabilities_are_class_attributes() -> None:
    from encoder_audit.attacks.registry import attack_class

    assert attack_class("membership", "encodermi-v").uses_views
    assert attack_class("membership", "downstream-loss").needs_labels
    assert attack_class("membership", "blind").diagnostic and not attack_class("membership", "blind").needs_shadow
    assert not any(attack_class("membership", n).white_box for n in MEMBERSHIP_ATTACKS.names())
    assert create_attack("encodermi-t", n_views=4).query_cost(10) == 40


def test_unfitted_attack_refuses_and_config_is_validated() -> None:
    attack = create_attack("encodermi-t")
    with pytest.raises(RuntimeError):
        attack.infer(Memorizer(torch.rand(2, 1, 16, 16)), *_data(0)[:2])
    with pytest.raises(ValueError):
        create_attack("encodermi-v", n_views=1)
    with pytest.raises(ValueError):
        create_attack("encodermi-s", pool="median")
