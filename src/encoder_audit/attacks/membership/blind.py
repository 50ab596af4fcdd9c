"""Blind baseline: a classifier that sees only the images, never the encoder.

Das, Zhang, Tramèr, "Blind Baselines Beat Membership Inference Attacks for Foundation Models"
(arXiv 2406.16201): on many published MI benchmarks a model-free classifier separates "members" from
"non-members" because the two sets come from different distributions. This check trains a logistic
regression on (down-sampled) pixels to tell the evaluation members from the non-members with k-fold
cross-fitting, so every score is out-of-fold. With an i.i.d. split its AUC must sit near 0.5; if it
does not, the split, not the encoder, leaks membership. It uses the evaluation labels by design (it is
a diagnostic of the split, not an attack) and makes no queries.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ...data.base import ImageDataset
from ...victim import Encoder
from ..registry import register_attack
from .base import MembershipAttack, MIAScores
from .features import VictimProbe
from .shadow import Shadow

__all__ = ["Blind", "BlindConfig", "blind_scores"]


@dataclass(frozen=True)
class BlindConfig:
    """Attributes: folds of cross-fitting; side of the down-sampled image; L2 inverse strength c."""

    folds: int = 5
    size: int = 14
    c: float = 0.1

    def __post_init__(self) -> None:
        if self.folds < 2 or self.size < 1 or self.c <= 0:
            raise ValueError("folds must be >= 2, size >= 1 and c > 0")


def _pixels(ds: ImageDataset, size: int) -> np.ndarray:
    x = ds.float_images()
    x = F.adaptive_avg_pool2d(x, size) if x.shape[-1] > size else x
    return x.flatten(1).numpy()


def blind_scores(
    members: ImageDataset, nonmembers: ImageDataset, config: BlindConfig | None = None, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold member probabilities of a pixel classifier; returns (scores, labels)."""
    c = config or BlindConfig()
    x = np.concatenate([_pixels(members, c.size), _pixels(nonmembers, c.size)])
    y = np.concatenate([np.ones(len(members), np.int8), np.zeros(len(nonmembers), np.int8)])
    scores = np.zeros(len(y))
    folds = StratifiedKFold(n_splits=min(c.folds, int(min(y.sum(), (1 - y).sum()))), shuffle=True, random_state=seed)
    for tr, te in folds.split(x, y):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c.c, max_iter=300))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(x[tr], y[tr])
        scores[te] = clf.predict_proba(x[te])[:, 1]
    return scores, y


@register_attack(
    "membership",
    "blind",
    config=BlindConfig,
    help="Das, Zhang, Tramer (2024), blind baseline: image-only classifier, no encoder",
)
class Blind(MembershipAttack):
    """Image-only, cross-fitted logistic regression; score = out-of-fold member probability."""

    source = "Das, Zhang, Tramer (2024), blind baseline: image-only classifier, no encoder"
    needs_shadow = False
    diagnostic = True

    def __init__(self, config: BlindConfig | None = None, *, seed: int = 0) -> None:
        self.config = config or BlindConfig()
        super().__init__(seed=seed)
        self.threshold = 0.5

    @property
    def queries_per_image(self) -> int:
        return 0

    def fit(self, shadow: Shadow | None = None) -> Blind:
        return self

    def score_probe(self, probe: VictimProbe) -> np.ndarray:
        raise ValueError("the blind baseline needs labelled members and non-members; use infer()")

    def infer(
        self,
        victim: Encoder | None = None,
        members: ImageDataset | None = None,
        nonmembers: ImageDataset | None = None,
        *,
        probes: tuple[VictimProbe, VictimProbe] | None = None,
        seed: int = 0,
    ) -> MIAScores:
        import time

        if probes is not None:
            members, nonmembers = probes[0].dataset, probes[1].dataset
        if members is None or nonmembers is None:
            raise ValueError("pass members and nonmembers (or probes)")
        t0 = time.perf_counter()
        with torch.no_grad():
            scores, labels = blind_scores(members, nonmembers, self.config, seed=self.seed)
        return MIAScores(self.name, scores, labels, 0.5, 0, time.perf_counter() - t0)
