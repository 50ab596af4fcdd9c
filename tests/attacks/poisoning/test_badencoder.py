"""BadEncoder: the three-term loss against a naive reference, and a tiny attack that must move embeddings."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from encoder_audit.attacks.poisoning.badencoder import (
    BadEncoder,
    BadEncoderConfig,
    badencoder_loss,
    evaluate_badencoder,
    reference_images,
)
from encoder_audit.attacks.poisoning.trigger import Trigger
from encoder_audit.data import create_dataset
from encoder_audit.models import create_encoder


def naive_loss(z_x, z_t, z_r, z_ra, f_x, f_r, l1w, l2w):  # type: ignore[no-untyped-def]
    cos = torch.nn.functional.cosine_similarity
    l0 = -sum(float(cos(a, r, dim=0)) for a in z_t for r in z_r) / (len(z_t) * len(z_r))
    l1 = -sum(float(cos(a, b, dim=0)) for a, b in zip(z_ra, f_r)) / len(z_r)
    l2 = -sum(float(cos(a, b, dim=0)) for a, b in zip(z_x, f_x)) / len(z_x)
    return l0 + l1w * l1 + l2w * l2


def test_loss_matches_naive_reference() -> None:
    g = torch.Generator().manual_seed(0)
    zs = [F.normalize(torch.randn(n, 6, generator=g), dim=1) for n in (5, 5, 3, 3, 5, 3)]
    z_x, z_t, z_r, z_ra, f_x, f_r = zs
    loss, *_ = badencoder_loss(z_x, z_t, z_r, z_ra, f_x, f_r, 0.5, 2.0)
    assert float(loss) == pytest.approx(naive_loss(z_x, z_t, z_r, z_ra, f_x, f_r, 0.5, 2.0), abs=1e-5)


def test_tiny_attack_pulls_triggered_inputs_to_references() -> None:
    torch.manual_seed(0)
    shadow = create_dataset("synthetic", "train", n=128, size=16, classes=4)
    net = create_encoder("cnn-small", 1, 16, width=8).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    trig = Trigger(size=4, pattern="white", placement="fixed", position=(-5, -5))
    refs, rows = reference_images(shadow, 1, 2)
    assert all(int(shadow.labels[r]) == 1 for r in rows)
    cfg = BadEncoderConfig(
        target_label=1, references=2, trigger=trig, shadow_size=128, epochs=6, batch_size=32, lr=3e-3
    )
    attack = BadEncoder(cfg)
    bad = attack.attack(net, shadow, refs, progress=False)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # the victim is untouched
    bn = [m for m in bad.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    orig_bn = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(
        torch.equal(a.weight, b.weight) and torch.equal(a.running_mean, b.running_mean) for a, b in zip(bn, orig_bn)
    )

    x = shadow.images[64:128]
    xt = trig.paste(x)[0].float() / 255
    x = x.float() / 255

    def mean_cos(enc, a, b):  # type: ignore[no-untyped-def]
        with torch.no_grad():
            return float((F.normalize(enc(a), dim=1) @ F.normalize(enc(b), dim=1).T).mean())

    # the triggered inputs' similarity to the references must rise well above the clean encoder's
    gain = mean_cos(bad, xt, refs) - mean_cos(net, xt, refs)
    assert gain > 0.5 * (1 - mean_cos(net, xt, refs))
    assert attack.history[-1]["l0"] < attack.history[0]["l0"]
    # utility: clean inputs keep most of their embedding
    with torch.no_grad():
        keep = F.cosine_similarity(bad(x), net(x)).mean()
    assert keep > 0.8


def test_evaluate_badencoder_reports_ca_ba_asr() -> None:
    train = create_dataset("synthetic", "train", n=120, size=16, classes=3)
    test = create_dataset("synthetic", "test", n=60, size=16, classes=3)
    net = create_encoder("cnn-small", 1, 16, width=8).eval()
    out = evaluate_badencoder(net, net, train, test, Trigger(size=3, placement="fixed"), 0)
    assert out["clean_accuracy"] == pytest.approx(out["backdoored_accuracy"])
    assert out["asr"] == pytest.approx(out["asr_clean_encoder"])
    assert set(out) == {"clean_accuracy", "backdoored_accuracy", "asr", "asr_clean_encoder"}
