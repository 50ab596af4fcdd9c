"""``vgg11`` with batch norm, EncoderMI's alternative shadow architecture (Liu et al., 2021, Sec. 5.1:
shadow encoders use "VGG-11" when the attacker does not know the target's architecture).

For small inputs the last max-pools are dropped so the spatial size never falls below 1, and the
convolutional features are globally average-pooled to a 512-d vector (no classifier).

``vgg11-small`` is the same eight-convolution layout at a quarter of the width (16-128 channels,
128-d): the CPU-sized stand-in for VGG-11 beside ``cnn-small`` (the CPU-sized stand-in for
ResNet-18), so the "architecture unknown" shadow of a ``cnn-small`` target trains in about the
target's time (the full VGG-11 takes 8-25x longer on a CPU core at 28 px).
"""

from __future__ import annotations

from torch import nn

from .base import register_encoder

_CFG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


@register_encoder("vgg11", help="VGG-11 with batch norm, 512-d (EncoderMI shadow architecture)")
def vgg11(in_channels: int, image_size: int, width: int = 64) -> tuple[nn.Module, int]:
    """VGG-11 with batch norm, 512-d (EncoderMI shadow architecture); ``width`` scales every layer."""
    return _vgg(in_channels, image_size, width / 64)


@register_encoder("vgg11-small", help="VGG-11 layout at 1/4 width, 128-d (CPU-sized alternative shadow)")
def vgg11_small(in_channels: int, image_size: int) -> tuple[nn.Module, int]:
    """VGG-11 layout at a quarter of the width, 128-d (the CPU-sized alternative to ``cnn-small``)."""
    return _vgg(in_channels, image_size, 0.25)


def _vgg(in_channels: int, image_size: int, scale: float) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = []
    c, size = in_channels, image_size
    for v in _CFG:
        if isinstance(v, str):  # "M": max-pool while the map is at least 2x2
            if size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            continue
        width = max(1, int(v * scale))
        layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        c = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), c
