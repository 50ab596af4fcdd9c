"""Render ``report.md`` and ``report.html`` of a run directory from its ``results.json`` alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..io import atomic_write_text
from .html import render_html
from .markdown import render_markdown
from .model import SCHEMA_VERSION, Section, upgrade_v1

__all__ = ["build_report", "load_sections"]


def load_sections(results: dict[str, Any], *, where: str = "results.json") -> dict[str, Section]:
    """The typed sections of a results dictionary (schema 2, or schema 1 read by :func:`upgrade_v1`).

    Raises:
        UserError: an unknown schema version or a malformed section.
    """
    version = results.get("schema_version", 1)
    raw = results.get("sections")
    if raw is None:
        per_seed = results.get("per_seed") or {}
        if len(per_seed) == 1:
            raw = next(iter(per_seed.values())).get("sections")
    if not isinstance(raw, dict):
        raise UserError(f"{where} has no audit sections (kind={results.get('kind')!r})")
    try:
        if version == 1:
            return {k: upgrade_v1(v, k) for k, v in raw.items()}
        if version == SCHEMA_VERSION:
            return {k: Section.from_dict(v, key=k) for k, v in raw.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{where}: a section is malformed ({exc})") from None
    raise UserError(
        f"{where} has results schema {version}; this encoder-audit reads schemas 1 and {SCHEMA_VERSION} "
        "(upgrade encoder-audit to render it)"
    )


def build_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``run_dir``; returns their paths.

    Raises:
        UserError: no readable ``results.json`` with audit sections.
    """
    run_dir = Path(run_dir)
    path = run_dir / "results.json"
    if not path.is_file():
        raise UserError(f"{path} not found: pass a run directory written by `encoder-audit audit`")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(results, dict):
        raise UserError(f"{path} does not hold a results object")
    sections = load_sections(results, where=str(path))
    md = atomic_write_text(run_dir / "report.md", render_markdown(results, sections))
    page = atomic_write_text(run_dir / "report.html", render_html(results, sections, run_dir))
    return md, page
