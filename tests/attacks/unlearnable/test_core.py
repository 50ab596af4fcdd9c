"""Budget on quantised images, clustering, shift permutation, generator bound, UC loss vs a naive reference."""

from __future__ import annotations

import math

import pytest
import torch

from encoder_audit.attacks.unlearnable import (
    UCConfig,
    apply_perturbation,
    cluster_features,
    create_protection,
    parse_eps,
    project,
    shift_permutation,
    uc_loss,
)
from encoder_audit.attacks.unlearnable.generator import PerturbationGenerator, resize_perturbation
from encoder_audit.attacks.unlearnable.surrogate import differentiable_surrogate
from encoder_audit.models import create_encoder
from encoder_audit.victim import LocalEncoder, QueryCounter


def test_parse_eps():
    assert parse_eps("16/255") == pytest.approx(16 / 255)
    assert parse_eps("0.5") == 0.5
    for bad in ("x", "1/0", "-3/255", "0"):
        with pytest.raises(ValueError):
            parse_eps(bad)


@pytest.mark.parametrize("eps", [16 / 255, 8 / 255, 0.05])
def test_linf_budget_holds_after_quantisation(eps):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (32, 3, 9, 11), dtype=torch.uint8, generator=g)
    delta = (torch.rand(images.shape, generator=g) * 2 - 1) * eps * 1.5  # deliberately over budget
    out = apply_perturbation(images, delta, eps, "linf")
    diff = (out.int() - images.int()).abs()
    assert diff.max() <= math.floor(eps * 255 + 1e-6)
    assert diff.max() >= math.floor(eps * 255 + 1e-6) - 1  # and it is used


def test_l2_budget_holds_after_quantisation():
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (16, 1, 12, 12), dtype=torch.uint8, generator=g)
    eps = 0.5
    delta = torch.randn(images.shape, generator=g)
    out = apply_perturbation(images, delta, eps, "l2")
    norms = ((out.float() - images.float()) / 255).flatten(1).norm(dim=1)
    assert (norms <= eps + 1e-6).all()
    assert norms.max() > 0.8 * eps


def test_project_naive():
    d = torch.randn(5, 2, 3, 3)
    p = project(d, 0.3, "l2")
    for i in range(5):
        n = float(d[i].norm())
        expected = d[i] * min(1.0, 0.3 / n)
        assert torch.allclose(p[i], expected, atol=1e-6)
    assert project(d, 0.3, "linf").abs().max() <= 0.3


def test_shift_permutation():
    assert shift_permutation(4, 1).tolist() == [1, 2, 3, 0]
    assert shift_permutation(5, 2).tolist() == [2, 3, 4, 0, 1]
    perm = shift_permutation(10, 3)
    assert sorted(perm.tolist()) == list(range(10)) and all(perm[i] != i for i in range(10))
    with pytest.raises(ValueError):
        shift_permutation(5, 5)
    assert UCConfig(clusters=3, permutation=(2, 0, 1)).targets().tolist() == [2, 0, 1]
    with pytest.raises(ValueError):
        UCConfig(clusters=3, permutation=(0, 2, 1))  # fixed point
    with pytest.raises(ValueError):
        UCConfig(clusters=3, permutation=(1, 1, 0))  # not a permutation


def test_kmeans_recovers_blobs_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 8, generator=g) * 10
    truth = torch.arange(200) % 4
    feats = centers[truth] + torch.randn(200, 8, generator=g) * 0.1
    a = cluster_features(feats, 4, seed=3)
    b = cluster_features(feats, 4, seed=3)
    assert torch.equal(a.assignment, b.assignment)
    # every cluster is exactly one blob
    for k in range(4):
        assert len(set(truth[a.assignment == k].tolist())) == 1
    assert torch.equal(a.predict(feats), a.assignment)


def test_uc_loss_matches_naive_reference():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(6, 5, generator=g)
    target = torch.randn(5, generator=g)
    for t in (1.0, 0.5):
        q = torch.exp(target / t) / torch.exp(target / t).sum()
        naive = 0.0
        for i in range(6):
            p = torch.exp(emb[i] / t) / torch.exp(emb[i] / t).sum()
            naive += float((q * (q.log() - p.log())).sum())
        assert uc_loss(emb, target, "kl", t).item() == pytest.approx(naive / 6, rel=1e-5)
    cos = sum(1 - float(emb[i] @ target / (emb[i].norm() * target.norm())) for i in range(6)) / 6
    assert uc_loss(emb, target, "cosine").item() == pytest.approx(cos, rel=1e-5)
    mse = sum(float(((emb[i] - target) ** 2).sum()) for i in range(6)) / 6
    assert uc_loss(emb, target, "mse").item() == pytest.approx(mse, rel=1e-5)
    assert uc_loss(target[None], target, "kl").item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("norm,eps", [("linf", 16 / 255), ("l2", 0.7)])
