"""Numbers to text, the one place it happens (used by the Markdown and HTML renderers)."""

from __future__ import annotations

import math
from typing import Any

from .model import Cell, Column, Stat, Table

__all__ = ["cost_table", "format_cell", "format_number"]


def format_number(value: float, column: Column | None = None) -> str:
    """``value`` as its column reads: percentages, counts, seconds or plain numbers."""
    if not math.isfinite(value):
        return "–"
    unit = column.unit if column else ""
    decimals = column.decimals if column else None
    if unit == "%":
        return f"{100 * value:.{1 if decimals is None else decimals}f}%"
    if unit == "count":
        return f"{value:,.0f}"
    if unit == "s":
        return f"{value:,.{1 if decimals is None else decimals}f} s"
    if decimals is not None:
        return f"{value:,.{decimals}f}"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def format_cell(value: Cell, column: Column | None = None) -> str:
    """A table cell as text; a :class:`Stat` reads ``mean ± std`` (``[lo, hi]`` when it has an interval,
    ``(n=2 of 3)`` when some seeds lack the row)."""
    if isinstance(value, Stat):
        text = format_number(value.mean, column)
        if value.lo is not None and value.hi is not None:
            text += f" [{format_number(value.lo, column)}, {format_number(value.hi, column)}]"
        elif value.std is not None:
            text += " ± " + format_number(value.std, column)
        if value.of is not None and value.n < value.of:
            text += f" (n={value.n} of {value.of})"
        return text
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return format_number(float(value), column)
    return str(value)


_COST_NAMES = {
    "query_images": "query images charged",
    "api_calls": "API calls",
    "wall_seconds": "wall time",
}


def cost_table(costs: dict[str, Any]) -> Table:
    """A section's costs as a two-column table with units read from the names."""
    table = Table("Costs", [Column("cost", is_key=True), Column("value")])
    for name, value in costs.items():
        label = _COST_NAMES.get(name, name.replace("_", " "))
        if name.endswith("_seconds"):
            label = label.removesuffix(" seconds") if name != "wall_seconds" else label
            text = format_cell(value, Column("", unit="s"))
        elif name in ("query_images", "api_calls") or name.endswith(("_images", "_calls", "_queries")):
            text = format_cell(value, Column("", unit="count"))
        else:
            text = format_cell(value)
        table.rows.append([label, text])
    return table
