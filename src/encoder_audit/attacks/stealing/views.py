"""View recipes of the stealing attacks: RDA's chain with a blur kernel that covers its sigma, and a
recipe for 1-channel images whose prototype views differ from one another.

**Blur.** RDA's views blur with ``GaussianBlur(sigma)``, sigma ~ U(0.1, 2.0), p = 0.1 (official
``GBlur``); PIL sizes that kernel from sigma. The shared augmentation ops size the kernel at 10% of the
image side (SimCLR's rule for 224 px images), which is 3 px on a 28 px image: sigma = 2 is then cut
off at 0.5 sigma and the blur is nearly a box filter. Every recipe here blurs with a kernel of side
``2 * ceil(3 * sigma_max) + 1`` (capped at the image side), which holds 99.7% of the Gaussian's mass.

**1-channel images.** On a grayscale image RDA's saturation, hue and grayscale steps do nothing, and
a victim pre-trained for invariance to crops and jitter answers RDA's fixed 0.9-area crops almost
identically: on the quick Fashion-MNIST victim (500 test images, P = 10) the prototype's median norm
is 0.990 and its median cosine to the clean query's embedding 0.991, so ten views carry almost
nothing beyond one query. Smaller fixed crops barely change that (0.75: 0.988 / 0.987; 0.5: 0.980 /
0.973). The ``rda-gray-*`` recipes replace the colour steps by what a grayscale image can vary: a
random crop of 0.2-0.5 of the area with aspect ratio 3/4-4/3 (position and scale both vary), flip,
brightness and contrast 0.8 (always), blur p = 0.5 with sigma U(0.1, 1.5), solarize p = 0.1. On the
same victim P = 10 views give a median prototype norm of 0.929 and a median cosine to the clean query
of 0.950 (docs/benchmarks/stealing.md, "Prototype views"). The surrogate-side ``rda-gray-train``
uses the same chain. These are our recipes, not the paper's; whether the extra information helps
the copy is measured there, not assumed.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from ...augment import ops
from ...augment.views import VIEWS, ViewConfig, ViewGenerator

__all__ = ["GRAY_RECIPES", "CoveringBlurViews", "blur_kernel_side", "stealing_views"]


def blur_kernel_side(sigma_max: float, image_side: int) -> int:
    """Odd kernel side ``2 * ceil(3 * sigma_max) + 1``, capped at the largest odd side <= the image's.

    >>> blur_kernel_side(2.0, 28), blur_kernel_side(2.0, 8), blur_kernel_side(0.1, 28)
    (13, 7, 3)
    """
    side = 2 * math.ceil(3 * sigma_max) + 1
    cap = image_side if image_side % 2 else image_side - 1
    return max(3, min(side, cap))


class CoveringBlurViews(ViewGenerator):
    """A :class:`~encoder_audit.augment.views.ViewGenerator` whose Gaussian blur kernel covers 3 sigma.

    The same chain and random stream as the shared generator (crop+flip, jitter, grayscale, blur,
    solarize); only the blur kernel side differs (:func:`blur_kernel_side`).
    """

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
            side = blur_kernel_side(c.blur_sigma[1], x.shape[-2])
            # ops.gaussian_blur sizes its kernel as round(frac * h) // 2 * 2 + 1
            x = ops.gaussian_blur(
                x, p=c.blur_p, sigma=c.blur_sigma, kernel_frac=(side - 1) / x.shape[-2], generator=generator
            )
        if c.solarize_p > 0:
            x = ops.solarize(x, p=c.solarize_p, generator=generator)
        return x


_GRAY = ViewConfig(
    crop_scale=(0.2, 0.5),
    crop_ratio=(3 / 4, 4 / 3),
    flip_p=0.5,
    jitter=(0.8, 0.8, 0.0, 0.0),
    jitter_p=1.0,
    gray_p=0.0,
    blur_p=0.5,
    blur_sigma=(0.1, 1.5),
    solarize_p=0.1,
)
GRAY_RECIPES: dict[str, ViewConfig] = {
    "rda-gray-prototype": _GRAY,
    "rda-gray-train": _GRAY,
}


def stealing_views(
    name: str, size: int | None = None, *, crop_scale: tuple[float, float] | None = None, **overrides: object
) -> CoveringBlurViews:
    """The view generator of recipe ``name``: one of :data:`GRAY_RECIPES` or a shared recipe
    (``rda-prototype``, ``rda-train``, ``stolenencoder``, ``none``, ...), blurred with a covering kernel.

    ``crop_scale`` (an ablation of the crop) and ``overrides`` replace fields of the recipe.

    Raises:
        UnknownNameError: no such recipe.
    """
    config = GRAY_RECIPES[name] if name in GRAY_RECIPES else VIEWS.create(name)
    if crop_scale is not None:
        overrides = {**overrides, "crop_scale": crop_scale}
    if overrides:
        config = replace(config, **overrides)  # type: ignore[arg-type]
    return CoveringBlurViews(config, size=size)
