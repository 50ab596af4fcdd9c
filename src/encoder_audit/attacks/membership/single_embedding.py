"""Baseline: a Shokri-style shadow-model classifier on the raw embedding of the clean image.

Shokri, Stronati, Song, Shmatikov, "Membership Inference Attacks against Machine Learning Models",
IEEE S&P 2017: train shadow models, then an attack model on their outputs for shadow members vs.
non-members. Adapted to encoders (as the EncoderMI paper does for its classifier-MI baselines): the
"output" is the embedding ``h(x)`` of the unaugmented image (one query), and the attack model is the
same two-hidden-layer MLP as EncoderMI-V. It shows why view similarities matter: a shadow encoder's
embedding space is not aligned with the target's, so what the MLP learns about coordinates of the
shadow's embeddings does not transfer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..registry import register_attack
from .base import MembershipAttack
from .classifier import BinaryTrainConfig, Standardizer, predict_logits, train_binary
from .features import FeatureConfig, VictimProbe
from .shadow import Shadow

__all__ = ["SingleEmbedding", "SingleEmbeddingConfig"]


@dataclass(frozen=True)
class SingleEmbeddingConfig:
    """Attributes: hidden width of the two hidden layers; classifier training settings."""

    hidden: int = 256
    epochs: int = 100
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-6

    def __post_init__(self) -> None:
        BinaryTrainConfig(self.epochs, self.batch_size, self.lr, self.weight_decay)
        if self.hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {self.hidden}")


@register_attack(
    "membership",
    "single-embedding",
    config=SingleEmbeddingConfig,
    help="Shokri et al. (S&P 2017) shadow-model attack, on the raw embedding h(x)",
)
class SingleEmbedding(MembershipAttack):
    """MLP on the standardised clean embedding; score = member logit."""

    source = "Shokri et al. (S&P 2017) shadow-model attack, on the raw embedding h(x)"

    def __init__(self, config: SingleEmbeddingConfig | None = None, *, seed: int = 0) -> None:
        self.config = config or SingleEmbeddingConfig()
        super().__init__(FeatureConfig(), seed=seed)
        self.model: nn.Module | None = None
        self.scaler: Standardizer | None = None

    @property
    def queries_per_image(self) -> int:
        return 1

    def fit(self, shadow: Shadow) -> SingleEmbedding:
        c = self.config
        p_in, p_out = shadow.probes(self.features)
        x = torch.cat([p_in.clean(), p_out.clean()])
        y = torch.cat([torch.ones(len(p_in)), torch.zeros(len(p_out))])
        torch.manual_seed(self.seed)
        d = x.shape[1]
        self.model = nn.Sequential(
            nn.Linear(d, c.hidden), nn.ReLU(), nn.Linear(c.hidden, c.hidden), nn.ReLU(), nn.Linear(c.hidden, 1)
        )
        self.scaler = Standardizer(x)
        train_cfg = BinaryTrainConfig(c.epochs, c.batch_size, c.lr, c.weight_decay)
        train_binary(self.model, self.scaler(x), y, train_cfg, seed=self.seed)
        self.threshold = 0.0
        return self

    def score_probe(self, probe: VictimProbe) -> np.ndarray:
        if self.model is None or self.scaler is None:
            raise RuntimeError("single-embedding: call fit(shadow) first")
        x = probe.clean()
        if x.shape[1] != self.scaler.mean.shape[1]:
            raise ValueError(
                f"victim embeds to {x.shape[1]} dimensions but the shadow to {self.scaler.mean.shape[1]}: "
                "this baseline needs the same embedding size"
            )
        return predict_logits(self.model, self.scaler(x))
