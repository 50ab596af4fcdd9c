"""Combine the sections of an audit run once per seed into one section per audit: mean ± std over seeds.

Stages emit their tables with numbers as Python numbers or as formatted strings (``"0.812"``,
``"81.2%"``, ``"2,500"``, ``"12.3 s"``); both are read back as numbers, so either aggregates. A row is
named by its key columns: the leading columns that hold only text or whole numbers without a unit
(e.g. method and budget). Rows are matched by position when every seed lists the same keys in the
same order, otherwise by key. In a matched row a cell that is the same in every seed is kept as it
is; a number that varies becomes ``{"mean", "std", "n", ...}`` (sample standard deviation, rendered
``m ± s``); text that varies is listed ``a / b``. A row found in only some seeds is aggregated over those seeds and
marked ``[k/n seeds]``.

Headlines keep their wording with each varying number replaced by its mean across seeds, and end
with ``(mean of n seeds)``; when the seeds' headlines differ in wording, the largest group of seeds
that agree is averaged and the others are quoted per seed. The verdict is the risk level nearest the
mean of the seeds' levels (low 0, medium 1, high 2; a tie goes to the higher risk). Failed and
skipped seeds are left out of the aggregate and named in its caveats. Costs give the total over
seeds and the value of each seed. Figures are those of the first aggregated seed.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .schema import format_cell

_LEVELS = {"low": 0, "medium": 1, "high": 2}
_MISSING = {"", "-", "–", "—", "n/a", "nan"}
# a whole cell: a number with optional thousands commas, decimals, exponent, and a unit or percent sign
_CELL = re.compile(
    r"^\s*(?P<num>[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?(?:[eE][-+]?\d+)?)(?P<suffix>\s*(?:%|[A-Za-zµ][A-Za-z/µ]*))?\s*$"
)
# a number inside a sentence (a minus sign only where it cannot be a hyphen)
_IN_TEXT = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])")


@dataclass(frozen=True)
class _Num:
    value: float
    decimals: int | None  # digits after the point as written; None: free formatting
    suffix: str
    fractional: bool  # written with a fractional part (or a non-integral float): not a key


def _number(cell: Any) -> _Num | None:
    """The number a table cell holds, or None for text, missing values and booleans."""
    if isinstance(cell, bool) or cell is None:
        return None
    if isinstance(cell, int):
        return _Num(float(cell), 0, "", False)
    if isinstance(cell, float):
        if not math.isfinite(cell):
            return None
        text = repr(cell)
        decimals = len(text.split(".")[1]) if "." in text and "e" not in text else None
        if decimals is not None and decimals > 4:
            decimals = None
        return _Num(cell, decimals, "", True)
    if isinstance(cell, str):
        m = _CELL.match(cell)
        if m is None:
            return None
        frac = m.group("frac")
        return _Num(
            float(m.group("num").replace(",", "")), len(frac) - 1 if frac else 0, m.group("suffix") or "", bool(frac)
        )
    return None


def _missing(cell: Any) -> bool:
    if cell is None:
        return True
    if isinstance(cell, float) and not math.isfinite(cell):
        return True
    return isinstance(cell, str) and cell.strip().lower() in _MISSING


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _fmt(x: float, decimals: int | None) -> str:
    if decimals is None:
        return f"{x:.4g}" if abs(x) < 1000 else f"{x:,.0f}"
    return f"{x:,.{decimals}f}"


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (``None`` for one value)."""
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def aggregate_cells(cells: Sequence[Any], of: int | None = None) -> Any:
    """One cell from the same cell of several seeds (see the module docstring).

    Args:
        cells: the cell in each seed that has the row.
        of: how many seeds the run has (recorded when fewer cells are numbers).
    """
    if all(_same(c, cells[0]) for c in cells):
        return cells[0]
    present = [_number(c) for c in cells if not _missing(c)]
    nums = [n for n in present if n is not None]
    if nums and len(nums) == len(present) and len({n.suffix for n in nums}) == 1:
        values = [n.value for n in nums]
        mean, std = mean_std(values)
        decimals = [n.decimals for n in nums if n.decimals is not None]
        out: dict[str, Any] = {"mean": mean, "std": std, "n": len(values)}
        if len(decimals) == len(nums):
            out["decimals"] = max(decimals)
        elif std:  # free-form floats: the std to two significant digits, the mean to the same place
            out["decimals"] = min(max(1 - math.floor(math.log10(std)), 0), 6)
        if nums[0].suffix:
            out["suffix"] = nums[0].suffix
        if len(values) < (of or len(cells)):
            out["of"] = of or len(cells)
        return out
    distinct: list[str] = []
    for c in cells:
        text = "–" if c is None else str(c)
        if text not in distinct:
            distinct.append(text)
    return " / ".join(distinct)


