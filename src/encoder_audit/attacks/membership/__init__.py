"""Membership inference against encoders: EncoderMI-V/S/T, baselines, shadows, targets and metrics.

The audit that runs them lives in :mod:`encoder_audit.audit.membership`.

>>> from encoder_audit.attacks.membership import create_attack, MEMBERSHIP_ATTACKS
>>> create_attack("encodermi-t", n_views=4).queries_per_image
4
>>> "encodermi-v" in MEMBERSHIP_ATTACKS
True
"""

from __future__ import annotations

from typing import Any

from ..registry import create_attack as _create
from ..registry import registry as _registry
from .base import MembershipAttack, MIAScores, save_scores
from .blind import Blind
from .downstream import DownstreamLoss
from .embedding_norm import EmbeddingNorm
from .encodermi_s import EncoderMIS
from .encodermi_t import EncoderMIT
from .encodermi_v import EncoderMIV
from .features import FeatureConfig, VictimProbe, pairwise_similarities, view_embeddings
from .metrics import best_threshold, evaluate_scores, plot_roc, tpr_at_fpr
from .shadow import KNOWLEDGE_SETTINGS, Knowledge, Shadow, ShadowConfig, shadow_recipe, train_shadow
from .single_embedding import SingleEmbedding
from .targets import RECIPES, TargetRecipe, Trained, head_encoder, load_head, recipe, save_head, train_encoder
from .two_view import TwoView

__all__ = [
    "BASELINES",
    "ENCODERMI",
    "KNOWLEDGE_SETTINGS",
    "MEMBERSHIP_ATTACKS",
    "RECIPES",
    "Blind",
    "DownstreamLoss",
    "EmbeddingNorm",
    "EncoderMIS",
    "EncoderMIT",
    "EncoderMIV",
    "FeatureConfig",
    "Knowledge",
    "MIAScores",
    "MembershipAttack",
    "Shadow",
    "ShadowConfig",
    "SingleEmbedding",
    "TargetRecipe",
    "Trained",
    "TwoView",
    "VictimProbe",
    "best_threshold",
    "create_attack",
    "evaluate_scores",
    "head_encoder",
    "load_head",
    "pairwise_similarities",
    "plot_roc",
    "recipe",
    "save_head",
    "save_scores",
    "shadow_recipe",
    "tpr_at_fpr",
    "train_encoder",
    "train_shadow",
    "view_embeddings",
]

ENCODERMI = ("encodermi-v", "encodermi-s", "encodermi-t")
BASELINES = ("single-embedding", "downstream-loss", "embedding-norm", "two-view", "blind")
MEMBERSHIP_ATTACKS = _registry("membership")


def create_attack(name: str, *, seed: int = 0, **params: Any) -> MembershipAttack:
    """Build membership attack ``name`` (``encoder_audit.attacks.registry.create_attack``) with its seed."""
    attack: MembershipAttack = _create("membership", name, **params)
    attack.seed = seed
    return attack
