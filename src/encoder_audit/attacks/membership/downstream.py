"""Baseline: loss / confidence of a downstream linear classifier built on the encoder.

Yeom, Giacomelli, Fredrikson, Jha, "Privacy Risk in Machine Learning: Analyzing the Connection to
Overfitting", IEEE CSF 2018 (the LOSS attack: members have lower loss), and Salem et al., "ML-Leaks",
NDSS 2019 (the top-1 confidence attack). Adapted to an encoder the way a downstream user sees it: a
linear head (logistic regression on standardised embeddings) is trained on labelled images the encoder
never saw (the shadow's ``reference`` part) and a query's score is the negative cross-entropy of its
true label (``signal="loss"``) or its top-1 probability (``signal="confidence"``). The threshold is
chosen on the shadow encoder with the same procedure. One query per image (plus the reference set
once). Needs labelled images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...evaluate import fit_linear_probe
from ...evaluate.linear import LinearProbe
from ..registry import register_attack
from .base import MembershipAttack
from .features import FeatureConfig, VictimProbe
from .metrics import best_threshold
from .shadow import Shadow

__all__ = ["DownstreamLoss", "DownstreamLossConfig"]


@dataclass(frozen=True)
class DownstreamLossConfig:
    """Attributes: signal ``loss`` (Yeom) or ``confidence`` (ML-Leaks); head L2 inverse strength ``c``."""

    signal: str = "loss"
    c: float = 1.0

    def __post_init__(self) -> None:
        if self.signal not in ("loss", "confidence"):
            raise ValueError(f"signal must be loss or confidence, got {self.signal!r}")
        if self.c <= 0:
            raise ValueError("c must be positive")


def _signal(head: LinearProbe, probe: VictimProbe, signal: str) -> np.ndarray:
    labels = probe.dataset.labels
    if labels is None:
        raise ValueError("the downstream-classifier baseline needs labelled images")
    proba = head.predict_proba(probe.clean())
    classes = list(head.pipeline.classes_)
    if signal == "confidence":
        return proba.max(axis=1).astype(np.float64)
    col = np.array([classes.index(int(v)) if int(v) in classes else -1 for v in labels.numpy()])
    p = np.where(col >= 0, proba[np.arange(len(col)), np.maximum(col, 0)], 0.0)
    return np.log(np.clip(p, 1e-12, 1.0))  # = -cross-entropy


@register_attack(
    "membership",
    "downstream-loss",
    config=DownstreamLossConfig,
    help="Yeom et al. (CSF 2018) LOSS / Salem et al. (NDSS 2019) confidence, on a downstream linear head",
)
class DownstreamLoss(MembershipAttack):
    """Linear head on reference embeddings; score = -loss (or confidence) of a query."""

    needs_labels = True
    needs_reference = True
    source = "Yeom et al. (CSF 2018) LOSS / Salem et al. (NDSS 2019) confidence, on a downstream linear head"

    def __init__(self, config: DownstreamLossConfig | None = None, *, seed: int = 0) -> None:
        self.config = config or DownstreamLossConfig()
        super().__init__(FeatureConfig(), seed=seed)
        self.shadow: Shadow | None = None
        self._heads: dict[int, LinearProbe] = {}

    @property
    def queries_per_image(self) -> int:
        return 1

    def _head(self, encoder: object, tag: str) -> LinearProbe:
        assert self.shadow is not None
        key = id(encoder)
        if key not in self._heads:
            ref = self.shadow.reference_probe(encoder, self.features, tag)
            if ref.dataset.labels is None:
                raise ValueError("the downstream-classifier baseline needs labelled reference images")
            self._heads[key] = fit_linear_probe(ref.clean(), ref.dataset.labels, c=self.config.c, seed=self.seed)
        return self._heads[key]

    def fit(self, shadow: Shadow) -> DownstreamLoss:
        self.shadow = shadow
        head = self._head(shadow.encoder, "ref-shadow")
        p_in, p_out = shadow.probes(self.features)
        s = np.concatenate([_signal(head, p_in, self.config.signal), _signal(head, p_out, self.config.signal)])
        y = np.concatenate([np.ones(len(p_in)), np.zeros(len(p_out))])
        self.threshold = best_threshold(s, y)
        return self

    def score_probe(self, probe: VictimProbe) -> np.ndarray:
        if self.shadow is None:
            raise RuntimeError("downstream-loss: call fit(shadow) first")
        head = self._head(probe.counter, f"ref-victim-{id(probe.counter)}")
        return _signal(head, probe, self.config.signal)
