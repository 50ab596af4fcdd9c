"""Membership features: shapes, symmetry, naive references, exact query counts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from encoder_audit.attacks.membership.features import (
    FeatureConfig,
    VictimProbe,
    num_pairs,
    pairwise_similarities,
    view_embeddings,
)
from encoder_audit.data import create_dataset
from encoder_audit.models import create_encoder
from encoder_audit.victim import LocalEncoder, QueryCounter


def naive_pairs(e: np.ndarray, similarity: str) -> np.ndarray:
    out = []
    for row in e:
        vals = []
        for i, j in itertools.combinations(range(len(row)), 2):
            u, v = row[i].astype(np.float64), row[j].astype(np.float64)
            if similarity == "cosine":
                vals.append(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
            elif similarity == "correlation":
                vals.append(np.corrcoef(u, v)[0, 1])
            else:
                vals.append(-np.linalg.norm(u - v))
        out.append(vals)
    return np.array(out)


@pytest.mark.parametrize("similarity", ["cosine", "correlation", "euclidean"])
def test_pairwise_matches_naive_reference(similarity: str) -> None:
    e = torch.randn(5, 6, 7)
    got = pairwise_similarities(e, similarity).numpy()
    assert got.shape == (5, num_pairs(6)) == (5, 15)
    np.testing.assert_allclose(got, naive_pairs(e.numpy(), similarity), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("similarity", ["cosine", "correlation", "euclidean"])
def test_similarities_are_symmetric_in_the_views(similarity: str) -> None:
    """Reordering the views only permutes the pairs: the sorted vector and the mean do not change."""
    e = torch.randn(4, 10, 8)
    perm = torch.randperm(10)
    a = pairwise_similarities(e, similarity)
    b = pairwise_similarities(e[:, perm], similarity)
    torch.testing.assert_close(a.sort(dim=1).values, b.sort(dim=1).values)
    # and S(u, v) == S(v, u): the full matrix behind the pairs is symmetric
    two = pairwise_similarities(e[:, :2], similarity)
    torch.testing.assert_close(two, pairwise_similarities(e[:, [1, 0]], similarity))


def test_identical_views_have_cosine_one() -> None:
    e = torch.randn(3, 1, 5).expand(3, 4, 5)
    torch.testing.assert_close(pairwise_similarities(e), torch.ones(3, 6))


def test_bad_shapes_and_configs_are_rejected() -> None:
    with pytest.raises(ValueError):
        pairwise_similarities(torch.randn(3, 4))
    with pytest.raises(ValueError):
        FeatureConfig(n_views=1)
    with pytest.raises(ValueError):
        FeatureConfig(similarity="manhattan")


def test_queries_per_input_are_n_and_counted_once() -> None:
    ds = create_dataset("synthetic", "train", n=12, size=16)
    victim = QueryCounter(LocalEncoder(create_encoder("cnn-small", 1, 16)))
    probe = VictimProbe(victim, ds, FeatureConfig(n_views=5, batch_size=7), seed=3)
    v = probe.views()
    assert v.shape == (12, 5, 128)
    assert victim.images == 12 * 5
    assert probe.similarities().shape == (12, 10)
    probe.views(3)  # fewer views: cached
    assert victim.images == 60
    probe.views(7)  # two more views: only the difference is queried
    assert victim.images == 12 * 7
    probe.clean()
    probe.clean()
    assert victim.images == 12 * 8


def test_views_are_seeded() -> None:
    enc = LocalEncoder(create_encoder("cnn-small", 1, 16))
    x = torch.rand(6, 1, 16, 16)
    a = view_embeddings(enc, x, 3, seed=1, batch_size=6)
    b = view_embeddings(enc, x, 3, seed=1, batch_size=6)
    c = view_embeddings(enc, x, 3, seed=2, batch_size=6)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert a.shape == (6, 3, 128)
