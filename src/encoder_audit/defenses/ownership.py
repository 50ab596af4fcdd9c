"""Dataset inference for encoders: does a suspect encoder carry the owner's private training data?

Dziedzic, Duan, Kaleem, Dhawan, Guan, Cattan, Boenisch, Papernot, "Dataset Inference for
Self-Supervised Models", NeurIPS 2022 (arXiv 2209.09024; official ``dataset-inference/gmm.py``): an
encoder trained on data D represents D's samples in denser regions of its embedding space than
unseen samples, and a stolen copy inherits that. The owner

1. embeds part of the private training set with the suspect (L2-normalised) and fits a Gaussian
   mixture (20 components, diagonal covariance, ``max_iter`` 1000);
2. scores the log-likelihood of a *disjoint* private subset and of public data from the same
   distribution;
3. runs a one-sided Welch t-test "private > public"; ownership is claimed at p < 0.01 (the paper's
   blog post).

An independently trained encoder shows no gap. The test needs the victim to have memorised its
training set to some degree: an encoder trained briefly on a large set may show no gap even for
itself, and the report says so (``victim_p_value``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch.nn.functional as F

from ..data.base import ImageDataset
from ..evaluate import extract_features
from ..victim import Encoder

log = logging.getLogger(__name__)

__all__ = ["OwnershipConfig", "OwnershipResult", "dataset_inference"]


@dataclass(frozen=True)
class OwnershipConfig:
    """Attributes:
    n_components: GMM components (20, official code).
    covariance_type: GMM covariance ("diag", official code).
    max_iter: EM iterations (1000, official code).
    alpha: decision level of the one-sided t-test (0.01).
    seed: GMM initialisation.
    """

    n_components: int = 20
    covariance_type: str = "diag"
    max_iter: int = 1000
    alpha: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_components < 1 or self.max_iter < 1:
            raise ValueError("n_components and max_iter must be >= 1")
        if self.covariance_type not in ("full", "tied", "diag", "spherical"):
            raise ValueError(f"unknown covariance_type {self.covariance_type!r}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")


@dataclass
class OwnershipResult:
    """Attributes:
    t_statistic: Welch t of private vs. public log-likelihoods.
    p_value: one-sided p ("private > public").
    mean_private: mean log-likelihood of the held-out private images.
    mean_public: mean log-likelihood of the public images.
    owned: p_value < alpha (the suspect is judged derived from the owner's data).
    alpha: decision level.
    n_fit, n_private, n_public: sample sizes.
    """

    t_statistic: float
    p_value: float
    mean_private: float
    mean_public: float
    owned: bool
    alpha: float
    n_fit: int
    n_private: int
    n_public: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dataset_inference(
    suspect: Encoder,
    private_fit: ImageDataset,
    private_test: ImageDataset,
    public: ImageDataset,
    config: OwnershipConfig | None = None,
) -> OwnershipResult:
    """Run the GMM dataset-inference test on ``suspect`` (see module docstring).

    Args:
        suspect: the encoder under suspicion (queried for every image).
        private_fit: private training images used to fit the GMM.
        private_test: other private training images (disjoint from ``private_fit``).
        public: images from the same distribution the owner never trained on.
        config: GMM and test settings.

    Raises:
        ValueError: too few images for the mixture.
    """
    from scipy import stats
    from sklearn.mixture import GaussianMixture

    c = config or OwnershipConfig()
    if len(private_fit) < 2 * c.n_components or len(private_test) < 2 or len(public) < 2:
        raise ValueError(
            f"need >= {2 * c.n_components} fitting images and >= 2 private and public test images, got "
            f"{len(private_fit)}, {len(private_test)}, {len(public)}"
        )

    def feats(ds: ImageDataset) -> np.ndarray:
        return F.normalize(extract_features(suspect, ds).float(), dim=1).double().numpy()

    gmm = GaussianMixture(
        n_components=c.n_components,
        covariance_type=c.covariance_type,
        max_iter=c.max_iter,
        random_state=c.seed,
        reg_covar=1e-5,
    )
    gmm.fit(feats(private_fit))
    lp, lq = gmm.score_samples(feats(private_test)), gmm.score_samples(feats(public))
    t, p = stats.ttest_ind(lp, lq, equal_var=False, alternative="greater")
    return OwnershipResult(
        t_statistic=float(t),
        p_value=float(p),
        mean_private=float(lp.mean()),
        mean_public=float(lq.mean()),
        owned=bool(p < c.alpha),
        alpha=c.alpha,
        n_fit=len(private_fit),
        n_private=len(private_test),
        n_public=len(public),
    )
