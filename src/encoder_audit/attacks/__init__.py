"""Attacks on encoders, one subpackage per family (``stealing``, ...).

Every attack sees its victim only through the :class:`~encoder_audit.victim.Encoder` protocol and
reports what it cost in queries with :func:`~encoder_audit.attacks.base.query_usage`. Import the
family you need (``from encoder_audit.attacks.stealing import create_attack``); importing this package
does nothing else.
"""

from __future__ import annotations

from .base import metered, query_usage

__all__ = ["metered", "query_usage"]