def test_generator_output_bounded(norm, eps):
    gen = PerturbationGenerator((3, 10, 14), eps, norm, ngf=4, n_blocks=1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in gen.parameters():  # blow the weights up: the bound must still hold
            p.mul_(50)
        d = gen()
    assert d.shape == (1, 3, 10, 14)
    if norm == "linf":
        assert d.abs().max() <= eps + 1e-7
    else:
        assert d.flatten().norm() <= eps + 1e-5


def test_resize_perturbation_keeps_linf_and_maps_channels():
    d = (torch.rand(3, 1, 8, 8) * 2 - 1) * 0.1
    r = resize_perturbation(d, 20, 13, 3)
    assert r.shape == (3, 3, 20, 13) and r.abs().max() <= d.abs().max()
    assert resize_perturbation(torch.rand(2, 3, 4, 4), 4, 4, 1).shape == (2, 1, 4, 4)


def test_differentiable_surrogate_unwraps_and_refuses_black_box():
    net = create_encoder("cnn-small", 1, 16)
    wrapped = QueryCounter(LocalEncoder(net))
    f = differentiable_surrogate(wrapped)
    x = torch.rand(2, 3, 20, 20, requires_grad=True)  # other size and channels are adapted
    f(x).sum().backward()
    assert x.grad is not None and all(p.grad is None for p in net.parameters())

    class Remote:
        input_shape, embedding_dim = (1, 16, 16), 4

        def embed(self, x):
            return torch.zeros(len(x), 4)

    with pytest.raises(ValueError, match="black box"):
        differentiable_surrogate(Remote())


def test_uc_assigns_one_perturbation_per_cluster(synthetic_train):
    ds = synthetic_train.subset(range(60))
    sur = LocalEncoder(create_encoder("cnn-small", 1, 28))
    cfg = UCConfig(clusters=3, epochs=1, batch_size=30, ngf=4, n_blocks=1, lr=1e-3, train_on="members")
    prot = create_protection("uc", cfg, surrogate=sur).protect(ds)
    fit = prot.meta["fit"]
    assert prot.groups is not None and torch.equal(prot.groups, fit.clustering.assignment)
    assert fit.targets.tolist() == [1, 2, 0]
    assert prot.meta["train_on"] == "members"
    diff = prot.dataset.images.int() - ds.images.int()
    assert diff.abs().max() <= 16
    # images of one cluster share a perturbation wherever no clipping happened
    for k in range(3):
        members = torch.nonzero(prot.groups == k).flatten()
        ref = fit.perturbations[k, 0].mul(255).round()
        for m in members[:5]:
            free = (ds.images[m, 0] > 20) & (ds.images[m, 0] < 235)
            assert torch.equal(diff[m, 0][free].float(), ref[free])
    assert prot.summary()["method"] == "uc"
    # even barely trained, the crafted perturbation uses the budget (not shrunk by batch-norm running stats)
    assert fit.perturbations.abs().mean() > cfg.eps / 10


@pytest.mark.parametrize("name", ["random", "lsp"])
def test_model_free_baselines_budget(synthetic_train, name):
    prot = create_protection(name).protect(synthetic_train)
    d = (prot.dataset.images.float() - synthetic_train.images.float()) / 255
    if prot.norm == "linf":
        assert d.abs().max() <= prot.eps + 1e-6
    else:
        assert (d.flatten(1).norm(dim=1) <= prot.eps + 1e-5).all()
    assert d.abs().max() > 0


def _centroid_accuracy(d: torch.Tensor, y: torch.Tensor) -> float:
    means = torch.stack([d[y == k].mean(0) for k in range(int(y.max()) + 1)])
    return float((torch.cdist(d, means).argmin(1) == y).float().mean())


def test_lsp_is_separable_by_class(synthetic_train):
    prot = create_protection("lsp").protect(synthetic_train)
    d = (prot.dataset.images.float() - synthetic_train.images.float()).flatten(1)
    y = synthetic_train.labels
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    assert _centroid_accuracy(d, y) > 0.95
    assert _centroid_accuracy(d, shuffled) < 0.5


def test_label_agnostic_mode_uses_cluster_labels(synthetic_train):
    sur = LocalEncoder(create_encoder("cnn-small", 1, 28))
    prot = create_protection("lsp", {"label_source": "clusters", "label_clusters": 4}, surrogate=sur).protect(
        synthetic_train
    )
    assert prot.meta["protector_classes"] == 4 and int(prot.groups.max()) == 3
    with pytest.raises(ValueError, match="surrogate"):
        create_protection("lsp", {"label_source": "clusters"}).protect(synthetic_train)


def test_protections_are_registered_attacks_with_capabilities():
    from encoder_audit.attacks.registry import attack_class, attack_names, create_attack

    assert attack_names("protection") == ["em", "lsp", "random", "tap", "uc"]
    uc = attack_class("protection", "uc")
    assert uc.needs_surrogate and uc.white_box and not uc.needs_labels
    assert attack_class("protection", "em").needs_labels and not attack_class("protection", "random").needs_surrogate
    assert create_attack("protection", "uc", epochs=2).config.epochs == 2
    assert create_attack("protection", "random").query_cost(100) == 0
    assert create_attack("protection", "uc").query_cost(100) == 100
    with pytest.raises(ValueError, match="surrogate"):
        create_attack("protection", "uc").protect(create_dataset_tiny())
    with pytest.raises(ValueError, match="eps"):
        UCConfig(eps=300 / 255)
    with pytest.raises(ValueError, match="budget"):
        parse_eps("300/255")
    assert parse_eps("300/255", norm="l2") == pytest.approx(300 / 255)


def create_dataset_tiny():
    from encoder_audit.data import create_dataset

    return create_dataset("synthetic", "train", n=8)


def test_purity_and_k_rule_against_naive_reference():
    from encoder_audit.attacks.unlearnable.clustering import KChoice, agreement, choose_k, purity, sweep_k

    a = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    y = torch.tensor([5, 5, 6, 6, 6, 7, 7, 5])
    # naive: for each cluster count its most common label
    naive = sum(max((y[a == c] == v).sum().item() for v in y.unique()) for c in a.unique()) / len(a)
    assert purity(a, y) == pytest.approx(naive) == pytest.approx(6 / 8)
    assert purity(y, y) == 1.0 and agreement(y, y) == pytest.approx(1.0)
    sweep = [KChoice(10, 0.80, 0.70), KChoice(20, 0.86, 0.705), KChoice(50, 0.865, 0.55), KChoice(100, 0.87, 0.5)]
    assert choose_k(sweep, 0.01) == 10 and choose_k(sweep, 0.0) == 20  # AMI, not purity, picks K
    with pytest.raises(ValueError):
        choose_k([])
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 8, generator=g) * 10
    labels = torch.arange(200) % 4
    feats = centres[labels] + torch.randn(200, 8, generator=g)
    rows = sweep_k(feats, labels, (4, 8, 100), min_cluster_images=5)
    assert [r.k for r in rows] == [4, 8]  # 100 clusters would leave 2 images each
    assert rows[0].purity == 1.0 and rows[0].ami > 0.95


