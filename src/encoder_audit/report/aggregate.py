"""The one place repeated measurements are summarised: numbers in, numbers out.

:func:`summarize` turns repeated values into a :class:`~.model.Stat` (mean, sample standard
deviation, count, optionally a 95% interval); the suites, the benchmark reports and the audit's
multi-seed report all use it. :func:`aggregate_sections` combines the typed sections of several
seeds into one section per audit:

- tables: rows are matched on their key columns (``Column.is_key``); every other number becomes a
  :class:`Stat` over the seeds that have the row (``n`` of ``of``); text that differs is listed
  ``a / b``;
- headline and advice: the template of the largest group of seeds that agree on the template and on
  its text values (e.g. which attack was strongest); numbers become stats over that group; seeds that
  disagree are named in a caveat;
- verdict: the risk level nearest the mean of the seeds' levels (low 0, medium 1, high 2; a tie goes
  to the higher risk); ``inconclusive`` if any seed was; controls aggregated like cells, a control
  fired only if it fired in every seed, and the rule says how many did;
- costs: the mean per seed (a :class:`Stat`); figures: those of the first seed.

Failed and skipped seeds are left out and named in the caveats.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from .model import Cell, Control, Section, Stat, Table, Text, Verdict, WhatToDo, number, status_section

__all__ = ["aggregate_cells", "aggregate_sections", "aggregate_tables", "summarize"]

_LEVELS = {"low": 0, "medium": 1, "high": 2}
_NAMES = {v: k for k, v in _LEVELS.items()}

# two-sided 97.5% quantiles of Student's t for small samples (df 1..30); beyond, the normal 1.96
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]  # fmt: skip


def summarize(values: Sequence[float], *, interval: bool = False, of: int | None = None) -> Stat:
    """Mean, sample standard deviation and count of ``values`` (non-finite values are dropped).

    Args:
        values: the repeated measurements.
        interval: add the 95% Student-t interval of the mean (``lo``, ``hi``).
        of: how many values there should have been (recorded when more than were given).

    Raises:
        ValueError: no finite value.

    >>> summarize([0.8, 0.9, 1.0]).mean
    0.9
    """
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        raise ValueError("summarize needs at least one finite value")
    mean = statistics.fmean(vals)
    std = statistics.stdev(vals) if len(vals) > 1 else None
    lo = hi = None
    if interval and std is not None:
        t = _T975[len(vals) - 2] if len(vals) - 1 <= len(_T975) else 1.96
        half = t * std / math.sqrt(len(vals))
        lo, hi = mean - half, mean + half
    return Stat(mean, std, len(vals), lo, hi, of if of is not None and of > len(vals) else None)


def aggregate_cells(cells: Sequence[Cell], of: int | None = None) -> Cell:
    """One cell from the same cell of several seeds.

    Numbers (or stats, by their means) that agree stay as they are; numbers that vary become a
    :class:`Stat`; missing values are left out; texts that vary are joined with `` / ``.
    """
    present = [c for c in cells if c is not None and not (isinstance(c, float) and not math.isfinite(c))]
    if not present:
        return None
    nums = [number(c) for c in present]
    if all(n is not None for n in nums) and not any(isinstance(c, (bool, str)) for c in present):
        values = [float(n) for n in nums if n is not None]
        total = of if of is not None else len(cells)
        if len(set(values)) == 1 and len(values) == total and not any(isinstance(c, Stat) for c in present):
            return present[0]
        return summarize(values, of=total)
    texts = list(dict.fromkeys("–" if c is None else str(c) for c in present))
    return texts[0] if len(texts) == 1 else " / ".join(texts)


def _row_key(table: Table, row: Sequence[Cell]) -> tuple[Any, ...]:
    keys = [i for i, c in enumerate(table.columns) if c.is_key]
    return tuple(row[i] for i in keys) if keys else ()


def aggregate_tables(tables: Sequence[Table]) -> Table:
    """One table from the same table of several seeds, rows matched on their key columns.

    Without key columns rows are matched by position. A row present in only some seeds is
    aggregated over those (its stats carry ``n`` of ``of``).

    Raises:
        ValueError: the tables' columns differ.
    """
    first = tables[0]
    names = [c.name for c in first.columns]
    for t in tables[1:]:
        if [c.name for c in t.columns] != names:
            raise ValueError(f"table {first.title!r}: columns differ between seeds")
    keyed = any(c.is_key for c in first.columns)
    order: list[tuple[Any, ...]] = []
    groups: dict[tuple[Any, ...], list[list[Cell]]] = {}
    for t in tables:
        for pos, row in enumerate(t.rows):
            k = _row_key(t, row) if keyed else (pos,)
            if k not in groups:
                groups[k] = []
                order.append(k)
            groups[k].append(row)
    out = Table(first.title, list(first.columns), note=first.note)
    n = len(tables)
    for k in order:
        rows = groups[k]
        cells: list[Cell] = []
        for i, col in enumerate(first.columns):
            if col.is_key:
                cells.append(rows[0][i])
            else:
                cells.append(aggregate_cells([r[i] for r in rows] + [None] * (n - len(rows)), of=n))
        out.rows.append(cells)
    return out


def _text_group_key(text: Text) -> tuple[Any, ...]:
    return (text.template, tuple(sorted((k, v) for k, v in text.values.items() if isinstance(v, (str, bool)))))


def _aggregate_texts(texts: Sequence[Text], seeds: Sequence[Any]) -> tuple[Text, list[str]]:
    """The largest group of agreeing texts, numbers averaged; caveats naming the seeds outside it."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, t in enumerate(texts):
        groups.setdefault(_text_group_key(t), []).append(i)
    best = max(groups.values(), key=len)
    members = [texts[i] for i in best]
    values: dict[str, Cell] = {}
    for name, v in members[0].values.items():
        if isinstance(v, (str, bool)) or v is None:
            values[name] = v
        else:
            values[name] = aggregate_cells([m.values.get(name) for m in members])
    notes = []
    if len(best) < len(texts):
        others = [i for i in range(len(texts)) if i not in best]
        notes.append(
            "Seeds disagree: the headline averages seeds "
            + ", ".join(str(seeds[i]) for i in best)
            + "; "
            + "; ".join(f"seed {seeds[i]}: {texts[i].render()}" for i in others)
        )
    return Text(members[0].template, values), notes


