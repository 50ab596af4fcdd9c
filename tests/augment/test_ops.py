"""Semantics of the batched augmentation ops on hand-built inputs, and their random draws."""

from __future__ import annotations

import pytest
import torch

from encoder_audit.augment import ops

LUMA = torch.tensor([0.299, 0.587, 0.114])


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def colourful(n: int = 8, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=gen(seed))


# --- resized crop + flip -------------------------------------------------------------------------


def test_crop_full_scale_without_flip_is_identity() -> None:
    x = colourful()
    for ratio in [(1.0, 1.0), (3 / 4, 4 / 3)]:  # a box of another aspect never fits at scale 1: whole image
        y = ops.resized_crop_flip(x, 16, scale=(1.0, 1.0), ratio=ratio, flip_p=0.0, generator=gen())
        torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_flip_mirrors_horizontally() -> None:
    x = colourful()
    y = ops.resized_crop_flip(x, 16, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=1.0, generator=gen())
    torch.testing.assert_close(y, x.flip(-1), atol=1e-5, rtol=0)
    assert not torch.allclose(y, x, atol=1e-2)


def test_crop_of_quarter_area_halves_the_field_of_view() -> None:
    # a horizontal ramp 0..1: a crop covering 1/4 of the area (ratio 1) spans half the width,
    # so the resampled ramp is half as steep, wherever the crop lies
    size = 32
    ramp = torch.linspace(0, 1, size).expand(64, 1, size, size).contiguous()
    y = ops.resized_crop_flip(ramp, size, scale=(0.25, 0.25), ratio=(1.0, 1.0), flip_p=0.0, generator=gen())
    span = y[..., -1] - y[..., 0]  # (N, 1, H)
    torch.testing.assert_close(span, torch.full_like(span, 0.5 * (size - 1) / size), atol=0.02, rtol=0)
    # and the crops lie at different places in different samples
    assert y[:, 0, 0, 0].std() > 0.05


def test_crop_resizes_to_requested_size() -> None:
    y = ops.resized_crop_flip(colourful(4, 28), 20, generator=gen())
    assert y.shape == (4, 3, 20, 20)
    assert y.min() >= 0 and y.max() <= 1


def test_crop_boxes_fit_and_follow_scale() -> None:
    w, h = ops._crop_fractions(5000, 1.0, (0.08, 1.0), (3 / 4, 4 / 3), gen())
    assert bool(((w > 0) & (w <= 1) & (h > 0) & (h <= 1)).all())
    area = w * h
    assert area.min() >= 0.08 - 1e-6
    ratio = w / h
    assert ratio.min() >= 3 / 4 - 1e-5 and ratio.max() <= 4 / 3 + 1e-5


def test_flip_probability_is_respected() -> None:
    x = torch.zeros(2000, 1, 8, 8)
    x[..., :4] = 1.0  # left half white: a flip moves it to the right
    y = ops.resized_crop_flip(x, 8, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.5, generator=gen())
    flipped = (y[:, 0, :, 0] < 0.5).all(dim=1).float().mean().item()
    assert abs(flipped - 0.5) < 0.05


# --- grayscale ------------------------------------------------------------------------------------


def test_grayscale_uses_itu601_weights_and_equal_channels() -> None:
    x = torch.zeros(1, 3, 2, 2)
    x[0, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0])
    x[0, :, 0, 1] = torch.tensor([0.0, 1.0, 0.0])
    x[0, :, 1, 0] = torch.tensor([0.0, 0.0, 1.0])
    x[0, :, 1, 1] = torch.tensor([0.2, 0.4, 0.6])
    y = ops.grayscale(x)
    assert y.shape == x.shape
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])
    expected = torch.tensor([[0.299, 0.587], [0.114, 0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6]])
    torch.testing.assert_close(y[0, 0], expected)


def test_grayscale_keeps_single_channel_images() -> None:
    x = torch.rand(3, 1, 5, 5)
    assert torch.equal(ops.grayscale(x), x)
    assert torch.equal(ops.random_grayscale(x, 1.0, generator=gen()), x)


def test_random_grayscale_probability() -> None:
    x = colourful(2000, 4)
    y = ops.random_grayscale(x, 0.2, generator=gen())
    gray = (y[:, 0] == y[:, 1]).all(dim=(1, 2)) & (y[:, 1] == y[:, 2]).all(dim=(1, 2))
    assert abs(gray.float().mean().item() - 0.2) < 0.05
    torch.testing.assert_close(y[~gray], x[~gray], atol=0, rtol=0)
    torch.testing.assert_close(y[gray], ops.grayscale(x[gray]))


# --- solarize -------------------------------------------------------------------------------------


def test_solarize_inverts_at_or_above_threshold() -> None:
    x = torch.tensor([0.0, 0.2, 0.49, 0.5, 0.7, 1.0]).view(1, 1, 1, 6)
    y = ops.solarize(x, p=1.0, threshold=0.5, generator=gen())
    torch.testing.assert_close(y.flatten(), torch.tensor([0.0, 0.2, 0.49, 0.5, 0.3, 0.0]))
    assert torch.equal(ops.solarize(x, p=0.0, generator=gen()), x)


def test_solarize_probability() -> None:
    x = torch.full((2000, 1, 2, 2), 0.9)
    y = ops.solarize(x, p=0.1, generator=gen())
    rate = (y[:, 0, 0, 0] < 0.5).float().mean().item()
    assert abs(rate - 0.1) < 0.05


# --- blur -----------------------------------------------------------------------------------------


