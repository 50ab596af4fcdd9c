"""EncoderMI-V: the sorted vector of pairwise view similarities -> a two-hidden-layer MLP.

Liu, Jia, Qu, Gong, "EncoderMI: Membership Inference against Pre-trained Encoders in Contrastive
Learning", ACM CCS 2021 (arXiv 2108.11023). "EncoderMI-V: a fully connected network with two hidden
layers" (seed slides, Evaluation / Experimental Setup). The ``n (n - 1) / 2`` similarity scores have no
natural order, so the vector-based variant sorts them (ascending, as in the public replication) and
feeds the fixed-length vector to the classifier, trained on the shadow encoder's members (1) and
non-members (0). The replication's optimiser (Adam-free Lasagne NN, ``n_hidden=256``, lr 1e-4, batch
100, 300 epochs, L2 1e-6) is approximated with Adam lr 1e-3 on standardised inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..registry import register_attack
from .base import MembershipAttack
from .classifier import BinaryTrainConfig, Standardizer, predict_logits, train_binary
from .features import SIMILARITIES, FeatureConfig, VictimProbe, num_pairs
from .shadow import Shadow

__all__ = ["EncoderMIV", "EncoderMIVConfig"]


@dataclass(frozen=True)
class EncoderMIVConfig:
    """EncoderMI-V hyperparameters.

    Attributes:
        n_views: augmented views per input (10).
        similarity: ``cosine`` | ``correlation`` | ``euclidean``.
        views: query augmentation recipe.
        hidden: widths of the two hidden layers (replication: 256).
        epochs, batch_size, lr, weight_decay: classifier training (replication: 300, 100, -, 1e-6).
    """

    n_views: int = 10
    similarity: str = "cosine"
    views: str = "encodermi"
    hidden: int = 256
    epochs: int = 300
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-6

    def __post_init__(self) -> None:
        FeatureConfig(self.n_views, self.similarity, self.views)
        BinaryTrainConfig(self.epochs, self.batch_size, self.lr, self.weight_decay)
        if self.hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {self.hidden}")
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"unknown similarity {self.similarity!r}")


@register_attack(
    "membership",
    "encodermi-v",
    config=EncoderMIVConfig,
    help="Liu et al., EncoderMI (CCS 2021): vector-based inference classifier",
)
class EncoderMIV(MembershipAttack):
    """Sorted similarity vector -> MLP (two hidden layers, ReLU); score = the member logit."""

    source = "Liu et al., EncoderMI (CCS 2021): vector-based inference classifier"
    uses_views = True

    def __init__(self, config: EncoderMIVConfig | None = None, *, seed: int = 0) -> None:
        self.config = config or EncoderMIVConfig()
        c = self.config
        super().__init__(FeatureConfig(c.n_views, c.similarity, c.views), seed=seed)
        self.model: nn.Module | None = None
        self.scaler: Standardizer | None = None

    def _new_model(self) -> nn.Module:
        c = self.config
        d = num_pairs(c.n_views)
        torch.manual_seed(self.seed)
        return nn.Sequential(
            nn.Linear(d, c.hidden), nn.ReLU(), nn.Linear(c.hidden, c.hidden), nn.ReLU(), nn.Linear(c.hidden, 1)
        )

    def vector(self, probe: VictimProbe) -> torch.Tensor:
        """(N, n (n - 1) / 2) similarities sorted ascending."""
        return probe.similarities(self.config.n_views, self.config.similarity).sort(dim=1).values

    def fit(self, shadow: Shadow) -> EncoderMIV:
        p_in, p_out = shadow.probes(self.features)
        x = torch.cat([self.vector(p_in), self.vector(p_out)])
        y = torch.cat([torch.ones(len(p_in)), torch.zeros(len(p_out))])
        self.scaler = Standardizer(x)
        c = self.config
        train_cfg = BinaryTrainConfig(c.epochs, c.batch_size, c.lr, c.weight_decay)
        self.model = self._new_model()
        train_binary(self.model, self.scaler(x), y, train_cfg, seed=self.seed)
        self.threshold = 0.0  # logit 0 = probability 1/2, the classifier's own decision
        return self

    def score_probe(self, probe: VictimProbe) -> np.ndarray:
        if self.scaler is None or self.model is None:
            raise RuntimeError("encodermi-v: call fit(shadow) first")
        return predict_logits(self.model, self.scaler(self.vector(probe)))
