"""Linear probe: standardized multinomial logistic regression on frozen features."""

from __future__ import annotations

import numpy as np
import torch

from encoder_audit.evaluate import fit_linear_probe, linear_probe_accuracy


def _separable(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 10, generator=g)
    x[:, 0] = y.float() * 4 + torch.rand(n, generator=g)  # classes live in disjoint slabs of feature 0
    x[:, 1:] *= 100  # large, useless features: standardization must keep them from swamping feature 0
    return x, y


def test_probe_separates_linearly_separable_features() -> None:
    xtr, ytr = _separable(300, 0)
    xte, yte = _separable(200, 1)
    probe = fit_linear_probe(xtr, ytr)
    assert probe.accuracy(xte, yte) >= 0.99
    assert linear_probe_accuracy(xtr, ytr, xte, yte) == probe.accuracy(xte, yte)
    proba = probe.predict_proba(xte)
    assert proba.shape == (200, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert (proba.argmax(axis=1) == probe.predict(xte)).all()


def test_probe_is_at_chance_on_shuffled_labels() -> None:
    xtr, ytr = _separable(300, 0)
    xte, yte = _separable(200, 1)
    shuffled = ytr[torch.randperm(300, generator=torch.Generator().manual_seed(2))]
    assert fit_linear_probe(xtr, shuffled).accuracy(xte, yte) < 0.5  # chance is 1/3


def test_probe_is_deterministic() -> None:
    xtr, ytr = _separable(100, 3)
    a = fit_linear_probe(xtr, ytr, seed=0).predict_proba(xtr)
    b = fit_linear_probe(xtr, ytr, seed=0).predict_proba(xtr)
    np.testing.assert_array_equal(a, b)
