"""How visible is a protection? L-inf, L2, PSNR and SSIM of protected images, measured on written PNG files.

Budgets are promises about the *published* files, so :func:`png_roundtrip` writes every protected image
as an 8-bit PNG (lossless), reads it back, and :func:`perceptibility` measures the decoded pixels against
the originals. SSIM follows Wang et al. (IEEE TIP 2004): 11x11 Gaussian window, sigma 1.5,
``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2`` with ``L = 255``, valid region only, averaged over channels and
images (the window shrinks to the image side for images smaller than 11 px).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...data.base import ImageDataset

__all__ = ["perceptibility", "png_roundtrip", "read_png", "save_png_atomic", "ssim", "write_png"]


def write_png(path: str | Path, image: torch.Tensor) -> None:
    """Write one (C, H, W) uint8 image as an 8-bit grayscale/RGB PNG (not atomic: use for temp files)."""
    from PIL import Image

    arr = image.permute(1, 2, 0).numpy()
    Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(path, format="PNG")


def save_png_atomic(path: str | Path, image: torch.Tensor) -> Path:
    """Write one (C, H, W) uint8 image as PNG atomically (temporary file + rename)."""
    from ...io import atomic_write

    def write(tmp: Path) -> None:
        from PIL import Image

        arr = image.permute(1, 2, 0).numpy()
        Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(tmp, format="PNG")

    return atomic_write(path, write)


def read_png(path: str | Path, channels: int) -> torch.Tensor:
    """Read a PNG back as (C, H, W) uint8."""
    from PIL import Image

    with Image.open(path) as img:
        arr = np.asarray(img.convert("L" if channels == 1 else "RGB"))
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def png_roundtrip(images: torch.Tensor) -> torch.Tensor:
    """Write each (N, C, H, W) uint8 image to a PNG file and read it back."""
    out = torch.empty_like(images)
    with tempfile.TemporaryDirectory(prefix="ea-png-") as tmp:
        for i in range(len(images)):
            p = Path(tmp) / f"{i}.png"
            write_png(p, images[i])
            out[i] = read_png(p, images.shape[1])
    return out


def _gaussian_window(size: int, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of two (N, C, H, W) uint8 batches (mean over channels and valid windows)."""
    n, c, h, w = a.shape
    size = min(11, h, w)
    size -= 1 - size % 2
    win = _gaussian_window(size).to(torch.float64)
    x = a.double().reshape(n * c, 1, h, w)
    y = b.double().reshape(n * c, 1, h, w)
    mx, my = F.conv2d(x, win), F.conv2d(y, win)
    sxx = F.conv2d(x * x, win) - mx**2
    syy = F.conv2d(y * y, win) - my**2
    sxy = F.conv2d(x * y, win) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return s.view(n, c, -1).mean(dim=(1, 2)).float()


def perceptibility(
    clean: ImageDataset | torch.Tensor, protected: ImageDataset | torch.Tensor, *, roundtrip: bool = True
) -> dict[str, Any]:
    """Distortion of protected images vs the clean ones, after writing them as PNG (``roundtrip``).

    Returns:
        ``linf`` (max over images, in 1/255 grey levels and [0, 1] units), ``l2`` (mean and max per-image
        norm in [0, 1] units), ``psnr_db`` (mean), ``ssim`` (mean, min) and ``images``.
    """
    a = clean.images if isinstance(clean, ImageDataset) else clean
    b = protected.images if isinstance(protected, ImageDataset) else protected
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if roundtrip:
        b = png_roundtrip(b)
    d = (b.double() - a.double()) / 255.0
    linf = float(d.abs().max())
    l2 = d.flatten(1).norm(dim=1)
    mse = d.flatten(1).pow(2).mean(dim=1)
    psnr = torch.where(mse > 0, 10 * torch.log10(1.0 / mse.clamp_min(1e-20)), torch.full_like(mse, math.inf))
    s = ssim(a, b)
    finite = psnr[torch.isfinite(psnr)]
    return {
        "images": int(a.shape[0]),
        "linf_levels": round(linf * 255),
        "linf": round(linf, 5),
        "l2_mean": round(float(l2.mean()), 4),
        "l2_max": round(float(l2.max()), 4),
        "psnr_db": round(float(finite.mean()), 2) if len(finite) else math.inf,
        "ssim_mean": round(float(s.mean()), 4),
        "ssim_min": round(float(s.min()), 4),
        "png_roundtrip": roundtrip,
    }