def test_uc_oracle_clusters_are_the_classes_and_report_the_surrogate_check(synthetic_train):
    ds = synthetic_train.subset(range(60))
    sur = LocalEncoder(create_encoder("cnn-small", 1, 28))
    cfg = UCConfig(clusters=10, epochs=1, batch_size=30, ngf=4, n_blocks=1, train_on="members", cluster_source="labels")
    prot = create_protection("uc", cfg, surrogate=sur).protect(ds)
    assert torch.equal(prot.groups, ds.labels)
    assert 0 <= prot.meta["target_success"] <= 1 and 0 <= prot.meta["stay_own"] <= 1
    with pytest.raises(ValueError, match="class count"):
        create_protection("uc", {**cfg.__dict__, "clusters": 3}, surrogate=sur).protect(ds)


def test_tap_starts_random_reports_target_success_and_marks_failure(synthetic_train):
    ds = synthetic_train.subset(range(64))
    black = ds.images.clone()
    black[:, :, :4, :] = 0  # exactly-zero pixels: a zero start with a clamp never moves them
    from encoder_audit.data.base import ImageDataset

    ds = ImageDataset(black, ds.labels, ds.info)
    cfg = {"steps": 2, "shadow_epochs": 1, "batch_size": 32, "eps": 16 / 255, "min_target_success": 1.0}
    prot = create_protection("tap", cfg).protect(ds)
    moved = (prot.dataset.images[:, :, :4, :].int() - black[:, :, :4, :].int()).abs()
    assert moved.max() > 0  # the random start leaves the black rows
    assert 0 <= prot.meta["target_success"] <= 1
    assert prot.meta["failed"] == (prot.meta["target_success"] < 1.0)
    zero = create_protection("tap", {**cfg, "random_start": False}).protect(ds)
    assert (zero.dataset.images[:, :, :4, :] == 0).all()  # the bug the random start fixes
