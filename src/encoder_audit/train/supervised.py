"""Supervised training: encoder + linear classifier with cross entropy on (lightly) augmented images.

Used wherever an audit needs a classifier trained with labels: the "trainer" of the data-protection
audit, shadow models of label-based baselines, and downstream users of a backdoored encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import ViewConfig, ViewGenerator
from ..models.base import EncoderNet
from .objective import Objective, register_objective


@dataclass(frozen=True)
class SupervisedConfig:
    """Attributes:
    num_classes: classifier outputs.
    augment: random crop (scale 0.8-1) + flip, the standard light training augmentation.
    label_smoothing: cross-entropy label smoothing.
    """

    num_classes: int = 10
    augment: bool = True
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError("label_smoothing must be in [0, 1)")


class Supervised(Objective):
    """Cross entropy of a linear classifier on the encoder's features."""

    views_per_image = 1

    def __init__(self, encoder: EncoderNet, config: SupervisedConfig | None = None) -> None:
        super().__init__()
        self.config = config or SupervisedConfig()
        self.encoder = encoder
        self.classifier = nn.Linear(encoder.feature_dim, self.config.num_classes)
        self.views = ViewGenerator(ViewConfig(crop_scale=(0.8, 1.0), jitter_p=0.0, gray_p=0.0), size=encoder.image_size)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(images))

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
        if labels is None:
            raise ValueError("supervised training needs labels")
        x = self.views(images, generator) if self.config.augment else images
        return F.cross_entropy(self.logits(x), labels, label_smoothing=self.config.label_smoothing)


@register_objective("supervised", config=SupervisedConfig, help="cross entropy of a linear classifier on the encoder")
def _make_supervised(encoder: EncoderNet, config: SupervisedConfig | None = None) -> Supervised:
    """Cross entropy of a linear classifier on the encoder."""
    return Supervised(encoder, config)
