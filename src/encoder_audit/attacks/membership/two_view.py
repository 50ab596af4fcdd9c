"""Baseline: the similarity of just two augmented views against a shadow-chosen threshold.

The single-pair special case of EncoderMI-T (n = 2), i.e. the simplest "do two views of x land close
together?" test, in the spirit of the similarity-based membership inference on embedding models of
Song & Raghunathan, "Information Leakage in Embedding Models", ACM CCS 2020. Two queries per image;
it shows what the other ``n - 2`` views (and the 44 other pairs) buy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..registry import register_attack
from .base import MembershipAttack
from .features import FeatureConfig, VictimProbe
from .metrics import best_threshold
from .shadow import Shadow

__all__ = ["TwoView", "TwoViewConfig"]


@dataclass(frozen=True)
class TwoViewConfig:
    """Attributes: similarity and query view recipe."""

    similarity: str = "cosine"
    views: str = "encodermi"

    def __post_init__(self) -> None:
        FeatureConfig(2, self.similarity, self.views)


@register_attack(
    "membership",
    "two-view",
    config=TwoViewConfig,
    help="single-pair view similarity (n = 2 case of EncoderMI-T; cf. Song & Raghunathan, CCS 2020)",
)
class TwoView(MembershipAttack):
    """Cosine of two views' embeddings; threshold maximising shadow accuracy."""

    source = "single-pair view similarity (n = 2 case of EncoderMI-T; cf. Song & Raghunathan, CCS 2020)"
    uses_views = True

    def __init__(self, config: TwoViewConfig | None = None, *, seed: int = 0) -> None:
        self.config = config or TwoViewConfig()
        super().__init__(FeatureConfig(2, self.config.similarity, self.config.views), seed=seed)

    @property
    def queries_per_image(self) -> int:
        return 2

    def score_probe(self, probe: VictimProbe) -> np.ndarray:
        return probe.similarities(2, self.config.similarity)[:, 0].double().numpy()

    def fit(self, shadow: Shadow) -> TwoView:
        p_in, p_out = shadow.probes(self.features)
        s = np.concatenate([self.score_probe(p_in), self.score_probe(p_out)])
        y = np.concatenate([np.ones(len(p_in)), np.zeros(len(p_out))])
        self.threshold = best_threshold(s, y)
        return self
