"""View recipes of the stealing attacks: RDA's chain with a blur kernel that covers its sigma, and a
recipe for 1-channel images whose prototype views differ from one another.

**Blur.** RDA's views blur with ``GaussianBlur(sigma)``, sigma ~ U(0.1, 2.0), p = 0.1 (official
``GBlur``); PIL sizes that kernel from sigma. The shared augmentation ops size the kernel at 10% of the
image side (SimCLR's rule for 224 px images), which is 3 px on a 28 px image: sigma = 2 is then cut
off at 0.5 sigma and the blur is nearly a box filter. Every recipe here blurs with a kernel of side
``2 * ceil(3 * sigma_max) + 1`` (capped at the image side), which holds 99.7% of the Gaussian's mass
(``ViewConfig.blur_cover``, ``encoder_audit.augment.ops.covering_kernel_side``).

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

from dataclasses import replace

from ...augment.views import VIEWS, ViewConfig, ViewGenerator

__all__ = ["GRAY_RECIPES", "stealing_views"]


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
) -> ViewGenerator:
    """The view generator of recipe ``name``: one of :data:`GRAY_RECIPES` or a shared recipe
    (``rda-prototype``, ``rda-train``, ``stolenencoder``, ``none``, ...), blurred with a covering kernel.

    ``crop_scale`` (an ablation of the crop) and ``overrides`` replace fields of the recipe.

    Raises:
        UnknownNameError: no such recipe.
    """
    config = GRAY_RECIPES[name] if name in GRAY_RECIPES else VIEWS.create(name)
    if crop_scale is not None:
        overrides = {**overrides, "crop_scale": crop_scale}
    config = replace(config, blur_cover=True, **overrides)  # type: ignore[arg-type]
    return ViewGenerator(config, size=size)
