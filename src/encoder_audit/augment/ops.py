"""Batched image augmentations on tensors, with independent randomness per sample.

Every op takes a float batch ``x`` of shape (N, C, H, W) in [0, 1] and a ``torch.Generator`` and
returns a new batch; parameters are drawn once per sample (so two calls give two independent views).
They run on whatever device ``x`` lives on, replacing per-image PIL transforms in loader workers.

Random numbers are drawn on the CPU generator and moved to ``x.device``, so a seed gives the same
views on CPU and GPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(n: int, lo: float, hi: float, g: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, generator=g) * (hi - lo) + lo).to(device)


def _bernoulli(n: int, p: float, g: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, generator=g) < p).to(device)


def _crop_fractions(
    n: int,
    aspect: float,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None,
    tries: int = 10,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Width and height of random crops as fractions of the image side, as torchvision samples them.

    ``RandomResizedCrop.get_params`` draws an area fraction ``s ~ U(scale)`` and an aspect ratio
    ``r ~ logU(ratio)`` up to 10 times and keeps the first box that fits inside the image; if none
    fits it falls back to the whole image (clamped to ``ratio``). Here the 10 tries are drawn at once
    for every sample. ``aspect`` is the image's width / height.
    """
    s = torch.rand(n, tries, generator=generator) * (scale[1] - scale[0]) + scale[0]
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    r = torch.exp(torch.rand(n, tries, generator=generator) * (log_hi - log_lo) + log_lo)
    w = torch.sqrt(s * r / aspect)
    h = torch.sqrt(s * aspect / r)
    fits = (w <= 1.0) & (h <= 1.0)
    first = fits.to(torch.int64).argmax(dim=1, keepdim=True)  # index of the first box that fits
    any_fit = fits.any(dim=1)
    if aspect < ratio[0]:
        fallback = (1.0, aspect / ratio[0])
    elif aspect > ratio[1]:
        fallback = (ratio[1] / aspect, 1.0)
    else:
        fallback = (1.0, 1.0)
    w = torch.where(any_fit, w.gather(1, first).squeeze(1), torch.tensor(fallback[0]))
    h = torch.where(any_fit, h.gather(1, first).squeeze(1), torch.tensor(fallback[1]))
    return w, h


def resized_crop_flip(
    x: torch.Tensor,
    size: int,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip_p: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random resized crop + horizontal flip in one bilinear resample per sample.

    The crop covers a fraction ``s ~ U(scale)`` of the image area with aspect ratio
    ``r ~ logU(ratio)`` at a uniformly random position, sampled as torchvision's
    ``RandomResizedCrop`` does (up to 10 tries for a box that fits, else the whole image), so
    ``scale=(1, 1)`` keeps the whole image. A flip negates the horizontal axis.

    Shape:
        x: (N, C, H, W) -> (N, C, size, size)
    """
    n, device = x.shape[0], x.device
    w, h = _crop_fractions(n, x.shape[-1] / x.shape[-2], scale, ratio, generator)
    w, h = w.to(device), h.to(device)
    cx = (_uniform(n, -1.0, 1.0, generator, device)) * (1 - w)
    cy = (_uniform(n, -1.0, 1.0, generator, device)) * (1 - h)
    flip = _bernoulli(n, flip_p, generator, device)
    sign = torch.where(flip, -1.0, 1.0).to(x.dtype)
    theta = torch.zeros(n, 2, 3, device=device, dtype=x.dtype)
    theta[:, 0, 0] = w * sign
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, keeping the channel count."""
    if x.shape[1] == 1:
        return x
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True).expand_as(x).contiguous()


def _rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    m = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=x.device, dtype=x.dtype
    )
    return torch.einsum("ij,njhw->nihw", m, x)


def _yiq_to_rgb(x: torch.Tensor) -> torch.Tensor:
    m = torch.tensor([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]], device=x.device, dtype=x.dtype)
    return torch.einsum("ij,njhw->nihw", m, x)


