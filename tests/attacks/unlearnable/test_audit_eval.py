"""Labelings, countermeasures and perceptibility on tiny data (the audit stage is tested in tests/audit)."""

from __future__ import annotations

import pytest
import torch

from encoder_audit.attacks.unlearnable.countermeasures import jpeg_images, parse_countermeasure
from encoder_audit.attacks.unlearnable.evaluation import TrainerConfig, make_labelings
from encoder_audit.attacks.unlearnable.perceptibility import perceptibility, ssim
from encoder_audit.models import create_encoder


def test_labelings_differ_from_true(synthetic_train, synthetic_test):
    labs = {lab.name: lab for lab in make_labelings(synthetic_train, synthetic_test, config=TrainerConfig(pseudo_k=3))}
    assert labs["true"].num_classes == 10
    assert labs["coarse"].num_classes == 2 and set(labs["coarse"].train.tolist()) == {0, 1}
    # coarse is a function of the true label
    for c in range(10):
        assert len(set(labs["coarse"].train[synthetic_train.labels == c].tolist())) == 1
    assert labs["pseudo"].num_classes == 3 and len(labs["pseudo"].test) == len(synthetic_test)
    assert labs["ssl"].train is None
    with pytest.raises(ValueError):
        make_labelings(synthetic_train, synthetic_test, ["bogus"])


def test_countermeasure_specs():
    assert parse_countermeasure("jpeg:quality=10").prepare is not None
    assert parse_countermeasure("pgd-at:eps=4/255,steps=2").objective is not None
    assert "identity" in parse_countermeasure("grayscale", channels=1).note
    for bad in ("nope", "jpeg:q=10", "blur:sigma=x", "jpeg:quality=0"):
        with pytest.raises(ValueError):
            parse_countermeasure(bad)


def test_training_countermeasures_run(synthetic_train):
    enc = create_encoder("cnn-small", 1, 28)
    x = synthetic_train.float_images(slice(0, 8))
    y = synthetic_train.labels[:8]
    g = torch.Generator().manual_seed(0)
    for spec in ("cutout", "cutmix", "mixup", "pgd-at:steps=1"):
        obj = parse_countermeasure(spec).objective(enc, 10, True)
        loss = obj(x, y, g)
        assert torch.isfinite(loss) and loss.requires_grad


def test_jpeg_changes_images_and_blur_smooths(synthetic_train):
    ds = synthetic_train.subset(range(16))
    j = jpeg_images(ds, 10)
    assert j.images.shape == ds.images.shape and not torch.equal(j.images, ds.images)
    b = parse_countermeasure("blur:sigma=1").prepare(ds)
    tv = lambda im: (im.float()[..., 1:] - im.float()[..., :-1]).abs().mean()  # noqa: E731
    assert tv(b.images) < tv(ds.images)


def test_perceptibility_naive_reference():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(20, 230, (4, 1, 16, 16), dtype=torch.uint8, generator=g)
    b = (a.int() + torch.randint(-3, 4, a.shape, generator=g)).clamp(0, 255).to(torch.uint8)
    p = perceptibility(a, b)
    d = (b.double() - a.double()) / 255
    assert p["linf_levels"] == int((b.int() - a.int()).abs().max())
    mse = d.flatten(1).pow(2).mean(1)
    assert p["psnr_db"] == pytest.approx(float((10 * torch.log10(1 / mse)).mean()), abs=0.01)
    assert ssim(a, a).min() == pytest.approx(1.0) and 0 < p["ssim_mean"] < 1


def test_fine_labeling_splits_each_class_and_keeps_the_class(synthetic_train, synthetic_test):
    (fine,) = make_labelings(synthetic_train, synthetic_test, ["fine"], config=TrainerConfig(fine_k=2))
    n = int(synthetic_train.labels.max()) + 1
    assert fine.num_classes == 2 * n
    assert fine.train is not None
    # the fine label determines the class (integer division), and every class is split in two
    assert torch.equal(fine.train // 2, synthetic_train.labels)
    assert torch.equal(fine.test // 2, synthetic_test.labels)
    for c in range(n):
        assert set((fine.train[synthetic_train.labels == c] % 2).tolist()) == {0, 1}
    with pytest.raises(ValueError, match="fine_k"):
        TrainerConfig(fine_k=1)
