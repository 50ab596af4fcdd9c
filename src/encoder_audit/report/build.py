"""Render ``report.md`` and ``report.html`` of a run directory from its ``results.json`` alone."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..io import atomic_write_text
from .html import render_html
from .markdown import render_markdown
from .schema import normalise_section


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
    if "sections" not in results:
        raise UserError(f"{path} has no audit sections (kind={results.get('kind')!r})")
    results["sections"] = {
        key: normalise_section(sec, title=key, run_dir=run_dir) for key, sec in results["sections"].items()
    }
    md = atomic_write_text(run_dir / "report.md", render_markdown(results))
    page = atomic_write_text(run_dir / "report.html", render_html(results, run_dir))
    return md, page
