"""Encoder networks: a backbone behind its own input normalization, and the encoder registry.

Every encoder built here is an :class:`EncoderNet`: it takes images in [0, 1] of its own input
shape, normalizes them with the mean/std it was trained with, and returns a flat feature vector.
Keeping normalization inside the network is what lets an attack treat any victim as a black box
that eats [0, 1] pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..registry import Registry

__all__ = ["ENCODERS", "EncoderNet", "create_encoder", "register_encoder"]


class EncoderNet(nn.Module):
    """A backbone with its input normalization and the facts a checkpoint needs.

    Args:
        backbone: module mapping normalized (N, C, H, W) to (N, D).
        arch: registry name of the backbone (``torchvision:NAME`` etc. for an external one, see
            :mod:`.external`).
        in_channels: C.
        image_size: H the encoder expects (and W, unless ``image_width`` is given).
        feature_dim: D.
        mean: per-channel mean used for normalization.
        std: per-channel standard deviation.
        image_width: W when it differs from H (external backbones only; the built-in ones are square).

    Shape:
        input: (N, C, H, W) float in [0, 1]; output: (N, D).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        backbone: nn.Module,
        *,
        arch: str,
        in_channels: int,
        image_size: int,
        feature_dim: int,
        mean: Sequence[float],
        std: Sequence[float],
        image_width: int | None = None,
    ) -> None:
        super().__init__()
        if len(mean) == 1 and in_channels > 1:
            mean, std = tuple(mean) * in_channels, tuple(std) * in_channels
        if len(mean) != in_channels or len(std) != in_channels:
            raise ValueError(f"mean/std need {in_channels} values, got {len(mean)}/{len(std)}")
        self.backbone = backbone
        self.arch = arch
        self.in_channels = in_channels
        self.image_size = image_size
        self.image_width = image_size if image_width is None else image_width
        self.feature_dim = feature_dim
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_width)

    def normalization(self) -> dict[str, list[float]]:
        return {"mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone((x - self.mean) / self.std)


ENCODERS: Registry[tuple[nn.Module, int]] = Registry("encoder")
register_encoder = ENCODERS.register


def create_encoder(
    name: str,
    in_channels: int = 3,
    image_size: int = 32,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    image_width: int | None = None,
    **kwargs: object,
) -> EncoderNet:
    """Build a randomly initialised encoder by name.

    Args:
        name: ``cnn-small``, ``resnet18``, ``resnet34``, ``resnet50``, ``vgg11`` (see ``ENCODERS``), or
            an external architecture ``torchvision:NAME`` / ``timm:NAME`` (optionally ``@LAYER``: the
            features are taken at that submodule), built with its classifier head removed (see
            :func:`encoder_audit.models.external.create_external`).
        in_channels: input channels.
        image_size: input side length (the height, for an external architecture).
        mean: normalization mean per channel (default 0.5; an external architecture's own
            statistics, e.g. ImageNet's for torchvision).
        std: normalization std per channel (default 0.5; idem).
        image_width: input width of an external architecture (default: ``image_size``).

    >>> enc = create_encoder("cnn-small", in_channels=1, image_size=28)
    >>> enc(torch.rand(2, 1, 28, 28)).shape
    torch.Size([2, 128])
    """
    if ":" in name:
        from .external import create_external

        return create_external(
            name, in_channels=in_channels, image_size=image_size, image_width=image_width, mean=mean, std=std
        )
    if image_width is not None and image_width != image_size:
        raise ValueError(f"encoder {name!r} takes square images; got {image_size}x{image_width}")
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8, got {image_size}")
    backbone, dim = ENCODERS.create(name, in_channels=in_channels, image_size=image_size, **kwargs)
    return EncoderNet(
        backbone,
        arch=name,
        in_channels=in_channels,
        image_size=image_size,
        feature_dim=dim,
        mean=tuple(mean) if mean is not None else (0.5,) * in_channels,
        std=tuple(std) if std is not None else (0.5,) * in_channels,
    )
