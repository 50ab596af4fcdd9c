"""The objective interface the training loop drives, and its registry.

An objective is an ``nn.Module`` that owns the encoder being trained (``.encoder``), any heads, and
its augmentation recipe. ``forward(images, labels, generator)`` returns the loss of one batch;
``after_step()`` runs after each optimizer step (e.g. MoCo's momentum update).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models.base import EncoderNet
from ..registry import Registry


class Objective(nn.Module):
    """Base class of training objectives.

    Attributes:
        encoder: the network whose weights are the product of training.
        views_per_image: augmented views the objective encodes per input image (for throughput).
        config: the objective's frozen config dataclass.
    """

    encoder: EncoderNet
    views_per_image: int = 1
    config: Any = None

    def forward(  # type: ignore[override]
        self, images: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self) -> None:
        """Hook after each optimizer step."""


OBJECTIVES: Registry[Objective] = Registry("training method")
register_objective = OBJECTIVES.register


def create_objective(name: str, encoder: EncoderNet, config: Any = None, **kwargs: Any) -> Objective:
    """Build an objective by name (``simclr``, ``moco``, ``supervised``, ...) around ``encoder``."""
    return OBJECTIVES.create(name, encoder, config, **kwargs)
