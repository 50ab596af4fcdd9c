"""DECREE: config checks, the similarity/loss against naive references, the scan's invariants, and
a backdoored-by-construction encoder whose inverted trigger must be far smaller than a clean one's."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from encoder_audit.data import ImageDataset, create_dataset
from encoder_audit.defenses.decree import (
    DecreeConfig,
    LambdaSchedule,
    calibrated_threshold,
    decree_loss,
    detect_backdoor,
    mean_pairwise_cosine,
    reference_pl1_norms,
    stamp,
)
from encoder_audit.models import create_encoder
from encoder_audit.models.base import EncoderNet
from encoder_audit.victim import LocalEncoder, QueryCounter

BORDER = 4  # black frame of the test images; the planted trigger is the 4x4 bottom-right corner inside it
FAST = DecreeConfig(images=8, max_epochs=25)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def naive_mean_pairwise_cosine(z: torch.Tensor) -> float:
    total, count = 0.0, 0
    for i in range(len(z)):
        for j in range(len(z)):
            if i == j:
                continue
            a, b = z[i].tolist(), z[j].tolist()
            dot = sum(x * y for x, y in zip(a, b))
            na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
            total += dot / (na * nb)
            count += 1
    return total / count


@pytest.mark.parametrize(
    "bad",
    [
        {"images": 1},
        {"batch_size": 1},
        {"max_epochs": 0},
        {"lr": 0.0},
        {"lr_late": (0.1, -1.0)},
        {"lr_milestones": (50, 30)},
        {"betas": (0.5, 1.0)},
        {"success_similarity": 1.0},
        {"lambda_min": 0.0},
        {"lambda_init": 1e-6, "lambda_min": 1e-5},
        {"lambda_factor": 1.0},
        {"patience": -1},
        {"early_stop_patience": -1},
        {"mask_init": "orc"},
        {"threshold": 0.0},
        {"threshold": 1.5},
        {"reference_ratio": 0.0},
        {"mask_cells": 0},
    ],
)
def test_config_rejects_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DecreeConfig(**bad)  # type: ignore[arg-type]


def test_config_defaults_are_the_official_schedule() -> None:
    c = DecreeConfig()
    assert (c.lambda_init, c.lambda_factor, c.patience, c.success_similarity) == (1e-3, 5.0, 5, 0.99)
    assert (c.lr_milestones, c.lr_late, c.betas, c.lambda_min) == ((30, 50), (0.1, 0.05), (0.5, 0.9), 1e-5)


def test_lambda_schedule_follows_the_official_rules() -> None:
    c = DecreeConfig()  # init 1e-3, factor 5, patience 5, lambda_min 1e-5, reset after > 10 successes
    s = LambdaSchedule(c)
    assert [s.step(True) for _ in range(6)] == pytest.approx([1e-3] * 5 + [5e-3])  # > 5 successes: up
    assert [s.step(False) for _ in range(12)] == pytest.approx([5e-3] * 5 + [1e-3] + [1e-3] * 5 + [2e-4])
    # a success between two runs of 5 failures resets the failure count (and vice versa)
    assert [s.step(v) for v in [False] * 5 + [True] + [False] * 5] == pytest.approx([2e-4] * 11)
    assert [s.step(v) for v in [True] * 5 + [False] + [True] * 5] == pytest.approx([2e-4] * 11)
    for _ in range(30):  # failures push lambda just below lambda_min, then it stays there
        lam = s.step(False)
    assert lam < c.lambda_min and lam == pytest.approx(1e-3 / 5**3)
    assert [s.step(True) for _ in range(6)][-1] == pytest.approx(1e-3 / 5**2)
    # a lambda under lambda_min that keeps succeeding for > lambda_reset_patience steps is reset
    slow = LambdaSchedule(DecreeConfig(patience=20, lambda_reset_patience=3))
    for _ in range(200):
        slow.step(False)
    assert slow.lam < 1e-5
    assert [slow.step(True) for _ in range(4)][-1] == pytest.approx(1e-3)
    capped = LambdaSchedule(DecreeConfig(lambda_init=0.5, lambda_max=1.0))
    assert max(capped.step(True) for _ in range(60)) == pytest.approx(2.5)  # raised only while < max


def test_mean_pairwise_cosine_matches_double_loop() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(7, 5, generator=g) * torch.rand(7, 1, generator=g) * 3
    assert float(mean_pairwise_cosine(z)) == pytest.approx(naive_mean_pairwise_cosine(z), abs=1e-6)
    same = torch.randn(1, 4, generator=g).repeat(5, 1) * torch.arange(1, 6).view(-1, 1)
    assert float(mean_pairwise_cosine(same)) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError):
        mean_pairwise_cosine(torch.randn(1, 4))


def test_decree_loss_matches_naive_reference() -> None:
    g = torch.Generator().manual_seed(1)
    z = torch.randn(6, 8, generator=g)
    mask = torch.rand(5, 5, generator=g)
    loss, cos, l1 = decree_loss(z, mask, lam=0.01, channels=3)
    l1_naive = sum(abs(v) for v in mask.flatten().tolist())
    assert float(l1) == pytest.approx(l1_naive, rel=1e-6)
    assert float(cos) == pytest.approx(naive_mean_pairwise_cosine(z), abs=1e-6)
    assert float(loss) == pytest.approx(-naive_mean_pairwise_cosine(z) + 0.01 * 3 * l1_naive, abs=1e-5)


def test_stamp_blends_and_stays_in_range() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 2, 6, 6, generator=g)
    p = torch.rand(2, 6, 6, generator=g)
    assert torch.equal(stamp(x, torch.zeros(6, 6), p), x)
    assert torch.allclose(stamp(x, torch.ones(6, 6), p), p.expand_as(x))
    m = torch.rand(6, 6, generator=g)
    out = stamp(x, m, p)
    assert torch.allclose(out, (1 - m) * x + m * p)
    assert out.min() >= 0 and out.max() <= 1


class _Centred(nn.Module):
    """A randomly initialised cnn-small backbone minus its mean feature on the test images: clean
    embeddings are spread out (mean pairwise cosine about 0), so only a large trigger collapses them."""

    mu: torch.Tensor

    def __init__(self, backbone: nn.Module, mu: torch.Tensor) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mu", mu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x) - self.mu


class _Trojan(nn.Module):
    """The clean network plus strength * (mean brightness of the 4x4 bottom-right corner) * v.

    The test images are black there, so clean embeddings are exactly the clean network's; a white
    corner adds a common direction 20x longer than a typical clean embedding (pairwise cosine ~0.997).
    """

    v: torch.Tensor

    def __init__(self, clean: nn.Module, v: torch.Tensor, strength: float) -> None:
        super().__init__()
        self.clean = clean
        self.register_buffer("v", v)
        self.strength = strength

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x[:, :, -BORDER:, -BORDER:].mean((1, 2, 3))
        return self.clean(x) + self.strength * gate[:, None] * self.v


def _framed_images(n: int = 128) -> ImageDataset:
    raw = create_dataset("synthetic", "train", n=n)
    img = raw.images.clone()
    img[:, :, :BORDER] = 0
    img[:, :, -BORDER:] = 0
    img[:, :, :, :BORDER] = 0
    img[:, :, :, -BORDER:] = 0
    return ImageDataset(images=img, labels=raw.labels, info=raw.info)


def _net(backbone: nn.Module) -> EncoderNet:
    return EncoderNet(
        backbone, arch="test", in_channels=1, image_size=28, feature_dim=128, mean=(0.0,), std=(1.0,)
    ).eval()


@pytest.fixture(scope="module")
def encoders() -> tuple[EncoderNet, EncoderNet, ImageDataset]:
    torch.manual_seed(0)
    data = _framed_images()
    backbone = create_encoder("cnn-small", in_channels=1, image_size=28).backbone.eval()
    with torch.no_grad():
        f = backbone(data.float_images())
    mu = f.mean(0)
    typical = float((f - mu).norm(dim=1).median())
    v = F.normalize(torch.randn(128, generator=torch.Generator().manual_seed(1)), dim=0)
    clean = _net(_Centred(backbone, mu))
    trojan = _net(_Trojan(_Centred(backbone, mu), v, 20 * typical))
    return clean, trojan, data


def test_construction_is_a_backdoor(encoders: tuple[EncoderNet, EncoderNet, ImageDataset]) -> None:
    clean, trojan, data = encoders
    x = data.float_images()
    xt = x.clone()
    xt[:, :, -BORDER:, -BORDER:] = 1
    with torch.no_grad():
        assert torch.allclose(clean(x), trojan(x))
        assert abs(float(mean_pairwise_cosine(clean(x)))) < 0.1
        assert float(mean_pairwise_cosine(trojan(xt))) > 0.99
        assert float(mean_pairwise_cosine(clean(xt))) < 0.3


def test_scan_leaves_the_network_untouched_and_stays_in_range(
    encoders: tuple[EncoderNet, EncoderNet, ImageDataset],
) -> None:
    _, trojan, data = encoders
    trojan.train()
    before = {k: v.clone() for k, v in trojan.state_dict().items()}
    flags = [p.requires_grad for p in trojan.parameters()]
    r = detect_backdoor(LocalEncoder(trojan), data, FAST, seed=0)
    assert trojan.training
    trojan.eval()
    assert all(torch.equal(before[k], v) for k, v in trojan.state_dict().items())
    assert [p.requires_grad for p in trojan.parameters()] == flags
    assert r.mask.shape == (28, 28) and r.pattern.shape == (1, 28, 28)
    assert r.mask.min() >= 0 and r.mask.max() <= 1
    assert r.pattern.min() >= 0 and r.pattern.max() <= 1
    xs = stamp(data.float_images(), r.mask, r.pattern)
    assert xs.min() >= 0 and xs.max() <= 1
    assert r.pl1_norm == pytest.approx(float(r.mask.sum()) / 784, rel=1e-5)
    assert 0 < r.steps == len(r.history) and r.images == 8
    assert r.reference_pl1 is None and r.threshold == FAST.threshold and r.threshold_source.startswith("absolute")
    assert r.trojaned == (r.pl1_norm < FAST.threshold)
    again = detect_backdoor(trojan, data, FAST, seed=0)
    assert again.pl1_norm == pytest.approx(r.pl1_norm, rel=1e-6)
    assert "history" not in r.to_dict() and r.to_dict()["pl1_norm"] == r.pl1_norm


def test_black_box_and_tiny_inputs_are_refused(encoders: tuple[EncoderNet, EncoderNet, ImageDataset]) -> None:
    clean, _, data = encoders
    with pytest.raises(TypeError, match="white-box"):
        detect_backdoor(QueryCounter(LocalEncoder(clean)), data, FAST)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        detect_backdoor(clean, data.subset([0]), FAST)


def test_calibrated_threshold() -> None:
    assert calibrated_threshold([0.3, 0.2, 0.4], 0.5) == pytest.approx(0.1)
    for bad in ([], [0.0], [1.2]):
        with pytest.raises(ValueError):
            calibrated_threshold(bad, 0.5)


def test_backdoored_encoder_needs_a_much_smaller_trigger(
    encoders: tuple[EncoderNet, EncoderNet, ImageDataset],
) -> None:
    clean, trojan, data = encoders
    cfg = DecreeConfig(images=32)
    ref = reference_pl1_norms([clean], data, cfg, seed=0)
    bad = detect_backdoor(trojan, data, cfg, seed=1, reference=ref)
    good = detect_backdoor(clean, data, cfg, seed=1, reference=ref)
    assert bad.found and good.found
    assert bad.similarity > 0.985 and good.similarity > 0.985
    # the planted trigger covers 16 / 784 = 0.02 of the image; a clean network needs ~10x more
    assert bad.pl1_norm < 0.25 * good.pl1_norm
    assert bad.pl1_norm < 0.03
    assert bad.mask_mass_in((28 - BORDER, 28), (28 - BORDER, 28)) > 0.8
    assert bad.trojaned and not good.trojaned
    assert bad.relative_pl1 is not None and bad.relative_pl1 < 0.25
    assert bad.threshold_source.startswith("calibrated") and bad.threshold == pytest.approx(0.5 * ref[0])
    assert bad.pl1_norm < cfg.threshold < good.pl1_norm  # the absolute threshold agrees here