def _key_columns(tables: Sequence[Mapping[str, Any]], width: int) -> list[int]:
    """The leading columns that name a row: text, or whole numbers without a unit (method, budget, ...)."""
    keys = []
    for i in range(width):
        nums = [_number(row[i]) for t in tables for row in t["rows"] if i < len(row)]
        if any(n is not None and (n.fractional or n.suffix) for n in nums):
            break
        keys.append(i)
    return keys


def aggregate_tables(tables: Sequence[Mapping[str, Any]], seeds: Sequence[Any]) -> dict[str, Any]:
    """One table from the same table of each seed (same title and columns).

    Raises:
        ValueError: the tables' columns differ.
    """
    first = tables[0]
    cols = list(first["columns"])
    for t in tables[1:]:
        if list(t["columns"]) != cols:
            raise ValueError(
                f"table {first.get('title')!r}: columns differ between seeds ({cols} vs {list(t['columns'])})"
            )
    n = len(tables)
    rows_by_seed = [list(t["rows"]) for t in tables]
    key_cols = _key_columns(tables, len(cols))

    def key(row: Sequence[Any]) -> tuple[str, ...]:
        return tuple(json.dumps(row[i], default=str) for i in key_cols if i < len(row))

    groups: list[list[Any]] = []  # per output row: the row of each seed (None where a seed lacks it)
    if len({len(r) for r in rows_by_seed}) == 1 and all(
        len({key(rows[i]) for rows in rows_by_seed}) == 1 for i in range(len(rows_by_seed[0]))
    ):
        groups = [[rows[i] for rows in rows_by_seed] for i in range(len(rows_by_seed[0]))]
    else:  # match by key (the k-th row with a key in one seed to the k-th with it in another)
        order: list[tuple[Any, ...]] = []
        found: dict[tuple[Any, ...], list[Any]] = {}
        for s, rows in enumerate(rows_by_seed):
            seen: dict[tuple[str, ...], int] = {}
            for row in rows:
                base = key(row)
                k = (*base, seen.get(base, 0))
                seen[base] = seen.get(base, 0) + 1
                if k not in found:
                    found[k] = [None] * n
                    order.append(k)
                found[k][s] = row
        groups = [found[k] for k in order]
    out_rows, partial = [], False
    for group in groups:
        have = [row for row in group if row is not None]
        row = [aggregate_cells([r[i] for r in have], of=len(have)) for i in range(len(cols) if cols else len(have[0]))]
        if len(have) < n and row:
            partial = True
            i = next((i for i, c in enumerate(row) if isinstance(c, str) and not _missing(c) and _number(c) is None), 0)
            row[i] = f"{format_cell(row[i])} [{len(have)}/{n} seeds]"
        out_rows.append(row)
    note_parts = [f"Mean ± sample std over {n} seeds ({', '.join(str(s) for s in seeds)})."]
    if partial:
        note_parts.append("Rows marked [k/n seeds] appear in only k of the n seeds and are averaged over those.")
    note = merge_texts([str(t.get("note", "")) for t in tables], mode="list")
    if note:
        note_parts.append(note)
    return {"title": str(first.get("title", "")), "columns": cols, "rows": out_rows, "note": " ".join(note_parts)}


