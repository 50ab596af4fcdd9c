"""Defenses: output perturbations a provider applies to served embeddings, and more."""

from __future__ import annotations

from . import b4b as _b4b  # noqa: F401  (registers the "b4b" defense)
from .output import DEFENSES, DefendedEncoder, OutputDefense, create_defense, parse_defense_spec, register_defense

__all__ = ["DEFENSES", "DefendedEncoder", "OutputDefense", "create_defense", "parse_defense_spec", "register_defense"]
