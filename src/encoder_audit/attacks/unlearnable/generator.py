"""The image-to-image ResNet generator that produces one bounded perturbation per cluster.

Unlearnable Clusters (Zhang et al., CVPR 2023) trains, for each cluster ``i``, a generator ``G_i`` on a
fixed noise input ``sigma_i ~ U(0, 1)`` and uses ``delta_i = G_i(sigma_i)`` bounded by ``eps``. The
official code uses the ResNet generator of Naseer et al. (reflection-padded 7x7 stem, two stride-2
downsamplings, 6 residual blocks, two upsamplings, 7x7 head, tanh; ngf = 64, batch norm).

Bounding: the official code clamps ``G(sigma)`` to ``[-eps, eps]``; we scale instead,
``delta = eps * tanh(.)``, which is bounded by construction and keeps gradients where a clamp would
zero them (an L2 budget rescales the output onto the ball when it leaves it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Norm, project

__all__ = ["PerturbationGenerator", "ResnetGenerator"]


class _ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3, bias=False),
            nn.BatchNorm2d(ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """ResNet image-to-image generator (tanh output in [-1, 1]).

    Args:
        channels: input and output channels.
        ngf: width of the first layer (official 64).
        n_blocks: residual blocks at the bottleneck (official 6).

    Shape:
        input: (N, C, H, W) with H, W multiples of 4; output: (N, C, H, W) in [-1, 1].
    """

    def __init__(self, channels: int, ngf: int = 64, n_blocks: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(channels, ngf, 7, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(inplace=True),
        ]
        for mult in (1, 2):
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(ngf * mult * 2),
                nn.ReLU(inplace=True),
            ]
        layers += [_ResBlock(ngf * 4) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=False),
                nn.BatchNorm2d(ngf * mult // 2),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PerturbationGenerator(nn.Module):
    """``delta = bound(G(sigma))`` for a fixed seeded input ``sigma``: one cluster's perturbation.

    Args:
        shape: (C, H, W) of the perturbation.
        eps: budget in [0, 1] pixel units.
        norm: ``linf`` (``eps * tanh``) or ``l2`` (tanh output rescaled onto the ``eps`` ball if outside).
        ngf: generator width.
        n_blocks: residual blocks.
        generator: seeds ``sigma``.

    Shape:
        forward: () -> (1, C, H, W) with ``||delta|| <= eps``.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        eps: float,
        norm: Norm = "linf",
        *,
        ngf: int = 64,
        n_blocks: int = 6,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        c, h, w = shape
        self.shape = (c, h, w)
        self.eps = eps
        self.norm = norm
        ph, pw = -(-h // 4) * 4, -(-w // 4) * 4  # the generator halves twice
        self.register_buffer("sigma", torch.rand(1, c, ph, pw, generator=generator))
        self.g = ResnetGenerator(c, ngf, n_blocks)

    def forward(self) -> torch.Tensor:
        _, h, w = self.shape
        out = self.g(self.sigma)[:, :, :h, :w]
        if self.norm == "linf":
            return self.eps * out
        return project(out, self.eps, "l2")


def resize_perturbation(delta: torch.Tensor, height: int, width: int, channels: int) -> torch.Tensor:
    """Fit a (K, C, h, w) perturbation to (K, channels, height, width) for images of another size.

    Nearest-neighbour resizing, as the official ``resize_type: noise`` mode (``F.interpolate`` default),
    keeps every value, so an L-inf budget is unchanged. A 1-channel perturbation is repeated on RGB
    images; a 3-channel one is averaged onto grayscale images. (An L2 budget is re-projected by
    :func:`~encoder_audit.attacks.unlearnable.base.apply_perturbation`.)
    """
    d = delta
    if d.shape[-2:] != (height, width):
        d = F.interpolate(d, size=(height, width), mode="nearest")
    if d.shape[1] != channels:
        if d.shape[1] == 1:
            d = d.expand(-1, channels, -1, -1)
        elif channels == 1:
            d = d.mean(dim=1, keepdim=True)
        else:
            raise ValueError(f"cannot map a {d.shape[1]}-channel perturbation to {channels} channels")
    return d