def test_blur_preserves_constant_image_and_reduces_variance() -> None:
    const = torch.full((4, 3, 16, 16), 0.37)
    torch.testing.assert_close(ops.gaussian_blur(const, p=1.0, generator=gen()), const)
    noise = colourful(16, 32)
    y = ops.gaussian_blur(noise, p=1.0, sigma=(1.0, 2.0), generator=gen())
    assert y.shape == noise.shape
    assert bool((y.var(dim=(2, 3)) < 0.6 * noise.var(dim=(2, 3))).all())
    torch.testing.assert_close(y.mean(dim=(2, 3)), noise.mean(dim=(2, 3)), atol=0.02, rtol=0)
    assert y.min() >= 0 and y.max() <= 1


def test_blur_with_p_zero_is_identity_and_p_is_respected() -> None:
    x = colourful(2000, 8)
    assert torch.equal(ops.gaussian_blur(x, p=0.0, generator=gen()), x)
    y = ops.gaussian_blur(x, p=0.5, sigma=(1.0, 2.0), generator=gen())
    changed = (y - x).abs().amax(dim=(1, 2, 3)) > 1e-4
    assert abs(changed.float().mean().item() - 0.5) < 0.05
    torch.testing.assert_close(y[~changed], x[~changed], atol=1e-5, rtol=0)


# --- colour jitter --------------------------------------------------------------------------------


def test_jitter_with_p_zero_is_identity() -> None:
    x = colourful()
    assert torch.equal(ops.color_jitter(x, 0.4, 0.4, 0.4, 0.1, p=0.0, generator=gen()), x)


def test_brightness_scales_each_sample_by_one_factor() -> None:
    x = torch.rand(64, 3, 8, 8, generator=gen(1)) * 0.5 + 0.1  # stays unclipped for factors <= 1.4
    y = ops.color_jitter(x, 0.4, 0.0, 0.0, 0.0, p=1.0, generator=gen())
    factor = y / x
    per_sample = factor.flatten(1)
    torch.testing.assert_close(per_sample, per_sample[:, :1].expand_as(per_sample), atol=1e-5, rtol=0)
    f = per_sample[:, 0]
    assert f.min() >= 0.6 - 1e-5 and f.max() <= 1.4 + 1e-5 and f.std() > 0.1


def test_contrast_keeps_mean_luma() -> None:
    x = torch.rand(32, 3, 8, 8, generator=gen(2)) * 0.4 + 0.3
    y = ops.color_jitter(x, 0.0, 0.4, 0.0, 0.0, p=1.0, generator=gen())
    luma = lambda t: (t * LUMA.view(1, 3, 1, 1)).sum(1).mean(dim=(1, 2))  # noqa: E731
    torch.testing.assert_close(luma(y), luma(x), atol=1e-5, rtol=0)
    assert not torch.allclose(y, x, atol=1e-3)


def test_hue_rotation_keeps_luma_and_changes_colour() -> None:
    x = torch.rand(32, 3, 8, 8, generator=gen(3)) * 0.3 + 0.35  # mid-range: no clipping after rotation
    y = ops.color_jitter(x, 0.0, 0.0, 0.0, 0.5, p=1.0, generator=gen())
    luma_x = (x * LUMA.view(1, 3, 1, 1)).sum(1)
    luma_y = (y * LUMA.view(1, 3, 1, 1)).sum(1)
    torch.testing.assert_close(luma_y, luma_x, atol=5e-3, rtol=0)
    assert (y - x).abs().mean() > 0.01


def test_saturation_scales_chroma_and_ignores_single_channel() -> None:
    x = torch.rand(64, 3, 4, 4, generator=gen(4)) * 0.2 + 0.4  # chroma small enough for factors up to 2
    y = ops.color_jitter(x, 0.0, 0.0, 1.0, 0.0, p=1.0, generator=gen())
    chroma_x, chroma_y = x - ops.grayscale(x), y - ops.grayscale(y)
    factor = (chroma_y * chroma_x).flatten(1).sum(1) / chroma_x.flatten(1).pow(2).sum(1)
    torch.testing.assert_close(chroma_y, factor.view(-1, 1, 1, 1) * chroma_x, atol=1e-5, rtol=0)
    assert factor.min() >= 0 and factor.max() <= 2 and factor.std() > 0.3  # U(0, 2)
    torch.testing.assert_close(ops.grayscale(y), ops.grayscale(x), atol=1e-5, rtol=0)
    gray1 = torch.rand(8, 1, 6, 6)
    out = ops.color_jitter(gray1, 0.0, 0.0, 0.4, 0.5, p=1.0, generator=gen())
    torch.testing.assert_close(out, gray1, atol=1e-6, rtol=0)  # saturation and hue do nothing to one channel


def test_jitter_probability() -> None:
    x = colourful(2000, 4)
    y = ops.color_jitter(x, 0.4, 0.4, 0.4, 0.1, p=0.8, generator=gen())
    changed = (y - x).abs().amax(dim=(1, 2, 3)) > 1e-6
    assert abs(changed.float().mean().item() - 0.8) < 0.05


# --- generic properties ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "op",
    [
        lambda x, g: ops.resized_crop_flip(x, 12, generator=g),
        lambda x, g: ops.color_jitter(x, 0.8, 0.8, 0.8, 0.5, p=1.0, generator=g),
        lambda x, g: ops.random_grayscale(x, 0.5, generator=g),
        lambda x, g: ops.gaussian_blur(x, p=1.0, generator=g),
        lambda x, g: ops.solarize(x, p=1.0, generator=g),
    ],
    ids=["crop", "jitter", "gray", "blur", "solarize"],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_ops_keep_range_and_reproduce_with_seed(op, channels: int) -> None:  # type: ignore[no-untyped-def]
    x = torch.rand(6, channels, 12, 12, generator=gen(5))
    a, b = op(x, gen(7)), op(x, gen(7))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
