"""Linear probe: multinomial logistic regression on frozen, standardized features.

The standard protocol for judging a self-supervised encoder (SimCLR Sec. 4: "a linear classifier is
trained on top of the frozen base network"). We standardize features with the training split's
statistics and fit scikit-learn's L-BFGS multinomial logistic regression.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler


@dataclass
class LinearProbe:
    """A fitted probe; ``predict``/``predict_proba`` take raw (unstandardized) features."""

    pipeline: Pipeline

    def predict(self, features: torch.Tensor) -> np.ndarray:
        return self.pipeline.predict(features.numpy())

    def predict_proba(self, features: torch.Tensor) -> np.ndarray:
        return self.pipeline.predict_proba(features.numpy())

    def accuracy(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        return float((self.predict(features) == labels.numpy()).mean())


def fit_linear_probe(
    features: torch.Tensor, labels: torch.Tensor, *, c: float = 1.0, max_iter: int = 500, seed: int = 0
) -> LinearProbe:
    """Fit standardize -> logistic regression (``C`` = inverse L2 strength).

    BLAS runs single-threaded here: L-BFGS on a few thousand x a few hundred features is hundreds of
    small matrix products, which a multi-threaded BLAS slows down (``benchmarks/linear_probe_threads.py``,
    figures in docs/BENCHMARKS.md).
    """
    import warnings

    from threadpoolctl import threadpool_limits

    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter, random_state=seed))
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe.fit(features.numpy(), labels.numpy())
    return LinearProbe(pipe)


def linear_probe_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    **kwargs: float | int,
) -> float:
    """Test accuracy of :func:`fit_linear_probe` trained on the training features."""
    return fit_linear_probe(train_features, train_labels, **kwargs).accuracy(test_features, test_labels)  # type: ignore[arg-type]
