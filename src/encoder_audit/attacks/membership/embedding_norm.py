"""Baseline: a likelihood-ratio test on the p-norm of the embedding (LpLA-style).

Sun et al., "LpLA: a likelihood attack on the p-norm of embedding vectors" (ASIA CCS 2025,
arXiv 2506.05743; the authors' code repository holds only a README, so this is our reading of the
abstract): members' embeddings have a different p-norm than non-members'. We model the statistic
``t(x) = ||h(x)||_p`` of the victim as Gaussian: the non-member law ``N(mu_out, s_out)`` is fitted on the
victim's embeddings of reference images it never saw (the shadow's ``reference`` part, drawn from the
same distribution), and the member law is that one shifted and scaled by the ratio the shadow encoder
shows between its members and non-members. Score = ``log N(t; in) - log N(t; out)``; threshold 0
(likelihood ratio 1). One query per image, plus the reference set once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..registry import register_attack
from .base import MembershipAttack
from .features import FeatureConfig, VictimProbe
from .shadow import Shadow

__all__ = ["EmbeddingNorm", "EmbeddingNormConfig"]


@dataclass(frozen=True)
class EmbeddingNormConfig:
    """Attributes: p of the norm (2)."""

    p: float = 2.0

    def __post_init__(self) -> None:
        if self.p <= 0:
            raise ValueError(f"p must be positive, got {self.p}")


def _stats(t: np.ndarray) -> tuple[float, float]:
    return float(np.mean(t)), float(max(np.std(t), 1e-8))


def _log_gauss(t: np.ndarray, mu: float, sd: float) -> np.ndarray:
    return -0.5 * ((t - mu) / sd) ** 2 - np.log(sd)


@register_attack(
    "membership",
    "embedding-norm",
    config=EmbeddingNormConfig,
    help="Sun et al., LpLA (ASIA CCS 2025): likelihood attack on the p-norm of embeddings",
)
class EmbeddingNorm(MembershipAttack):
    """Gaussian likelihood ratio on ||h(x)||_p; score = log-likelihood ratio."""

    source = "Sun et al., LpLA (ASIA CCS 2025): likelihood attack on the p-norm of embeddings"
    needs_reference = True

    def __init__(self, config: EmbeddingNormConfig | None = None, *, seed: int = 0) -> None:
        self.config = config or EmbeddingNormConfig()
        super().__init__(FeatureConfig(), seed=seed)
        self.shadow: Shadow | None = None
        self.ratio: tuple[float, float] = (1.0, 1.0)
        self._out: dict[int, tuple[float, float]] = {}

    @property
    def queries_per_image(self) -> int:
        return 1

    def norms(self, probe: VictimProbe) -> np.ndarray:
        return torch.linalg.vector_norm(probe.clean().double(), ord=self.config.p, dim=1).numpy()

    def fit(self, shadow: Shadow) -> EmbeddingNorm:
        self.shadow = shadow
        p_in, p_out = shadow.probes(self.features)
        (mi, si), (mo, so) = _stats(self.norms(p_in)), _stats(self.norms(p_out))
        self.ratio = (mi / max(mo, 1e-12), si / so)
        self.threshold = 0.0
        return self

    def score_probe(self, probe: VictimProbe) -> np.ndarray:
        if self.shadow is None:
            raise RuntimeError("embedding-norm: call fit(shadow) first")
        key = id(probe.counter)
        if key not in self._out:
            ref = self.shadow.reference_probe(probe.counter, self.features, f"ref-victim-{key}")
            self._out[key] = _stats(self.norms(ref))
        mo, so = self._out[key]
        mi, si = mo * self.ratio[0], so * self.ratio[1]
        t = self.norms(probe)
        return _log_gauss(t, mi, si) - _log_gauss(t, mo, so)
