"""Each stealing loss against a naive loop implementation written from the papers' formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from encoder_audit.attacks.stealing.contsteal import contsteal_loss
from encoder_audit.attacks.stealing.conventional import conventional_loss
from encoder_audit.attacks.stealing.rda import aggregate_views, rda_loss
from encoder_audit.attacks.stealing.stolenencoder import stolenencoder_loss


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / math.sqrt(float((v * v).sum()))


def naive_rda(z, p, tau=0.07, alpha=1.0, beta=1.0, eps=1e-6):
    b = z.shape[0]
    disc = align = 0.0
    for i in range(b):
        pos = math.exp(float(z[i] @ p[i]) / tau)
        den = 0.0
        for j in range(b):
            if j != i:
                den += math.exp(float(z[i] @ p[j]) / tau) + math.exp(float(z[i] @ z[j]) / tau)
        disc += -math.log(pos / den)
        d2 = float(((z[i] - p[i]) ** 2).sum())
        cos = float(z[i] @ p[i]) / (math.sqrt(float(z[i] @ z[i])) * math.sqrt(float(p[i] @ p[i])))
        align += math.log(d2 + eps) - math.log(1 + cos + eps)
    return alpha * disc / b + beta * align / b


def naive_contsteal(t, z, tau):
    t = torch.stack([_unit(r) for r in t])
    z = torch.stack([_unit(r) for r in z])
    b, total = t.shape[0], 0.0
    for i in range(b):
        den = sum(math.exp(float(t[i] @ z[j]) / tau) + math.exp(float(z[i] @ z[j]) / tau) for j in range(b) if j != i)
        total += -math.log(math.exp(float(t[i] @ z[i]) / tau) / den)
    return total / b


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, 2.0)])
def test_rda_loss_matches_naive(seed: int, alpha: float, beta: float) -> None:
    g = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(6, 5, generator=g, dtype=torch.float64), dim=1)
    # prototypes: mean of unit views, norm < 1
    p = F.normalize(torch.randn(4, 6, 5, generator=g, dtype=torch.float64), dim=2).mean(0)
    got = float(rda_loss(z, p, 0.07, alpha, beta))
    assert got == pytest.approx(naive_rda(z, p, 0.07, alpha, beta), rel=1e-9, abs=1e-9)


def test_rda_loss_finite_for_unit_prototype_equal_to_z() -> None:
    z = F.normalize(torch.randn(4, 8), dim=1)
    loss = rda_loss(z, z.clone())  # ||z - p|| = 0: finite only thanks to eps
    assert torch.isfinite(loss)
    assert float(rda_loss(z, z.clone(), eps=1e-6)) < float(rda_loss(z, 0.9 * z))


def test_rda_loss_gradient_pulls_towards_prototype() -> None:
    g = torch.Generator().manual_seed(3)
    p = 0.8 * F.normalize(torch.randn(8, 16, generator=g), dim=1)
    w = torch.randn(8, 16, generator=g, requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.05)
    for _ in range(200):
        loss = rda_loss(F.normalize(w, dim=1), p)
        opt.zero_grad()
        loss.backward()
        opt.step()
    cos = F.cosine_similarity(w.detach(), p, dim=1)
    assert float(cos.min()) > 0.95


def test_rda_loss_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        rda_loss(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ValueError):
        rda_loss(torch.randn(3, 4), torch.randn(3, 5))


@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_contsteal_loss_matches_naive(tau: float) -> None:
    g = torch.Generator().manual_seed(1)
    t, z = torch.randn(5, 7, generator=g, dtype=torch.float64), torch.randn(5, 7, generator=g, dtype=torch.float64)
    assert float(contsteal_loss(t, z, tau)) == pytest.approx(naive_contsteal(t, z, tau), rel=1e-9)


def test_conventional_loss_matches_naive() -> None:
    g = torch.Generator().manual_seed(2)
    z, t = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    zu, tu = [_unit(r) for r in z], [_unit(r) for r in t]
    mse = sum(float(((a - b) ** 2).sum()) for a, b in zip(zu, tu, strict=True)) / (4 * 3)
    cos = -sum(float(a @ b) for a, b in zip(zu, tu, strict=True)) / 4
    assert float(conventional_loss(z, t, "mse")) == pytest.approx(mse, rel=1e-9)
    assert float(conventional_loss(z, t, "cosine")) == pytest.approx(cos, rel=1e-9)


@pytest.mark.parametrize("distance", ["mse", "l2"])
def test_stolenencoder_loss_matches_naive(distance: str) -> None:
    g = torch.Generator().manual_seed(4)
    zc = torch.randn(3, 4, generator=g, dtype=torch.float64)
    views = [torch.randn(3, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    t = torch.randn(3, 4, generator=g, dtype=torch.float64)

    def d(a, b):
        a, b = [_unit(r) for r in a], [_unit(r) for r in b]
        if distance == "mse":
            return sum(float(((x - y) ** 2).sum()) for x, y in zip(a, b, strict=True)) / (3 * 4)
        return sum(math.sqrt(float(((x - y) ** 2).sum())) for x, y in zip(a, b, strict=True)) / 3

    want = d(zc, t) + 20.0 / 2 * (d(views[0], t) + d(views[1], t))
    assert float(stolenencoder_loss(zc, views, t, 20.0, distance)) == pytest.approx(want, rel=1e-9)


def test_prototype_aggregation_is_mean_of_unit_vectors_not_renormalized() -> None:
    g = torch.Generator().manual_seed(5)
    views = torch.randn(10, 3, 6, generator=g, dtype=torch.float64) * 7.0
    proto = aggregate_views(views)
    for i in range(3):
        want = sum(_unit(views[v, i]) for v in range(10)) / 10
        assert torch.allclose(proto[i], want)
    assert (proto.norm(dim=1) <= 1 + 1e-12).all() and (proto.norm(dim=1) < 0.99).all()
    assert torch.allclose(aggregate_views(views, renormalize=True).norm(dim=1), torch.ones(3, dtype=torch.float64))
