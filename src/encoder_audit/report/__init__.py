"""Reports: Markdown and self-contained HTML rendered from a run's ``results.json`` alone."""

from __future__ import annotations

from .aggregate import aggregate_sections
from .build import build_report
from .html import render_html
from .markdown import render_markdown
from .schema import VERDICTS, Section, normalise_section

__all__ = [
    "VERDICTS",
    "Section",
    "aggregate_sections",
    "build_report",
    "normalise_section",
    "render_html",
    "render_markdown",
]
