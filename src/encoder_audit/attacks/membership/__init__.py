"""Membership inference against encoders: EncoderMI-V/S/T, baselines, metrics, audits.

>>> from encoder_audit.attacks.membership import create_attack, MEMBERSHIP_ATTACKS
>>> create_attack("encodermi-t", n_views=4).queries_per_image
4
>>> "encodermi-v" in MEMBERSHIP_ATTACKS
True
"""

from __future__ import annotations

from typing import Any

from ...config import build_config
from ...registry import Registry
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
from .targets import RECIPES, TargetRecipe, recipe, train_encoder
from .two_view import TwoView

__all__ = [
    "BASELINES",
    "ENCODERMI",
    "KNOWLEDGE_SETTINGS",
    "MEMBERSHIP_ATTACKS",
    "RECIPES",
    "FeatureConfig",
    "Knowledge",
    "MIAScores",
    "MembershipAttack",
    "Shadow",
    "ShadowConfig",
    "TargetRecipe",
    "VictimProbe",
    "best_threshold",
    "create_attack",
    "evaluate_scores",
    "pairwise_similarities",
    "plot_roc",
    "recipe",
    "register_attack",
    "save_scores",
    "shadow_recipe",
    "tpr_at_fpr",
    "train_encoder",
    "train_shadow",
    "view_embeddings",
]

MEMBERSHIP_ATTACKS: Registry[MembershipAttack] = Registry("membership attack")
register_attack = MEMBERSHIP_ATTACKS.register

ENCODERMI = ("encodermi-v", "encodermi-s", "encodermi-t")
BASELINES = ("single-embedding", "downstream-loss", "embedding-norm", "two-view", "blind")

for _cls in (EncoderMIV, EncoderMIS, EncoderMIT, SingleEmbedding, DownstreamLoss, EmbeddingNorm, TwoView, Blind):
    register_attack(_cls.name, config=_cls.config_class, help=_cls.source)(_cls)  # type: ignore[attr-defined]


def create_attack(name: str, *, seed: int = 0, **params: Any) -> MembershipAttack:
    """Build attack ``name`` with config fields from ``params`` (coerced and validated)."""
    cls = MEMBERSHIP_ATTACKS.config_class(name)
    config = build_config(cls, params) if cls is not None else None
    return MEMBERSHIP_ATTACKS.create(name, config, seed=seed)
