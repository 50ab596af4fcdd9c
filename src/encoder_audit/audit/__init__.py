"""The main job: every audit against one encoder, resumable stage by stage, rendered as one report."""

from __future__ import annotations

from .plan import AUDIT_PRESETS, AuditConfig, AuditData, prepare_data
from .runner import STAGES, run_audit

__all__ = ["AUDIT_PRESETS", "STAGES", "AuditConfig", "AuditData", "prepare_data", "run_audit"]
