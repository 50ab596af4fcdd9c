"""Reports: typed sections (:mod:`.model`), one aggregation over seeds, Markdown and self-contained HTML.

Rendered from a run's ``results.json`` alone; :mod:`.format` is the only place numbers become text.
"""

from __future__ import annotations

from .aggregate import aggregate_sections, summarize
from .build import build_report, load_sections
from .html import render_html
from .markdown import render_markdown
from .model import SCHEMA_VERSION, Column, Control, Figure, Section, Stat, Table, Text, Verdict, WhatToDo

__all__ = [
    "SCHEMA_VERSION",
    "Column",
    "Control",
    "Figure",
    "Section",
    "Stat",
    "Table",
    "Text",
    "Verdict",
    "WhatToDo",
    "aggregate_sections",
    "build_report",
    "load_sections",
    "render_html",
    "render_markdown",
    "summarize",
]
