"""BadEncoder: the three-term loss against a naive reference, and a tiny attack that must move embeddings."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from encoder_audit.attacks.poisoning.badencoder import (
    BadEncoder,
    BadEncoderConfig,
    badencoder_loss,
    evaluate_badencoder,
    reference_images,
    reference_triggers,
    run_badencoder,
)
from encoder_audit.attacks.poisoning.trigger import Trigger
from encoder_audit.data import create_dataset
from encoder_audit.models import create_encoder


def naive_loss(z_x, z_t, z_r, z_ra, f_x, f_r, l1w, l2w):  # type: ignore[no-untyped-def]
    cos = torch.nn.functional.cosine_similarity
    # reference i is matched only with the shadow images carrying its own trigger i
    l0 = -sum(sum(float(cos(a, z_r[i], dim=0)) for a in z_t[i]) / len(z_t[i]) for i in range(len(z_r))) / len(z_r)
    l1 = -sum(float(cos(a, b, dim=0)) for a, b in zip(z_ra, f_r)) / len(z_r)
    l2 = -sum(float(cos(a, b, dim=0)) for a, b in zip(z_x, f_x)) / len(z_x)
    return l0 + l1w * l1 + l2w * l2


def test_loss_matches_naive_reference() -> None:
    g = torch.Generator().manual_seed(0)
    z_x, z_r, z_ra, f_x, f_r = (F.normalize(torch.randn(n, 6, generator=g), dim=1) for n in (5, 3, 3, 5, 3))
    z_t = F.normalize(torch.randn(3, 5, 6, generator=g), dim=-1)
    loss, *_ = badencoder_loss(z_x, z_t, z_r, z_ra, f_x, f_r, 0.5, 2.0)
    assert float(loss) == pytest.approx(naive_loss(z_x, z_t, z_r, z_ra, f_x, f_r, 0.5, 2.0), abs=1e-5)
    with pytest.raises(ValueError):
        badencoder_loss(z_x, z_t[0], z_r, z_ra, f_x, f_r)


def test_each_reference_has_its_own_trigger() -> None:
    base = Trigger(size=4, pattern="white", placement="fixed", position=(-5, -5))
    ts = reference_triggers(base, 3)
    assert ts[0] == base and len({t.patch(1).numpy().tobytes() for t in ts}) == 3
    assert all(t.size == 4 and t.position == (-5, -5) for t in ts)


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
    bad = attack.backdoor(net, shadow, refs, progress=False)
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

    # the inputs carrying reference 0's trigger must move toward reference 0, well above the clean encoder
    gain = mean_cos(bad, xt, refs[:1]) - mean_cos(net, xt, refs[:1])
    assert gain > 0.5 * (1 - mean_cos(net, xt, refs[:1]))
    assert attack.history[-1]["l0"] < attack.history[0]["l0"]
    # utility: clean inputs keep most of their embedding
    with torch.no_grad():
        keep = F.cosine_similarity(bad(x), net(x)).mean()
    assert keep > 0.8


def test_evaluate_badencoder_reports_ca_ba_asr() -> None:
    train = create_dataset("synthetic", "train", n=120, size=16, classes=3)
    test = create_dataset("synthetic", "test", n=60, size=16, classes=3)
    net = create_encoder("cnn-small", 1, 16, width=8).eval()
    refs = train.float_images(torch.arange(2))
    out = evaluate_badencoder(net, net, train, test, Trigger(size=3, placement="fixed"), 0, references=refs)
    assert out["clean_accuracy"] == pytest.approx(out["backdoored_accuracy"])
    assert out["asr"] == pytest.approx(out["asr_clean_encoder"])
    assert out["asr_raw"] == pytest.approx(out["asr_clean_encoder_raw"])
    assert out["cos_reference"] == pytest.approx(out["cos_reference_clean"])
    assert out["n_asr"] == int((test.labels != 0).sum())
    assert {"clean_accuracy_raw", "backdoored_accuracy_raw", "norm_clean", "norm_triggered"} <= set(out)


def test_normalised_probe_ignores_embedding_length() -> None:
    # An encoder that only scales triggered embeddings changes nothing for a probe on normalised features.
    train = create_dataset("synthetic", "train", n=120, size=16, classes=3)
    test = create_dataset("synthetic", "test", n=60, size=16, classes=3)
    net = create_encoder("cnn-small", 1, 16, width=8).eval()
    trig = Trigger(size=4, pattern="white", placement="fixed", position=(0, 0))

    scaled = copy.deepcopy(net)
    plain = scaled.forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        hit = (x[:, :, :4, :4] > 0.999).flatten(1).all(1).float()
        return plain(x) * (1 + 20 * hit)[:, None]

    scaled.forward = forward  # type: ignore[method-assign]
    out = evaluate_badencoder(net, scaled, train, test, trig, 0)
    assert out["asr"] == pytest.approx(out["asr_clean_encoder"])
    assert out["norm_triggered"] > 5 * out["norm_clean"]


def test_run_badencoder_draws_references_of_the_target_class() -> None:
    shadow = create_dataset("synthetic", "train", n=96, size=16, classes=3)
    test = create_dataset("synthetic", "test", n=48, size=16, classes=3)
    net = create_encoder("cnn-small", 1, 16, width=8).eval()
    cfg = BadEncoderConfig(target_label=2, references=2, shadow_size=64, epochs=1, batch_size=32)
    run = run_badencoder(net, shadow, shadow, test, cfg, seed=0)
    assert run.steps == 2 and all(int(shadow.labels[r]) == 2 for r in run.reference_rows)
    assert 0 <= run.metrics["asr"] <= 1 and len(run.history) == 1


def test_typical_references_are_of_the_target_class_and_nearest_its_mean() -> None:
    data = create_dataset("synthetic", "train", n=120, size=16, classes=3)
    net = create_encoder("cnn-small", 1, 16, width=8).eval()
    refs, rows = reference_images(data, 1, 2, seed=0, encoder=net, pool=100)
    assert refs.shape == (2, 1, 16, 16)
    assert len(rows) == 2 and all(int(data.labels[r]) == 1 for r in rows)
    cand = torch.as_tensor([i for i in range(120) if int(data.labels[i]) == 1])
    with torch.no_grad():
        z = F.normalize(net(data.float_images(cand)), dim=1)
    score = dict(zip(cand.tolist(), (z @ F.normalize(z.mean(0), dim=0)).tolist()))
    assert min(score[r] for r in rows) >= sorted(score.values())[-2] - 1e-6  # the pool holds all 40: the top two
    assert reference_images(data, 1, 2, seed=0, encoder=net, pool=100)[1] == rows
    with pytest.raises(ValueError):
        BadEncoderConfig(reference_choice="prettiest")


def test_separable_references_maximise_the_margin_to_the_nearest_other_class() -> None:
    data = create_dataset("synthetic", "train", n=120, size=16, classes=3)
    net = create_encoder("cnn-small", 1, 16, width=8).eval()
    refs, rows = reference_images(data, 1, 2, seed=0, encoder=net, pool=100, choice="separable")
    assert refs.shape == (2, 1, 16, 16) and all(int(data.labels[r]) == 1 for r in rows)
    # naive reference: every class has < 100 images, so the pools are whole classes
    with torch.no_grad():
        z = F.normalize(net(data.float_images(torch.arange(120))), dim=1)
    means = {c: F.normalize(z[data.labels == c].mean(0), dim=0) for c in range(3)}
    margin = {}
    for i in range(120):
        if int(data.labels[i]) == 1:
            margin[i] = float(z[i] @ means[1]) - max(float(z[i] @ means[c]) for c in (0, 2))
    top = sorted(margin, key=margin.get, reverse=True)[:2]
    assert sorted(rows) == sorted(top)
    assert BadEncoderConfig().reference_choice == "separable"
    with pytest.raises(ValueError):
        reference_images(data, 1, 2, seed=0, encoder=net, pool=100, choice="prettiest")