def _aggregate_verdicts(verdicts: Sequence[Verdict]) -> Verdict:
    levels = [v.level for v in verdicts]
    first = verdicts[0]
    if "inconclusive" in levels:
        level = "inconclusive"
    elif all(lv in _LEVELS for lv in levels):
        mean = statistics.fmean(_LEVELS[lv] for lv in levels)
        level = _NAMES[min(2, math.floor(mean + 0.5))]
    else:
        level = Counter(levels).most_common(1)[0][0]
    controls = []
    by_name: dict[tuple[str, str], list[Control]] = {}
    for v in verdicts:
        for c in v.controls:
            by_name.setdefault((c.name, c.kind), []).append(c)
    for (name, kind), cs in by_name.items():
        fired = sum(c.fired for c in cs)
        controls.append(
            Control(
                name,
                kind,  # type: ignore[arg-type]
                cs[0].metric,
                aggregate_cells([c.value for c in cs]),
                cs[0].threshold,
                fired == len(cs) if kind == "positive" else fired > 0,
            )
        )
    rule = first.rule
    if len(set(levels)) > 1:
        rule += f" (seeds' levels: {', '.join(levels)}; the report shows the level nearest their mean)"
    return Verdict(level, rule, controls)


def _aggregate_section(entries: Sequence[tuple[Any, Section]]) -> Section:
    seeds = [s for s, _ in entries]
    secs = [sec for _, sec in entries]
    ok = [(s, sec) for s, sec in entries if sec.verdict.level not in ("failed", "skipped")]
    if not ok:
        return secs[0]
    left_out = [f"seed {s}: {sec.verdict.level} ({sec.headline.render()})" for s, sec in entries if (s, sec) not in ok]
    seeds = [s for s, _ in ok]
    secs = [sec for _, sec in ok]
    first = secs[0]
    headline, notes = _aggregate_texts([s.headline for s in secs], seeds)
    tables = []
    for i, t in enumerate(first.tables):
        same = [s.tables[i] for s in secs if i < len(s.tables) and s.tables[i].title == t.title]
        try:
            tables.append(aggregate_tables(same))
        except ValueError:
            tables.append(t)
    costs: dict[str, Cell] = {}
    for name in first.costs:
        costs[name] = aggregate_cells([s.costs.get(name) for s in secs])
    advice = []
    for i in range(len(first.todo.advice)):
        same_a = [s.todo.advice[i] for s in secs if i < len(s.todo.advice)]
        text, _ = _aggregate_texts(same_a, seeds)
        advice.append(text)
    defenses = None
    if first.todo.defenses is not None:
        dts = [s.todo.defenses for s in secs if s.todo.defenses is not None]
        try:
            defenses = aggregate_tables(dts)
        except ValueError:
            defenses = first.todo.defenses
    caveats = list(dict.fromkeys(c for s in secs for c in s.caveats))
    caveats += notes
    if left_out:
        caveats.append("Left out of the aggregate: " + "; ".join(left_out))
    return Section(
        key=first.key,
        title=first.title,
        headline=headline,
        verdict=_aggregate_verdicts([s.verdict for s in secs]),
        labels=dict(first.labels),
        tables=tables,
        figures=list(first.figures),
        costs=costs,
        config=dict(first.config),
        caveats=caveats,
        todo=WhatToDo(advice, defenses, list(first.todo.not_covered)),
        seeds=len(secs),
    )


def aggregate_sections(per_seed: Mapping[Any, Mapping[str, Section]]) -> dict[str, Section]:
    """One section per audit from the sections of every seed (see the module docstring)."""
    keys: list[str] = []
    for sections in per_seed.values():
        for k in sections:
            if k not in keys:
                keys.append(k)
    out: dict[str, Section] = {}
    for k in keys:
        entries = [(seed, secs[k]) for seed, secs in per_seed.items() if k in secs]
        if not entries:
            continue
        try:
            out[k] = _aggregate_section(entries)
        except ValueError as exc:
            first = entries[0][1]
            out[k] = status_section(k, first.title, "failed", f"could not aggregate the seeds: {exc}")
    return out
