"""``cnn-small``: a four-layer convolutional encoder sized for CPU experiments on 28-32 px images.

A stride-2 stem (32 channels), a 64-channel layer, a stride-2 64-channel layer and a 128-channel
layer, each with batch norm and ReLU, then global average pooling to a 128-d feature vector
(about 0.15 M parameters). Putting the first stride in the stem halves the cost of a training step
against a full-resolution first stage, for a similar random-init and trained accuracy.
"""

from __future__ import annotations

from torch import nn

from .base import register_encoder


def _block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@register_encoder("cnn-small", help="4-layer CNN, 128-d, fast CPU default")
def cnn_small(in_channels: int, image_size: int, width: int = 32) -> tuple[nn.Module, int]:
    """4-layer CNN, 128-d, fast CPU default."""
    w = width
    net = nn.Sequential(
        *_block(in_channels, w, stride=2),
        *_block(w, 2 * w),
        *_block(2 * w, 2 * w, stride=2),
        *_block(2 * w, 4 * w),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return net, 4 * w
