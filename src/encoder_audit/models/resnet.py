"""ResNets with the CIFAR stem, as used by SimCLR, BadEncoder, EncoderMI and RDA for 32 px images.

The stem is a 3x3 stride-1 convolution with no max-pool (SimCLR, App. B.9: "we replace the first 7x7
Conv of stride 2 with 3x3 Conv of stride 1, and also remove the first max pooling operation").
The classifier is removed: the output is the pooled feature (512-d for ResNet-18/34, 2048-d for
ResNet-50). Images of 64 px or more keep torchvision's ImageNet stem.
"""

from __future__ import annotations

import torchvision
from torch import nn

from .base import register_encoder


def _resnet(factory: str, in_channels: int, image_size: int) -> tuple[nn.Module, int]:
    net = getattr(torchvision.models, factory)(weights=None)
    if image_size < 64:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


@register_encoder("resnet18", help="ResNet-18, CIFAR stem, 512-d (paper scale)")
def resnet18(in_channels: int, image_size: int) -> tuple[nn.Module, int]:
    """ResNet-18, CIFAR stem, 512-d (paper scale)."""
    return _resnet("resnet18", in_channels, image_size)


@register_encoder("resnet34", help="ResNet-34, CIFAR stem, 512-d")
def resnet34(in_channels: int, image_size: int) -> tuple[nn.Module, int]:
    """ResNet-34, CIFAR stem, 512-d."""
    return _resnet("resnet34", in_channels, image_size)


@register_encoder("resnet50", help="ResNet-50, CIFAR stem, 2048-d")
def resnet50(in_channels: int, image_size: int) -> tuple[nn.Module, int]:
    """ResNet-50, CIFAR stem, 2048-d."""
    return _resnet("resnet50", in_channels, image_size)