def _template(text: str) -> tuple[str, list[str]]:
    return _IN_TEXT.sub("\x00", text), _IN_TEXT.findall(text)


def merge_texts(texts: Sequence[str], mode: str = "mean") -> str:
    """One sentence from the seeds' versions of it (same wording, numbers that may differ).

    ``mode="mean"`` replaces each varying number by its mean (written like the originals),
    ``"list"`` by the seeds' values ``{a, b}``. Texts that differ in wording are kept, de-duplicated,
    joined with `` | ``. Empty texts are ignored.
    """
    texts = [t for t in texts if t]
    if not texts:
        return ""
    templates = [_template(t) for t in texts]
    if any(tpl != templates[0][0] for tpl, _ in templates):
        out: list[str] = []
        for t in texts:
            if t not in out:
                out.append(t)
        return " | ".join(out)
    tpl, _ = templates[0]
    pieces = tpl.split("\x00")
    result = [pieces[0]]
    for j in range(len(pieces) - 1):
        tokens = [nums[j] for _, nums in templates]
        if len(set(tokens)) == 1:
            result.append(tokens[0])
        elif mode == "list":
            result.append("{" + ", ".join(tokens) + "}")
        else:
            decimals = max(len(t.split(".")[1]) if "." in t else 0 for t in tokens)
            value = statistics.fmean(float(t.replace(",", "")) for t in tokens)
            result.append(f"{value:,.{decimals}f}" if any("," in t for t in tokens) else f"{value:.{decimals}f}")
        result.append(pieces[j + 1])
    return "".join(result)


def _headline(entries: Sequence[tuple[Any, Mapping[str, Any]]]) -> str:
    groups: dict[str, list[tuple[Any, Mapping[str, Any]]]] = {}
    for seed, sec in entries:
        groups.setdefault(_template(sec["headline"])[0], []).append((seed, sec))
    ordered = sorted(groups.values(), key=len, reverse=True)
    main = ordered[0]
    text = merge_texts([sec["headline"] for _, sec in main], mode="mean").rstrip()
    end = "." if text.endswith(".") else ""
    text = text[:-1] if end else text
    verdicts = [sec["verdict"] for _, sec in entries]
    tag = f"mean of {len(main)} seeds" if len(main) > 1 else f"seed {main[0][0]}"
    if len(set(verdicts)) > 1:
        tag += "; per-seed risk " + ", ".join(verdicts)
    out = f"{text} ({tag}){end or '.'}"
    for group in ordered[1:]:
        for seed, sec in group:
            out += f" Seed {seed}: {sec['headline']}"
    return out


def _verdict(verdicts: Sequence[str]) -> str:
    if all(v == verdicts[0] for v in verdicts):
        return verdicts[0]
    levels = [_LEVELS[v] for v in verdicts if v in _LEVELS]
    if not levels:
        return verdicts[0]
    mean = statistics.fmean(levels)
    level = math.floor(mean + 0.5)
    return next(k for k, v in _LEVELS.items() if v == level)


def _costs(entries: Sequence[tuple[Any, Mapping[str, Any]]]) -> dict[str, Any]:
    keys: list[str] = []
    for _, sec in entries:
        keys += [k for k in sec.get("costs", {}) if k not in keys]
    out: dict[str, Any] = {"seeds": len(entries)}
    for k in keys:
        values = [sec.get("costs", {}).get(k) for _, sec in entries]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue  # nested or partial costs stay in the per-seed results
        if "per_" in k or "threads" in k:  # a rate, not an amount
            out[k] = values[0] if len(set(values)) == 1 else round(statistics.fmean(values), 6)
            continue
        total = sum(values)
        out[f"{k} (total)"] = round(total, 1) if isinstance(total, float) else total
        out[f"{k} per seed"] = (
            values[0]
            if len(set(values)) == 1
            else " / ".join(_fmt(v, None) if isinstance(v, float) else f"{v:,}" for v in values)
        )
    return out


