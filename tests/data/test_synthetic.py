"""The synthetic dataset: deterministic, balanced, separable, and not solved by a random encoder."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch

from encoder_audit.data import ImageDataset, create_dataset
from encoder_audit.data.synthetic import make_synthetic


def fourier_orientation_classifier(ds: ImageDataset, pad: int = 128) -> torch.Tensor:
    """Predict each image's class from the orientation of its strongest mid-frequency Fourier component.

    A hand-written oracle: it knows how the classes are made (folded orientation, 2-4 cycles per
    image), so its accuracy bounds how separable the classes are.
    """
    x = ds.float_images()[:, 0]
    x = x - x.mean(dim=(1, 2), keepdim=True)
    win = torch.hann_window(x.shape[-1], periodic=False)
    power = torch.fft.rfft2(x * win[None, :, None] * win[None, None, :], s=(pad, pad)).abs() ** 2
    ky = torch.fft.fftfreq(pad) * x.shape[-1]
    kx = torch.fft.rfftfreq(pad) * x.shape[-1]
    radius = torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    power = power * ((radius >= 1.5) & (radius <= 5.0))
    idx = power.flatten(1).argmax(1)
    theta = torch.atan2(ky[idx // power.shape[-1]], kx[idx % power.shape[-1]]).abs()  # in [0, pi/2]
    k = ds.info.num_classes
    return (theta / (math.pi / 2) * (k - 1)).round().long()


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.numpy().tobytes()).hexdigest()


def test_deterministic_and_seeded() -> None:
    a = create_dataset("synthetic", "train", n=64)
    b = create_dataset("synthetic", "train", n=64)
    assert _digest(a.images) == _digest(b.images) and torch.equal(a.labels, b.labels)  # type: ignore[arg-type]
    assert _digest(a.images) != _digest(create_dataset("synthetic", "train", n=64, seed=1).images)
    assert _digest(a.images) != _digest(create_dataset("synthetic", "test", n=64).images)
    x1, y1 = make_synthetic(40, seed=5, channels=3, size=16, classes=4)
    x2, y2 = make_synthetic(40, seed=5, channels=3, size=16, classes=4)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_shapes_balance_and_info() -> None:
    ds = create_dataset("synthetic", "train", n=200, channels=3, size=32, classes=5)
    assert ds.images.shape == (200, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.labels is not None and torch.bincount(ds.labels).tolist() == [40] * 5
    info = ds.info
    assert (info.channels, info.image_size, info.num_classes, len(info.class_names)) == (3, 32, 5, 5)
    assert len(info.mean) == len(info.std) == 3
    # colour is nuisance: per-class mean colour does not identify the class
    means = torch.stack([ds.float_images()[ds.labels == c].mean(dim=(0, 2, 3)) for c in range(5)])
    assert (means.max(0).values - means.min(0).values).max() < 0.05
    with pytest.raises(ValueError, match="synthetic"):
        create_dataset("synthetic", "train", n=0)


def test_classes_are_separable_and_flip_invariant() -> None:
    ds = create_dataset("synthetic", "test", n=500)
    assert ds.labels is not None
    acc = (fourier_orientation_classifier(ds) == ds.labels).float().mean().item()
    assert acc > 0.85  # measured 0.944: the class is in the image
    flipped = ds.with_info()
    flipped.images = ds.images.flip(-1)
    acc_flip = (fourier_orientation_classifier(flipped) == ds.labels).float().mean().item()
    assert acc_flip > 0.85  # a horizontal flip (a contrastive augmentation) keeps the class
    shuffled = ds.labels[torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))]
    assert (fourier_orientation_classifier(ds) == shuffled).float().mean().item() < 0.2


@pytest.mark.slow
def test_random_init_cnn_small_does_not_solve_it() -> None:
    """A random-init ``cnn-small`` linear probe must be well above chance yet clearly below 100%."""
    from encoder_audit.evaluate import evaluate_encoder, random_init_baseline

    train = create_dataset("synthetic", "train", n=2000)
    test = create_dataset("synthetic", "test", n=500)
    result = evaluate_encoder(random_init_baseline("cnn-small", (1, 28, 28), seed=0), train, test)
    assert 0.4 < result["linear"] < 0.9, result
