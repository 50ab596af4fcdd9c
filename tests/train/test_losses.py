"""Contrastive losses against naive per-anchor reference implementations, and that training lowers them."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from encoder_audit.data import create_dataset
from encoder_audit.models import create_encoder
from encoder_audit.train import MoCoConfig, SimCLRConfig, create_objective, nt_xent_loss
from encoder_audit.train.moco import moco_infonce


def naive_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR eq. 1 written as the paper states it: one anchor at a time, 2N - 1 candidates each."""
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    n2 = z.shape[0]
    b = n2 // 2
    total = z.new_zeros(())
    for i in range(n2):
        positive = (i + b) % n2
        numerator = torch.exp(torch.dot(z[i], z[positive]) / temperature)
        denominator = z.new_zeros(())
        for k in range(n2):
            if k != i:
                denominator = denominator + torch.exp(torch.dot(z[i], z[k]) / temperature)
        total = total - torch.log(numerator / denominator)
    return total / n2


def naive_infonce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """MoCo eq. 1 per query: -log exp(q.k+/t) / (exp(q.k+/t) + sum_j exp(q.queue_j/t))."""
    total = q.new_zeros(())
    for i in range(q.shape[0]):
        pos = torch.exp(torch.dot(q[i], k[i]) / temperature)
        neg = sum(torch.exp(torch.dot(q[i], key) / temperature) for key in queue)
        total = total - torch.log(pos / (pos + neg))
    return total / q.shape[0]


@pytest.mark.parametrize(("b", "d"), [(1, 3), (2, 4), (5, 8), (16, 32)])
@pytest.mark.parametrize("temperature", [0.07, 0.5, 1.0])
def test_nt_xent_matches_naive_reference_with_gradients(b: int, d: int, temperature: float) -> None:
    g = torch.Generator().manual_seed(b * 100 + d)
    z1 = (torch.randn(b, d, generator=g, dtype=torch.float64) * 3).requires_grad_()
    z2 = (torch.randn(b, d, generator=g, dtype=torch.float64) * 0.5).requires_grad_()
    ours = nt_xent_loss(z1, z2, temperature, gather=False)
    ref = naive_nt_xent(z1, z2, temperature)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    g_ours = torch.autograd.grad(ours, (z1, z2))
    g_ref = torch.autograd.grad(ref, (z1, z2))
    for a, r in zip(g_ours, g_ref):
        torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-10)
    # the default path (gather=True) is the same computation in a single process
    torch.testing.assert_close(nt_xent_loss(z1, z2, temperature), ours)


@pytest.mark.parametrize("b", [1, 2, 8])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_nt_xent_identical_views_of_orthogonal_vectors(b: int, temperature: float) -> None:
    # positives have similarity 1, all 2b - 2 negatives similarity 0:
    # loss = -log(e^(1/t) / (e^(1/t) + 2b - 2)) = log(1 + (2b - 2) e^(-1/t))
    z = torch.eye(b, 16) * 2.5
    expected = math.log(1 + (2 * b - 2) * math.exp(-1 / temperature))
    assert nt_xent_loss(z, z.clone(), temperature, gather=False).item() == pytest.approx(expected, abs=1e-6)


def test_nt_xent_is_symmetric_in_views_and_invariant_to_scale() -> None:
    z1, z2 = torch.randn(6, 10), torch.randn(6, 10)
    loss = nt_xent_loss(z1, z2, 0.5, gather=False)
    torch.testing.assert_close(nt_xent_loss(z2, z1, 0.5, gather=False), loss)
    torch.testing.assert_close(nt_xent_loss(3 * z1, 0.2 * z2, 0.5, gather=False), loss)


def test_nt_xent_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="same shape"):
        nt_xent_loss(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="temperature"):
        nt_xent_loss(torch.randn(4, 3), torch.randn(4, 3), 0.0)


@pytest.mark.parametrize(("b", "queue", "d"), [(1, 1, 4), (4, 7, 8), (8, 32, 16)])
@pytest.mark.parametrize("temperature", [0.07, 0.2])
def test_moco_infonce_matches_naive_reference(b: int, queue: int, d: int, temperature: float) -> None:
    g = torch.Generator().manual_seed(b + queue + d)
    q = F.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=1).requires_grad_()
    k = F.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=1)
    bank = F.normalize(torch.randn(queue, d, generator=g, dtype=torch.float64), dim=1)
    ours = moco_infonce(q, k, bank, temperature)
    ref = naive_infonce(q, k, bank, temperature)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(torch.autograd.grad(ours, q)[0], torch.autograd.grad(ref, q)[0], rtol=1e-9, atol=1e-10)


