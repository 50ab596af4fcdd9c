"""Render ``report.md`` and ``report.html`` of a run directory from its ``results.json`` alone."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..io import atomic_write_text
from .aggregate import aggregate_sections
from .html import render_html
from .markdown import render_markdown
from .schema import normalise_section


def build_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``run_dir``; returns their paths.

    A run with several seeds (``per_seed`` holding more than one) is rendered as the mean ± std of its
    seeds, aggregated again from their sections.

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
    per_seed = results.get("per_seed") or {}
    if "sections" not in results and not per_seed:
        raise UserError(f"{path} has no audit sections (kind={results.get('kind')!r})")
    if "sections" not in results and len(per_seed) == 1:
        results["sections"] = dict(next(iter(per_seed.values())).get("sections") or {})
    if len(per_seed) > 1:
        if not all(isinstance(v, dict) and isinstance(v.get("sections"), dict) for v in per_seed.values()):
            raise UserError(f"{path}: every entry of per_seed needs its sections")
        results["sections"] = aggregate_sections(
            {
                int(seed) if str(seed).isdigit() else seed: {
                    key: normalise_section(sec, title=key, run_dir=run_dir) for key, sec in v["sections"].items()
                }
                for seed, v in per_seed.items()
            }
        )
        if "victim" in results["sections"]:
            results.setdefault("victim", {})["description"] = results["sections"]["victim"]["headline"]
    results["sections"] = {
        key: normalise_section(sec, title=key, run_dir=run_dir) for key, sec in results["sections"].items()
    }
    md = atomic_write_text(run_dir / "report.md", render_markdown(results))
    page = atomic_write_text(run_dir / "report.html", render_html(results, run_dir))
    return md, page
