"""Data protection with unlearnable examples: Unlearnable Clusters and its baselines.

>>> from encoder_audit.attacks.unlearnable import create_protection, PROTECTIONS
>>> sorted(PROTECTIONS.names())
['em', 'lsp', 'random', 'tap', 'uc']

Importing the package registers the methods (``uc``, ``em``, ``tap``, ``lsp``, ``random``); nothing
else happens at import.
"""

from __future__ import annotations

from . import em, lsp, random_noise, tap, uc  # noqa: F401  (registers the methods)
from .base import (
    PROTECTIONS,
    ProtectedDataset,
    Protection,
    apply_perturbation,
    create_protection,
    parse_eps,
    project,
    register_protection,
)
from .clustering import Clustering, cluster_features, protector_labels, shift_permutation
from .em import EMConfig, ErrorMinimizingNoise
from .lsp import LinearlySeparablePatches, LSPConfig
from .random_noise import RandomNoise, RandomNoiseConfig
from .tap import TAPConfig, TargetedAdversarialPoisoning
from .uc import UCConfig, UCFit, UnlearnableClusters, uc_loss

__all__ = [
    "PROTECTIONS",
    "Clustering",
    "EMConfig",
    "ErrorMinimizingNoise",
    "LSPConfig",
    "LinearlySeparablePatches",
    "ProtectedDataset",
    "Protection",
    "RandomNoise",
    "RandomNoiseConfig",
    "TAPConfig",
    "TargetedAdversarialPoisoning",
    "UCConfig",
    "UCFit",
    "UnlearnableClusters",
    "apply_perturbation",
    "cluster_features",
    "create_protection",
    "parse_eps",
    "project",
    "protector_labels",
    "register_protection",
    "shift_permutation",
    "uc_loss",
]
