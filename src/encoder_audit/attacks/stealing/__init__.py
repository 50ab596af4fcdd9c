"""Encoder stealing: RDA and the baselines it is compared with, behind one registry.

>>> from encoder_audit.attacks.stealing import create_attack
>>> attack = create_attack("rda", epochs=1, surrogate="cnn-small")
>>> attack.expected_queries(2_500)
25000
"""

from __future__ import annotations

from typing import Any

from ...config import build_config
from ...registry import Registry
from .base import StealingAttack, StealingConfig, StealingResult, match_dim
from .contsteal import ContStealAttack, ContStealConfig
from .conventional import ConventionalAttack, ConventionalConfig
from .rda import RDAAttack, RDAConfig
from .stolenencoder import StolenEncoderAttack, StolenEncoderConfig

__all__ = [
    "STEALING_ATTACKS",
    "ContStealAttack",
    "ContStealConfig",
    "ConventionalAttack",
    "ConventionalConfig",
    "RDAAttack",
    "RDAConfig",
    "StealingAttack",
    "StealingConfig",
    "StealingResult",
    "StolenEncoderAttack",
    "StolenEncoderConfig",
    "attack_config",
    "create_attack",
    "match_dim",
    "register_attack",
]

STEALING_ATTACKS: Registry[StealingAttack] = Registry("stealing attack")
register_attack = STEALING_ATTACKS.register

for _cls, _help in (
    (ConventionalAttack, "Conventional (Cont-Steal baseline): MSE to victim embeddings of clean queries; N queries"),
    (StolenEncoderAttack, "StolenEncoder (CCS'22): clean targets + surrogate-side augmentation term; N queries"),
    (ContStealAttack, "Cont-Steal (CVPR'23): contrastive, fresh augmented queries every epoch; N x epochs queries"),
    (RDAAttack, "RDA (ECCV'24): P-view sample-wise prototypes once, then query-free training; N x P queries"),
):
    register_attack(_cls.name, config=_cls.config_class, help=_help)(_cls)


def attack_config(name: str, **params: Any) -> StealingConfig:
    """The validated config of attack ``name`` from keyword values (types coerced, unknown keys rejected)."""
    cls = STEALING_ATTACKS.config_class(name)
    assert cls is not None
    return build_config(cls, params)


def create_attack(name: str, config: StealingConfig | None = None, **params: Any) -> StealingAttack:
    """Build a stealing attack by name, from a config or keyword values.

    Raises:
        UnknownNameError: not a registered attack.
        ValueError: invalid or unknown option.
    """
    if config is not None and params:
        raise ValueError("pass either a config or keyword options, not both")
    return STEALING_ATTACKS.create(name, config if config is not None else attack_config(name, **params))
