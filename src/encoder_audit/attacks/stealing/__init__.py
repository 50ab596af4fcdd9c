"""Encoder stealing: RDA and the baselines it is compared with, registered in the shared attack registry.

Each method registers itself in its own file with ``@register_attack("stealing", name, config=...)``;
:func:`create_attack` here is a thin wrapper over the shared
:func:`encoder_audit.attacks.registry.create_attack` for the ``stealing`` family.

>>> from encoder_audit.attacks.stealing import create_attack
>>> attack = create_attack("rda", epochs=1, surrogate="cnn-small")
>>> attack.query_cost(2_500)
25000
"""

from __future__ import annotations

from typing import Any

from ...config import build_config
from ...registry import Registry
from ..registry import create_attack as _create_attack
from ..registry import registry as _registry
from .base import StealingAttack, StealingConfig, StealingResult, batch_sizes, match_dim, step_sizes
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
    "batch_sizes",
    "create_attack",
    "match_dim",
    "step_sizes",
]

STEALING_ATTACKS: Registry[StealingAttack] = _registry("stealing")


def attack_config(name: str, **params: Any) -> StealingConfig:
    """The validated config of attack ``name`` from keyword values (types coerced, unknown keys rejected)."""
    cls = STEALING_ATTACKS.config_class(name)
    assert cls is not None
    return build_config(cls, params)


def create_attack(name: str, config: StealingConfig | None = None, **params: Any) -> StealingAttack:
    """Build a stealing attack by name, from a config or keyword values.

    Raises:
        UnknownNameError: not a registered attack.
        ValueError: invalid or unknown option, or both a config and keyword options.
    """
    attack: StealingAttack = _create_attack("stealing", name, config, **params)
    return attack