def color_jitter(
    x: torch.Tensor,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    *,
    p: float = 0.8,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-sample colour jitter, applied to each sample with probability ``p``.

    Factors are drawn as in torchvision's ``ColorJitter`` (brightness, contrast, saturation from
    ``U(1-v, 1+v)``, hue from ``U(-h, h)`` of a full turn) and applied in that fixed order. The hue
    shift is a rotation of the chroma plane in YIQ space, a close and cheap stand-in for the HSV shift.
    Saturation and hue do nothing to single-channel images.
    """
    n, device = x.shape[0], x.device
    apply = _bernoulli(n, p, generator, device).view(n, 1, 1, 1)
    bf = _uniform(n, max(0.0, 1 - brightness), 1 + brightness, generator, device).view(n, 1, 1, 1)
    cf = _uniform(n, max(0.0, 1 - contrast), 1 + contrast, generator, device).view(n, 1, 1, 1)
    sf = _uniform(n, max(0.0, 1 - saturation), 1 + saturation, generator, device).view(n, 1, 1, 1)
    hf = _uniform(n, -hue, hue, generator, device)
    y = (x * bf).clamp(0, 1)
    mean = grayscale(y).mean(dim=(1, 2, 3), keepdim=True)
    y = ((y - mean) * cf + mean).clamp(0, 1)
    if x.shape[1] == 3:
        gray = grayscale(y)
        y = ((y - gray) * sf + gray).clamp(0, 1)
        if hue > 0:
            yiq = _rgb_to_yiq(y)
            angle = hf * 2 * math.pi
            cos, sin = torch.cos(angle).view(n, 1, 1), torch.sin(angle).view(n, 1, 1)
            i, q = yiq[:, 1], yiq[:, 2]
            yiq = torch.stack([yiq[:, 0], i * cos - q * sin, i * sin + q * cos], dim=1)
            y = _yiq_to_rgb(yiq).clamp(0, 1)
    return torch.where(apply, y, x)


def random_grayscale(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Turn each sample to grayscale with probability ``p``."""
    if x.shape[1] == 1 or p <= 0:
        _bernoulli(x.shape[0], p, generator, x.device)  # keep the random stream aligned
        return x
    apply = _bernoulli(x.shape[0], p, generator, x.device).view(-1, 1, 1, 1)
    return torch.where(apply, grayscale(x), x)


def covering_kernel_side(sigma_max: float, image_side: int) -> int:
    """Odd kernel side ``2 * ceil(3 * sigma_max) + 1`` (99.7% of the Gaussian's mass), capped at the
    largest odd side <= the image's.

    >>> covering_kernel_side(2.0, 28), covering_kernel_side(2.0, 8), covering_kernel_side(0.1, 28)
    (13, 7, 3)
    """
    side = 2 * math.ceil(3 * sigma_max) + 1
    cap = image_side if image_side % 2 else image_side - 1
    return max(3, min(side, cap))


def gaussian_blur(
    x: torch.Tensor,
    *,
    p: float,
    sigma: tuple[float, float] = (0.1, 2.0),
    kernel_frac: float = 0.1,
    cover: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gaussian blur with per-sample ``sigma ~ U(sigma)``, applied with probability ``p``.

    The kernel side is about ``kernel_frac`` of the image side (odd, at least 3), as in SimCLR for
    224 px images; ``cover=True`` sizes it to cover 3 sigma instead (:func:`covering_kernel_side`),
    which small images need (10% of 28 px is 3 px, which cuts sigma = 2 off at half a sigma).
    """
    n, c, h, w = x.shape
    apply = _bernoulli(n, p, generator, x.device)
    sig = _uniform(n, sigma[0], sigma[1], generator, x.device)
    if p <= 0 or not bool(apply.any()):
        return x
    k = covering_kernel_side(sigma[1], h) if cover else max(3, round(kernel_frac * h) // 2 * 2 + 1)
    offs = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
    kern = torch.exp(-(offs[None] ** 2) / (2 * sig[:, None] ** 2))
    kern = kern / kern.sum(dim=1, keepdim=True)
    ident = torch.zeros_like(kern)
    ident[:, k // 2] = 1
    kern = torch.where(apply[:, None], kern, ident)
    kern = kern.repeat_interleave(c, dim=0)  # (N*C, k)
    y = x.reshape(1, n * c, h, w)
    y = F.pad(y, (k // 2, k // 2, 0, 0), mode="reflect" if w > k // 2 else "replicate")
    y = F.conv2d(y, kern.view(n * c, 1, 1, k), groups=n * c)
    y = F.pad(y, (0, 0, k // 2, k // 2), mode="reflect" if h > k // 2 else "replicate")
    y = F.conv2d(y, kern.view(n * c, 1, k, 1), groups=n * c)
    return y.view(n, c, h, w)


def solarize(
    x: torch.Tensor, *, p: float, threshold: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Invert pixels at or above ``threshold``, per sample with probability ``p``."""
    apply = _bernoulli(x.shape[0], p, generator, x.device).view(-1, 1, 1, 1)
    if p <= 0:
        return x
    return torch.where(apply & (x >= threshold), 1.0 - x, x)
