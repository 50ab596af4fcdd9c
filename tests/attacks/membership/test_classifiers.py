"""Inference classifiers: DeepSets permutation invariance, sorted-vector invariance, shapes."""

from __future__ import annotations

import torch

from encoder_audit.attacks.membership.encodermi_s import DeepSets


def test_deepsets_is_permutation_invariant() -> None:
    torch.manual_seed(0)
    for pool in ("mean", "sum", "max"):
        net = DeepSets(hidden=16, pool=pool).eval()
        x = torch.randn(7, 45)
        perm = torch.randperm(45)
        torch.testing.assert_close(net(x), net(x[:, perm]))
        assert net(x).shape == (7, 1)


def test_deepsets_is_not_constant() -> None:
    """Invariance must not come from ignoring the input."""
    torch.manual_seed(0)
    net = DeepSets(hidden=16).eval()
    x = torch.randn(4, 45)
    assert not torch.allclose(net(x), net(x + 1.0))


def test_deepsets_handles_other_set_sizes() -> None:
    net = DeepSets(hidden=8).eval()
    assert net(torch.randn(3, 10)).shape == (3, 1)
