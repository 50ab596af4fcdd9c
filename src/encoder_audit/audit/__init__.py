"""The main job: every audit against one encoder, resumable stage by stage, rendered as one report.

>>> from encoder_audit.audit import resolve_config
>>> resolve_config("smoke", overrides=["stealing.budgets=[500,5000]"]).stealing.budgets
(500, 5000)
"""

from __future__ import annotations

from .config import PRESETS, SECTIONS, AuditConfig, preset_config, resolve_config
from .plan import AuditData, prepare_data
from .runner import run_audit

__all__ = [
    "PRESETS",
    "SECTIONS",
    "AuditConfig",
    "AuditData",
    "prepare_data",
    "preset_config",
    "resolve_config",
    "run_audit",
]