def test_moco_infonce_analytic_case() -> None:
    # q == k and the queue orthogonal to every query: loss = log(1 + K e^(-1/t))
    q = torch.eye(8)[:3]
    queue = torch.eye(8)[3:]
    expected = math.log(1 + 5 * math.exp(-1 / 0.2))
    assert moco_infonce(q, q, queue, 0.2).item() == pytest.approx(expected, abs=1e-6)


def _train(method: str, config: object, lr: float, steps: int = 8) -> list[float]:
    torch.set_num_threads(1)  # tiny convolutions: a second thread only adds synchronisation cost
    torch.manual_seed(0)
    ds = create_dataset("synthetic", "train", n=64, size=16, channels=1, classes=4, seed=0)
    net = create_encoder("cnn-small", in_channels=1, image_size=16, width=8)
    objective = create_objective(method, net, config)
    objective.train()
    opt = torch.optim.Adam([p for p in objective.parameters() if p.requires_grad], lr=lr)
    losses = []
    for step in range(steps):
        idx = torch.arange(64)[(step % 2) * 32 : (step % 2 + 1) * 32]
        gen = torch.Generator().manual_seed(step % 2)  # the same two batches of views, again and again
        loss = objective(ds.float_images(idx), None, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        objective.after_step()
        losses.append(loss.item())
    return losses


def test_simclr_objective_lowers_its_loss() -> None:
    losses = _train("simclr", SimCLRConfig(temperature=0.5, projection_dim=16), lr=3e-3)
    frozen = _train("simclr", SimCLRConfig(temperature=0.5, projection_dim=16), lr=0.0)
    assert frozen[-2:] == pytest.approx(frozen[:2], abs=1e-5)  # nothing learns without steps
    assert sum(losses[-2:]) < sum(losses[:2]) - 0.2


def test_moco_objective_lowers_its_loss() -> None:
    cfg = MoCoConfig(version="v2", queue_size=64, momentum=0.9, projection_dim=16, shuffle_bn_splits=2)
    losses = _train("moco", cfg, lr=3e-3, steps=10)
    frozen = _train("moco", cfg, lr=0.0, steps=10)
    assert sum(losses[-4:]) < sum(frozen[-4:]) - 0.4


def test_moco_batch_larger_than_queue() -> None:
    torch.set_num_threads(1)
    net = create_encoder("cnn-small", in_channels=1, image_size=16, width=8)
    moco = create_objective("moco", net, MoCoConfig(queue_size=8, projection_dim=8))
    loss = moco(torch.rand(12, 1, 16, 16), None, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    assert int(moco.queue_ptr) == 12 % 8


@pytest.mark.parametrize(
    ("method", "config", "kind", "dim"),
    [
        ("simclr", SimCLRConfig(head="none"), "Identity", 128),
        ("simclr", SimCLRConfig(head="linear", projection_dim=64), "Linear", 64),
        ("simclr", SimCLRConfig(), "Sequential", 128),
        ("moco", MoCoConfig(version="v1"), "Linear", 128),
        ("moco", MoCoConfig(head="none", queue_size=64), "Identity", 128),
    ],
)
def test_projection_head_kinds(method: str, config: object, kind: str, dim: int) -> None:
    """``head: mlp | linear | none``: the objective's head and the dimension the loss sees (MoCo's queue too)."""
    enc = create_encoder("cnn-small", in_channels=1, image_size=16)
    obj = create_objective(method, enc, config)
    inner = getattr(obj.head, "net", obj.head)
    assert type(inner).__name__ == kind
    with torch.no_grad():
        assert obj.head(torch.zeros(2, enc.feature_dim)).shape[1] == dim
    if method == "moco":
        assert obj.queue.shape[1] == dim
    loss = obj(torch.rand(8, 1, 16, 16), None, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    if kind == "Identity":  # the loss is applied to h itself: its gradient reaches the encoder directly
        loss.backward()
        assert all(p.grad is not None for p in enc.parameters() if p.requires_grad)


def test_head_options_are_validated() -> None:
    with pytest.raises(ValueError):
        SimCLRConfig(head="deep")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        MoCoConfig(head="deep")  # type: ignore[arg-type]
    assert MoCoConfig(version="v1").head_kind == "linear" and MoCoConfig().head_kind == "mlp"
