"""View generators: the augmentation recipe of each method, as frozen configs with their sources.

A :class:`ViewGenerator` turns a batch of images in [0, 1] into one augmented view per image;
call it ``k`` times for ``k`` independent views. Presets carry each paper's published recipe,
scaled to the dataset's image size (crops are fractions of the image, blur kernels 10% of its side).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..config import override
from ..registry import Registry
from . import ops


@dataclass(frozen=True)
class ViewConfig:
    """One augmentation recipe.

    Attributes:
        crop_scale: area fraction range of the random resized crop; ``(1, 1)`` disables cropping.
        crop_ratio: aspect ratio range of the crop.
        flip_p: horizontal flip probability.
        jitter: (brightness, contrast, saturation, hue) strengths.
        jitter_p: probability of applying colour jitter.
        gray_p: probability of grayscale.
        blur_p: probability of Gaussian blur; ``blur_sigma`` its sigma range.
        blur_cover: size the blur kernel to cover 3 sigma (small images) instead of 10% of the side.
        solarize_p: probability of solarization.
    """

    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    gray_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_cover: bool = False
    solarize_p: float = 0.0

    def __post_init__(self) -> None:
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"crop_ratio must be increasing and positive, got {self.crop_ratio}")
        for name in ("flip_p", "jitter_p", "gray_p", "blur_p", "solarize_p"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {v}")
        if any(v < 0 for v in self.jitter) or self.jitter[3] > 0.5:
            raise ValueError(f"jitter strengths must be >= 0 and hue <= 0.5, got {self.jitter}")
        if not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"blur_sigma must be increasing and positive, got {self.blur_sigma}")


class ViewGenerator:
    """Applies a :class:`ViewConfig` to a batch, one independent draw per sample.

    Args:
        config: the recipe.
        size: output side length (defaults to the input's).

    Shape:
        input: (N, C, H, W) float in [0, 1]; output: (N, C, size, size) float in [0, 1].
    """

    def __init__(self, config: ViewConfig, size: int | None = None) -> None:
        self.config = config
        self.size = size

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        c = self.config
        size = self.size or x.shape[-1]
        if c.crop_scale != (1.0, 1.0) or c.flip_p > 0 or size != x.shape[-1]:
            x = ops.resized_crop_flip(
                x, size, scale=c.crop_scale, ratio=c.crop_ratio, flip_p=c.flip_p, generator=generator
            )
        if c.jitter_p > 0 and any(c.jitter):
            x = ops.color_jitter(x, *c.jitter, p=c.jitter_p, generator=generator)
        if c.gray_p > 0:
            x = ops.random_grayscale(x, c.gray_p, generator=generator)
        if c.blur_p > 0:
            x = ops.gaussian_blur(x, p=c.blur_p, sigma=c.blur_sigma, cover=c.blur_cover, generator=generator)
        if c.solarize_p > 0:
            x = ops.solarize(x, p=c.solarize_p, generator=generator)
        return x.clamp(0.0, 1.0)  # resampling and blur can overshoot [0, 1] by a rounding error

    def views(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """``k`` independent views of every image."""
        return [self(x, generator) for _ in range(k)]

    def __repr__(self) -> str:
        return f"ViewGenerator({self.config}, size={self.size})"


VIEWS: Registry[ViewConfig] = Registry("view recipe")


def register_views(name: str, config: ViewConfig, help: str) -> None:
    VIEWS.register(name, help=help)(lambda: config)


# SimCLR (Chen et al., 2020), CIFAR-10 recipe, App. B.9: "random crop and resize (with random flip),
# color distortion" with strength s=0.5 on CIFAR; we keep the common 0.4/0.4/0.4/0.1 at p=0.8 and
# grayscale p=0.2 of the reference implementations, and no blur for small images.
register_views("simclr", ViewConfig(), "SimCLR: crop 0.08-1, flip, jitter .4/.4/.4/.1 p=.8, gray .2")
# MoCo v1 (He et al., 2020): "a 224x224-pixel crop ... random color jittering, random horizontal flip,
# and random grayscale conversion"; crop scale (0.2, 1) in the official code, jitter 0.4 on all four.
register_views(
    "moco-v1",
    ViewConfig(crop_scale=(0.2, 1.0), jitter=(0.4, 0.4, 0.4, 0.4), jitter_p=1.0),
    "MoCo v1: crop 0.2-1, jitter .4 (all four, always), gray .2, flip",
)
# MoCo v2 (Chen et al., 2020b): adds blur and the SimCLR jitter to v1's recipe.
register_views(
    "moco-v2",
    ViewConfig(crop_scale=(0.2, 1.0), blur_p=0.5),
    "MoCo v2: crop 0.2-1, jitter .4/.4/.4/.1 p=.8, gray .2, blur p=.5, flip",
)
# RDA (Wu et al.), official code: prototype views use RandomResizedCrop(scale=(0.9, 0.9), ratio=(1, 1)),
# flip, ColorJitter(0.4, 0.4, 0.4, 0.2) p=0.8, grayscale 0.2, blur p=0.1, solarize p=0.1.
_RDA = ViewConfig(crop_scale=(0.9, 0.9), crop_ratio=(1.0, 1.0), jitter=(0.4, 0.4, 0.4, 0.2), blur_p=0.1, solarize_p=0.1)
register_views("rda-prototype", _RDA, "RDA prototype views: crop 0.9 (fixed), jitter, gray, blur .1, solarize .1")
# ... and training (surrogate-side) views the same chain with RandomResizedCrop(scale=(0.75, 0.75)).
register_views("rda-train", replace(_RDA, crop_scale=(0.75, 0.75)), "RDA surrogate views: as prototype, crop 0.75")
# EncoderMI (Liu et al., 2021): queries use the target's pre-training augmentations; the official
# code's CIFAR chain is RandomResizedCrop(32, scale 0.2-1), flip, ColorJitter(0.4,0.4,0.4,0.1) p=0.8,
# grayscale p=0.2.
register_views("encodermi", ViewConfig(crop_scale=(0.2, 1.0)), "EncoderMI queries: crop 0.2-1, flip, jitter, gray")
# StolenEncoder (Liu et al., 2022): surrogate-side only, no crop: HFlip(0.5),
# ColorJitter(0.4, 0.4, 0.4, 0.1) p=0.8, Grayscale(0.2).
register_views("stolenencoder", ViewConfig(crop_scale=(1.0, 1.0)), "StolenEncoder: flip, jitter, gray, no crop")
register_views(
    "none",
    ViewConfig(crop_scale=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, gray_p=0.0),
    "identity (no augmentation)",
)


def create_views(name: str, size: int | None = None, **overrides: object) -> ViewGenerator:
    """A :class:`ViewGenerator` for a named recipe, optionally with fields overridden.

    >>> gen = create_views("simclr", size=28)
    >>> gen(torch.rand(4, 1, 28, 28), torch.Generator().manual_seed(0)).shape
    torch.Size([4, 1, 28, 28])
    """
    config = VIEWS.create(name)
    if overrides:  # coerced to the fields' types (lists -> tuples, "0.5" -> 0.5); unknown keys -> ValueError
        config = override(config, overrides)
    return ViewGenerator(config, size=size)
