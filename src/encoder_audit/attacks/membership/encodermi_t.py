"""EncoderMI-T: the mean pairwise view similarity against a threshold chosen on the shadow.

Liu, Jia, Qu, Gong, "EncoderMI", ACM CCS 2021 (arXiv 2108.11023): "EncoderMI-T: A pre-determined
threshold" (seed slides). The statistic is

    s(x) = 2 / (n (n - 1)) * sum_{i < j} S(h(x^i), h(x^j)),

and ``x`` is a member when ``s(x) >= tau``. We choose ``tau`` to maximise accuracy on the shadow
encoder's members and non-members (the rule of the ``encodermi_threshold`` audit metric of the
Alignment-Calibration code, which grid-searches thresholds for maximal accuracy; we use every
midpoint between shadow scores instead of a grid). No classifier is trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..registry import register_attack
from .base import MembershipAttack
from .features import FeatureConfig, VictimProbe
from .metrics import best_threshold
from .shadow import Shadow

__all__ = ["EncoderMIT", "EncoderMITConfig", "mean_similarity"]


def mean_similarity(similarities: torch.Tensor) -> np.ndarray:
    """Row means of an (N, P) similarity matrix, as float64."""
    return similarities.double().mean(dim=1).numpy()


@dataclass(frozen=True)
class EncoderMITConfig:
    """EncoderMI-T hyperparameters.

    Attributes:
        n_views: augmented views per input (10).
        similarity: ``cosine`` | ``correlation`` | ``euclidean``.
        views: query augmentation recipe.
    """

    n_views: int = 10
    similarity: str = "cosine"
    views: str = "encodermi"

    def __post_init__(self) -> None:
        FeatureConfig(self.n_views, self.similarity, self.views)


@register_attack(
    "membership",
    "encodermi-t",
    config=EncoderMITConfig,
    help="Liu et al., EncoderMI (CCS 2021): threshold-based inference",
)
class EncoderMIT(MembershipAttack):
    """Mean similarity, threshold maximising shadow accuracy; score = the mean similarity."""

    source = "Liu et al., EncoderMI (CCS 2021): threshold-based inference"
    uses_views = True

    def __init__(self, config: EncoderMITConfig | None = None, *, seed: int = 0) -> None:
        self.config = config or EncoderMITConfig()
        c = self.config
        super().__init__(FeatureConfig(c.n_views, c.similarity, c.views), seed=seed)

    def score_probe(self, probe: VictimProbe) -> np.ndarray:
        return mean_similarity(probe.similarities(self.config.n_views, self.config.similarity))

    def fit(self, shadow: Shadow) -> EncoderMIT:
        p_in, p_out = shadow.probes(self.features)
        s = np.concatenate([self.score_probe(p_in), self.score_probe(p_out)])
        y = np.concatenate([np.ones(len(p_in)), np.zeros(len(p_out))])
        self.threshold = best_threshold(s, y)
        return self
