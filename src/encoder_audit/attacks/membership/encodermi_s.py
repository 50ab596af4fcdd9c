"""EncoderMI-S: the *set* of pairwise view similarities -> a DeepSets classifier.

Liu, Jia, Qu, Gong, "EncoderMI", ACM CCS 2021 (arXiv 2108.11023): "EncoderMI-S: DeepSets" (seed slides).
The similarity scores form an unordered set, so the set-based variant uses a permutation-invariant
network (Zaheer et al., "Deep Sets", NeurIPS 2017): ``rho(pool_k phi(s_k))``. We use the canonical
form: an element-wise MLP ``phi`` (1 -> h -> h, tanh), mean pooling (invariant to order and to the
number of views) and an MLP ``rho`` (h -> h -> 1) with dropout 0.5 before each linear layer as in the
DeepSets point-cloud model the public replication reuses. (That replication's ``x - max(x)``
equivariant layers would discard the absolute similarity level; we do not copy that choice.)
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

__all__ = ["DeepSets", "EncoderMIS", "EncoderMISConfig"]

POOLS = ("mean", "sum", "max")


class DeepSets(nn.Module):
    """Permutation-invariant set classifier over scalar elements.

    Shape:
        input (N, K) sets of K scalars; output (N, 1) logits.
    """

    def __init__(self, hidden: int = 64, pool: str = "mean", dropout: float = 0.5) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        self.pool = pool
        self.phi = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.rho = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.Tanh(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.phi(x.unsqueeze(-1))  # (N, K, h)
        if self.pool == "mean":
            z = h.mean(dim=1)
        elif self.pool == "sum":
            z = h.sum(dim=1)
        else:
            z = h.max(dim=1).values
        return self.rho(z)


@dataclass(frozen=True)
class EncoderMISConfig:
    """EncoderMI-S hyperparameters.

    Attributes:
        n_views: augmented views per input (10).
        similarity: ``cosine`` | ``correlation`` | ``euclidean``.
        views: query augmentation recipe.
        hidden: width of phi and rho.
        pool: ``mean`` | ``sum`` | ``max``.
        epochs, batch_size, lr, weight_decay: training (replication: Adam lr 1e-3, wd 1e-7).
    """

    n_views: int = 10
    similarity: str = "cosine"
    views: str = "encodermi"
    hidden: int = 64
    pool: str = "mean"
    epochs: int = 200
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-7

    def __post_init__(self) -> None:
        FeatureConfig(self.n_views, self.similarity, self.views)
        BinaryTrainConfig(self.epochs, self.batch_size, self.lr, self.weight_decay)
        if self.hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {self.hidden}")
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")


@register_attack(
    "membership",
    "encodermi-s",
    config=EncoderMISConfig,
    help="Liu et al., EncoderMI (CCS 2021): set-based inference classifier (DeepSets)",
)
class EncoderMIS(MembershipAttack):
    """Set of similarities -> DeepSets; score = the member logit."""

    source = "Liu et al., EncoderMI (CCS 2021): set-based inference classifier (DeepSets, Zaheer et al. 2017)"
    uses_views = True

    def __init__(self, config: EncoderMISConfig | None = None, *, seed: int = 0) -> None:
        self.config = config or EncoderMISConfig()
        c = self.config
        super().__init__(FeatureConfig(c.n_views, c.similarity, c.views), seed=seed)
        self.model: DeepSets | None = None
        self.scaler: Standardizer | None = None

    def fit(self, shadow: Shadow) -> EncoderMIS:
        c = self.config
        p_in, p_out = shadow.probes(self.features)
        x = torch.cat([p_in.similarities(c.n_views, c.similarity), p_out.similarities(c.n_views, c.similarity)])
        y = torch.cat([torch.ones(len(p_in)), torch.zeros(len(p_out))])
        self.scaler = Standardizer(x, per_feature=False)  # one scale for all elements keeps invariance
        train_cfg = BinaryTrainConfig(c.epochs, c.batch_size, c.lr, c.weight_decay)
        torch.manual_seed(self.seed)
        self.model = DeepSets(c.hidden, c.pool)
        train_binary(self.model, self.scaler(x), y, train_cfg, seed=self.seed)
        self.threshold = 0.0
        return self

    def score_probe(self, probe: VictimProbe) -> np.ndarray:
        if self.scaler is None or self.model is None:
            raise RuntimeError("encodermi-s: call fit(shadow) first")
        c = self.config
        return predict_logits(self.model, self.scaler(probe.similarities(c.n_views, c.similarity)))
