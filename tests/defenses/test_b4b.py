"""B4B-style coverage noise: formula, LSH coverage against a naive reference, per-account isolation,
and that a broad (attacker-like) query set is answered with far more noise than a narrow one."""

from __future__ import annotations

import math

import pytest
import torch

from encoder_audit.defenses import DefendedEncoder, create_defense, parse_defense_spec
from encoder_audit.defenses.b4b import B4BConfig, B4BNoise, b4b_sigma


def naive_sigma(c, lam, alpha, beta):
    return lam * (math.exp(math.log(alpha / lam) * c / beta) - 1)


@pytest.mark.parametrize("c", [0.0, 5.0, 40.0, 80.0, 95.0])
def test_sigma_formula(c):
    assert b4b_sigma(c, 1e-7, 1.0, 80.0) == pytest.approx(naive_sigma(c, 1e-7, 1.0, 80.0), rel=1e-12)
    assert b4b_sigma(80.0, 1e-7, 1.0, 80.0) == pytest.approx(1.0)


def test_coverage_matches_naive_set_reference():
    d = B4BNoise(B4BConfig(projections=3, hyperplanes=4, relative=False))
    e = torch.randn(50, 8)
    d(e, torch.zeros(50, 1, 2, 2), user="u")
    planes = d._hyperplanes(8)
    hit = [set() for _ in range(3)]
    for row in e:
        for p in range(3):
            code = 0
            for j in range(4):
                if float(row @ planes[:, p * 4 + j]) > 0:
                    code |= 1 << j
            hit[p].add(code)
    expected = 100 * sum(len(h) for h in hit) / 3 / 16
    assert d.coverage("u") == pytest.approx(expected)
    assert d.coverage("nobody") == 0.0


def test_noise_grows_with_coverage_and_accounts_are_separate():
    d = create_defense("b4b", projections=8, hyperplanes=8)
    narrow = torch.randn(1, 32).repeat(500, 1) + 0.001 * torch.randn(500, 32)  # few buckets
    broad = torch.randn(5000, 32)  # covers the space
    out_n = d(narrow, torch.zeros(1), user="honest")
    out_b = d(broad, torch.zeros(1), user="thief")
    acc = d.accounts()
    assert acc["honest"]["coverage"] < 2 < 50 < acc["thief"]["coverage"]
    err_n = (out_n - narrow).norm(dim=1).mean() / narrow.norm(dim=1).mean()
    err_b = (out_b - broad).norm(dim=1).mean() / broad.norm(dim=1).mean()
    assert err_n < 1e-4 and err_b > 100 * err_n
    # a fresh account starts clean even after the thief
    x = torch.randn(3, 32)
    assert torch.allclose(d(x, torch.zeros(1), user="new"), x, atol=1e-4)


def test_registered_parsed_and_usable_in_defended_encoder():
    d = parse_defense_spec("b4b:beta=50,lam=1e-6")
    assert isinstance(d, B4BNoise) and d.config.beta == 50 and d.per_user

    class Ones:
        input_shape, embedding_dim = (1, 2, 2), 4

        def embed(self, x):
            return torch.ones(len(x), 4)

    out = DefendedEncoder(Ones(), [d]).embed(torch.zeros(2, 1, 2, 2))
    assert out.shape == (2, 4) and d.accounts()["default"]["queries"] == 2


@pytest.mark.parametrize("bad", [{"projections": 0}, {"hyperplanes": 30}, {"lam": 2.0}, {"beta": 0}])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        B4BConfig(**bad)


def test_noise_is_not_reproducible_from_torch_seed():
    torch.manual_seed(0)
    a = create_defense("b4b", lam=0.1, alpha=1.0)(torch.randn(100, 8), torch.zeros(1))
    torch.manual_seed(0)
    b = create_defense("b4b", lam=0.1, alpha=1.0)(torch.randn(100, 8), torch.zeros(1))
    assert not torch.allclose(a, b)
