"""Batched view generators on tensors (SimCLR, MoCo, RDA, EncoderMI, StolenEncoder recipes)."""

from __future__ import annotations

from .views import VIEWS, ViewConfig, ViewGenerator, create_views, register_views

__all__ = ["VIEWS", "ViewConfig", "ViewGenerator", "create_views", "register_views"]