def aggregate_section(entries: Sequence[tuple[Any, Mapping[str, Any]]]) -> dict[str, Any]:
    """One normalised section from ``[(seed, section), ...]`` of the same audit (see the module docstring)."""
    if len(entries) == 1:
        return dict(entries[0][1])
    ran = [(s, sec) for s, sec in entries if sec["verdict"] not in ("failed", "skipped")]
    left_out = [(s, sec) for s, sec in entries if sec["verdict"] in ("failed", "skipped")]
    first = dict(entries[0][1])
    if not ran:  # nothing to average: every seed failed or was skipped
        verdict = "failed" if any(sec["verdict"] == "failed" for _, sec in entries) else "skipped"
        headline = merge_texts([sec["headline"] for _, sec in entries], mode="list")
        caveats = _union([c for _, sec in entries for c in sec.get("caveats", [])])
        return {**first, "verdict": verdict, "headline": headline, "caveats": caveats, "tables": [], "figures": []}
    seeds = [s for s, _ in ran]
    if len(ran) == 1:
        section = dict(ran[0][1])
        section["headline"] = _headline(ran)
    else:
        section = {
            "title": ran[0][1]["title"],
            "verdict": _verdict([sec["verdict"] for _, sec in ran]),
            "headline": _headline(ran),
            "tables": _tables([sec for _, sec in ran], seeds),
            "figures": [
                {**fig, "caption": f"{fig['caption'].rstrip('.')} (seed {seeds[0]})."}
                for fig in ran[0][1].get("figures", [])
            ],
            "costs": _costs(ran),
            "config": _config(ran),
            "caveats": [],
        }
    caveats = [
        merge_texts(group, mode="list") for group in _grouped([c for _, sec in ran for c in sec.get("caveats", [])])
    ]
    caveats += [f"Seed {s} {sec['verdict']}: {sec['headline']}" for s, sec in left_out]
    section["caveats"] = caveats
    return section


def _tables(sections: Sequence[Mapping[str, Any]], seeds: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for i, table in enumerate(sections[0].get("tables", [])):
        same = [sec["tables"][i] for sec in sections if i < len(sec.get("tables", []))]
        if len(same) < len(sections) or any(t.get("title") != table.get("title") for t in same):
            out.append(
                {**table, "note": f"Seed {seeds[0]} only (the seeds' tables differ). {table.get('note', '')}".strip()}
            )
            continue
        try:
            out.append(aggregate_tables(same, seeds))
        except ValueError as exc:
            out.append({**table, "note": f"Seed {seeds[0]} only ({exc}). {table.get('note', '')}".strip()})
    return out


def _config(entries: Sequence[tuple[Any, Mapping[str, Any]]]) -> dict[str, Any]:
    configs = [dict(sec.get("config", {})) for _, sec in entries]
    stage_seeds = [c.pop("seed", None) for c in configs]
    out: dict[str, Any] = {"seeds": [s for s, _ in entries]}
    if any(s is not None for s in stage_seeds):
        out["stage seeds"] = stage_seeds
    out.update(configs[0])
    return out


def _grouped(texts: Sequence[str]) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    for t in texts:
        groups.setdefault(_template(t)[0], []).append(t)
    return list(groups.values())


def _union(texts: Sequence[str]) -> list[str]:
    out: list[str] = []
    for t in texts:
        if t not in out:
            out.append(t)
    return out


def aggregate_sections(per_seed: Mapping[Any, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """``{seed: {audit: section}}`` (normalised sections) -> ``{audit: section}`` over the seeds that have it."""
    names: list[str] = []
    for sections in per_seed.values():
        names += [k for k in sections if k not in names]
    return {
        name: aggregate_section([(seed, sections[name]) for seed, sections in per_seed.items() if name in sections])
        for name in names
    }
