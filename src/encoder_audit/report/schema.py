"""The shape of an audit section in ``results.json`` (schema version 1).

Each audit contributes one section::

    {
      "title": "Encoder stealing",
      "verdict": "high" | "medium" | "low" | "skipped" | "failed",
      "headline": "one sentence with the number that matters",
      "tables": [{"title": str, "columns": [str], "rows": [[cell, ...]], "note": str}],
      "figures": [{"path": "stealing/sweep.png", "caption": str}],   # relative to the run directory
      "costs": {"query_images": int, "api_calls": int, "wall_seconds": float, ...},
      "config": {...},
      "caveats": [str, ...]
    }

Rows may also be dictionaries keyed by column name. Cells are numbers or strings; a cell that is a
``{"mean": m, "std": s}`` mapping renders as ``m ± s`` (optional keys: ``decimals`` to write both
with, ``suffix`` such as ``"%"`` written after them, ``n`` values averaged out of ``of`` seeds).

A run with several seeds keeps each seed's sections under ``per_seed`` and their aggregate (see
:mod:`.aggregate`) under ``sections``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERDICTS = {
    "high": ("High risk", "#c62828"),
    "medium": ("Medium risk", "#ef8f00"),
    "low": ("Low risk", "#2e7d32"),
    "info": ("Info", "#1565c0"),
    "skipped": ("Not run", "#757575"),
    "failed": ("Failed", "#6a1b9a"),
}

SECTION_ORDER = ["victim", "stealing", "membership", "poisoning", "protection"]


@dataclass
class Section:
    """Typed view of one section (see the module docstring)."""

    title: str
    verdict: str = "skipped"
    headline: str = ""
    tables: list[dict[str, Any]] = field(default_factory=list)
    figures: list[dict[str, str]] = field(default_factory=list)
    costs: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    caveats: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "verdict": self.verdict,
            "headline": self.headline,
            "tables": self.tables,
            "figures": self.figures,
            "costs": self.costs,
            "config": self.config,
            "caveats": self.caveats,
        }


def normalise_section(raw: dict[str, Any], *, title: str, run_dir: Path | None = None) -> dict[str, Any]:
    """Fill defaults, check the verdict, make figure paths relative to ``run_dir``, rows to lists.

    Raises:
        ValueError: unknown verdict or a table whose rows do not match its columns.
    """
    sec = Section(title=raw.get("title", title))
    verdict = raw.get("verdict", "skipped")
    if verdict not in VERDICTS:
        raise ValueError(f"section {title!r}: verdict must be one of {sorted(VERDICTS)}, got {verdict!r}")
    sec.verdict = verdict
    sec.headline = str(raw.get("headline", ""))
    for table in raw.get("tables", []):
        cols = [str(c) for c in table.get("columns", [])]
        rows = []
        for row in table.get("rows", []):
            if isinstance(row, dict):
                row = [row.get(c, "") for c in cols]
            if cols and len(row) != len(cols):
                raise ValueError(f"section {title!r}, table {table.get('title')!r}: row {row} has {len(row)} cells")
            rows.append(list(row))
        sec.tables.append(
            {"title": str(table.get("title", "")), "columns": cols, "rows": rows, "note": str(table.get("note", ""))}
        )
    for fig in raw.get("figures", []):
        path = Path(fig["path"])
        if run_dir is not None and path.is_absolute():
            with contextlib.suppress(ValueError):
                path = path.resolve().relative_to(Path(run_dir).resolve())
        sec.figures.append({"path": str(path), "caption": str(fig.get("caption", ""))})
    sec.costs = dict(raw.get("costs", {}))
    sec.config = dict(raw.get("config", {}))
    sec.caveats = [str(c) for c in raw.get("caveats", [])]
    return sec.to_dict()


def format_cell(value: Any) -> str:
    """Human formatting: floats in [0, 1] as percentages only when the column says so is left to callers;
    here floats get 4 significant digits, ``{"mean","std"}`` becomes ``m ± s``."""
    if isinstance(value, dict) and "mean" in value:
        decimals, suffix = value.get("decimals"), value.get("suffix", "")

        def num(x: Any) -> str:
            return f"{x:,.{decimals}f}" if decimals is not None and isinstance(x, (int, float)) else format_cell(x)

        std = value.get("std")
        text = f"{num(value['mean'])} ± {num(std)}" if std is not None else num(value["mean"])
        if value.get("of") and value.get("n") is not None and value["n"] < value["of"]:
            suffix += f" (n={value['n']})"
        return text + suffix
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return "–" if value is None else str(value)
