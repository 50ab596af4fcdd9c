"""Evaluation of encoders: kNN, linear probe, random-init baseline."""

from __future__ import annotations

from .downstream import EvalConfig, evaluate_encoder, random_init_baseline
from .features import extract_features
from .knn import knn_accuracy, knn_predict
from .linear import LinearProbe, fit_linear_probe, linear_probe_accuracy

__all__ = [
    "EvalConfig",
    "LinearProbe",
    "evaluate_encoder",
    "extract_features",
    "fit_linear_probe",
    "knn_accuracy",
    "knn_predict",
    "linear_probe_accuracy",
    "random_init_baseline",
]
