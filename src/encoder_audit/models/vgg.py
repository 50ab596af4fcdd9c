"""``vgg11`` with batch norm, EncoderMI's alternative shadow architecture (Liu et al., 2021, Sec. 5.1:
shadow encoders use "VGG-11" when the attacker does not know the target's architecture).

For small inputs the last max-pools are dropped so the spatial size never falls below 1, and the
convolutional features are globally average-pooled to a 512-d vector (no classifier).
"""

from __future__ import annotations

from torch import nn

from .base import register_encoder

_CFG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


@register_encoder("vgg11", help="VGG-11 with batch norm, 512-d (EncoderMI shadow architecture)")
def vgg11(in_channels: int, image_size: int) -> tuple[nn.Module, int]:
    """VGG-11 with batch norm, 512-d (EncoderMI shadow architecture)."""
    layers: list[nn.Module] = []
    c, size = in_channels, image_size
    for v in _CFG:
        if v == "M":
            if size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            continue
        assert isinstance(v, int)
        layers += [nn.Conv2d(c, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
        c = v
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), 512
