"""Data protection with unlearnable examples: Unlearnable Clusters and its baselines.

>>> from encoder_audit.attacks.registry import attack_names, create_attack
>>> attack_names("protection")
['em', 'lsp', 'random', 'tap', 'uc']
>>> create_attack("protection", "random", eps=8/255).config.eps == 8/255
True

Importing the package registers the methods (``uc``, ``em``, ``tap``, ``lsp``, ``random``) as the
``protection`` family of :mod:`encoder_audit.attacks.registry` (each with ``@register_protection`` in its
own file); :func:`create_protection` is a thin wrapper that also passes ``surrogate=``. Nothing else
happens at import.
"""

from __future__ import annotations

from ..registry import registry as _registry
from . import em, lsp, random_noise, tap, uc  # noqa: F401  (registers the methods)
from .base import (
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

PROTECTIONS = _registry("protection")  # the protection family of the shared attack registry

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
