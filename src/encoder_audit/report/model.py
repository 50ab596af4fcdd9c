"""The typed shape of an audit report: sections made of numbers, turned into text only by the renderers.

A family audit returns a result dataclass of raw numbers; its *section builder* (a pure function in
``encoder_audit.audit.sections``) turns the result into a :class:`Section`:

- :class:`Table` of :class:`Column` s (name, unit, whether it is a key) and rows of numbers;
- a :class:`Text` headline: a ``str.format`` template and the values that fill it;
- a :class:`Verdict`: the risk level, the rule that chose it and the :class:`Control` s behind it
  (the same attack on a known-vulnerable target, which must fire, and on a null case, which must not);
- :class:`Figure` s (paths relative to the run directory), costs (numbers with units), the
  configuration, caveats and :class:`WhatToDo` (measured defenses with their cost, what is not covered).

Numbers stay numbers all the way into ``results.json`` (:data:`SCHEMA_VERSION`); aggregation over
seeds (:mod:`.aggregate`) turns a number into a :class:`Stat`; only :mod:`.markdown` and :mod:`.html`
format them. Old runs (schema 1, whose cells and headlines were text) are read by :func:`upgrade_v1`.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = 2

Level = Literal["high", "medium", "low", "inconclusive", "info", "skipped", "failed"]
LEVELS: tuple[str, ...] = ("high", "medium", "low", "inconclusive", "info", "skipped", "failed")

# One colour per level, the same meaning on every card: red is bad news for the reader of that section.
COLOURS: dict[str, str] = {
    "high": "#c62828",
    "medium": "#ef8f00",
    "low": "#2e7d32",
    "inconclusive": "#5d4037",
    "info": "#1565c0",
    "skipped": "#757575",
    "failed": "#6a1b9a",
}
DEFAULT_LABELS: dict[str, str] = {
    "high": "High risk",
    "medium": "Medium risk",
    "low": "Low risk",
    "inconclusive": "Inconclusive",
    "info": "Info",
    "skipped": "Not run",
    "failed": "Failed",
}
SECTION_ORDER = ["victim", "stealing", "membership", "poisoning", "protection"]


@dataclass(frozen=True)
class Stat:
    """A number summarised over repetitions (seeds, view draws, bootstrap resamples).

    Attributes:
        mean: the point estimate.
        std: sample standard deviation over the ``n`` values (None for one value).
        n: how many values were summarised.
        lo, hi: an interval (e.g. a bootstrap 95% interval), when one was computed.
        of: how many values there should have been (a row found in only some seeds has ``n < of``).
    """

    mean: float
    std: float | None = None
    n: int = 1
    lo: float | None = None
    hi: float | None = None
    of: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mean": self.mean}
        for key in ("std", "lo", "hi", "of"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["n"] = self.n
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Stat:
        return cls(
            mean=float(data["mean"]),
            std=None if data.get("std") is None else float(data["std"]),
            n=int(data.get("n", 1)),
            lo=None if data.get("lo") is None else float(data["lo"]),
            hi=None if data.get("hi") is None else float(data["hi"]),
            of=None if data.get("of") is None else int(data["of"]),
        )


Cell = int | float | str | bool | None | Stat


def cell_to_json(value: Cell) -> Any:
    """A cell as JSON: numbers stay numbers, NaN becomes null, a :class:`Stat` a ``{"mean", ...}`` object."""
    if isinstance(value, Stat):
        return value.to_dict()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def cell_from_json(value: Any) -> Cell:
    if isinstance(value, dict) and "mean" in value:
        return Stat.from_dict(value)
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    raise ValueError(f"a table cell must be a number, text, null or a stat object, got {value!r}")


def number(value: Cell) -> float | None:
    """The number a cell holds (a :class:`Stat` gives its mean), or None for text and missing values."""
    if isinstance(value, Stat):
        return value.mean
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class Column:
    """One table column.

    Attributes:
        name: the header.
        unit: how the numbers read: ``"%"`` (stored as a fraction in [0, 1], shown as a percentage),
            ``"s"`` (seconds), ``"count"`` (whole numbers with thousands separators), ``""`` (plain).
        is_key: the column names the row (method, budget, ...): rows of different seeds are matched on
            their key cells, and key cells are never averaged.
        decimals: digits after the point (None: 3 significant-ish digits, see the renderers).
        help: what the column measures, shown as a tooltip / footnote.
    """

    name: str
    unit: str = ""
    is_key: bool = False
    decimals: int | None = None
    help: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.unit:
            out["unit"] = self.unit
        if self.is_key:
            out["is_key"] = True
        if self.decimals is not None:
            out["decimals"] = self.decimals
        if self.help:
            out["help"] = self.help
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str) -> Column:
        if isinstance(data, str):
            return cls(name=data)
        return cls(
            name=str(data["name"]),
            unit=str(data.get("unit", "")),
            is_key=bool(data.get("is_key", False)),
            decimals=None if data.get("decimals") is None else int(data["decimals"]),
            help=str(data.get("help", "")),
        )


def key(name: str, **kw: Any) -> Column:
    """A key column (``key("method")``)."""
    return Column(name, is_key=True, **kw)


def pct(name: str, decimals: int = 1, **kw: Any) -> Column:
    """A column of fractions shown as percentages."""
    return Column(name, unit="%", decimals=decimals, **kw)


def num(name: str, decimals: int | None = 3, **kw: Any) -> Column:
    """A column of plain numbers."""
    return Column(name, decimals=decimals, **kw)


def count(name: str, **kw: Any) -> Column:
    """A column of whole numbers (images, calls, steps)."""
    return Column(name, unit="count", decimals=0, **kw)


def seconds(name: str, **kw: Any) -> Column:
    """A column of durations in seconds."""
    return Column(name, unit="s", decimals=1, **kw)


@dataclass
class Table:
    """A table of numbers.

    Raises:
        ValueError: a row whose length differs from the number of columns.
    """

    title: str
    columns: list[Column]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str = ""

    def __post_init__(self) -> None:
        self.columns = [c if isinstance(c, Column) else Column(str(c)) for c in self.columns]
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table {self.title!r}: row {row!r} has {len(row)} cells for {len(self.columns)} columns"
                )

    def add(self, *cells: Cell) -> None:
        """Append a row (checked against the columns)."""
        if len(cells) != len(self.columns):
            raise ValueError(f"table {self.title!r}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(list(cells))

    def index(self, name: str) -> int:
        """Position of the column called ``name``."""
        for i, c in enumerate(self.columns):
            if c.name == name:
                return i
        raise KeyError(f"table {self.title!r} has no column {name!r}")

    def records(self) -> list[dict[str, Cell]]:
        """Rows as ``{column name: cell}``."""
        return [{c.name: v for c, v in zip(self.columns, row)} for row in self.rows]

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "columns": [c.to_dict() for c in self.columns],
            "rows": [[cell_to_json(v) for v in row] for row in self.rows],
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Table:
        return cls(
            title=str(data.get("title", "")),
            columns=[Column.from_dict(c) for c in data.get("columns", [])],
            rows=[[cell_from_json(v) for v in row] for row in data.get("rows", [])],
            note=str(data.get("note", "")),
        )


class _StatFormatter(string.Formatter):
    """``str.format`` that writes a :class:`Stat` as ``mean ± std`` (each with the field's format spec)."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, Stat):
            text = self._one(value.mean, format_spec)
            if value.std is not None:
                text += " ± " + self._one(value.std, format_spec)
            return text
        return self._one(value, format_spec)

    def _one(self, value: Any, spec: str) -> str:
        if value is None:
            return "n/a"
        if isinstance(value, float) and not math.isfinite(value):
            return "n/a"
        try:
            return format(value, spec)
        except (ValueError, TypeError):
            return format(value)


_FORMATTER = _StatFormatter()


@dataclass
class Text:
    """A sentence with numbers in it: a ``str.format`` template and its values.

    >>> Text("AUC {auc:.2f} on {n:,} images", {"auc": 0.8123, "n": 1000}).render()
    'AUC 0.81 on 1,000 images'
    >>> Text("AUC {auc:.2f}", {"auc": Stat(0.8, 0.05, n=3)}).render()
    'AUC 0.80 ± 0.05'
    """

    template: str
    values: dict[str, Cell] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = {f for _, f, _, _ in string.Formatter().parse(self.template) if f}
        missing = {n.split(".")[0].split("[")[0] for n in names} - set(self.values)
        if missing:
            raise ValueError(f"text {self.template!r} names values {sorted(missing)} that are not given")

    def render(self) -> str:
        return _FORMATTER.vformat(self.template, (), self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"template": self.template, "values": {k: cell_to_json(v) for k, v in self.values.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str) -> Text:
        if isinstance(data, str):
            return literal(data)
        return cls(str(data["template"]), {k: cell_from_json(v) for k, v in dict(data.get("values", {})).items()})


def literal(text: str) -> Text:
    """A :class:`Text` without values (braces in ``text`` are kept as written)."""
    return Text(text.replace("{", "{{").replace("}", "}}"))


@dataclass
class Control:
    """The same attack run on a case whose answer is known.

    Attributes:
        name: what the case is ("known-leaking target trained by the audit", "shuffled membership").
        kind: ``positive`` (a known-vulnerable target: the attack must fire) or ``negative`` (a null
            case: the attack must not fire).
        metric: the quantity compared with ``threshold`` ("AUC", "fidelity").
        value: its value on the control.
        threshold: where the attack counts as having fired (``value >= threshold``).
        fired: whether it fired on the control.
    """

    name: str
    kind: Literal["positive", "negative"]
    metric: str
    value: Cell
    threshold: float
    fired: bool

    @property
    def passed(self) -> bool:
        """A positive control passes when the attack fired on it, a negative one when it did not."""
        return self.fired if self.kind == "positive" else not self.fired

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "metric": self.metric,
            "value": cell_to_json(self.value),
            "threshold": self.threshold,
            "fired": self.fired,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Control:
        kind = data["kind"]
        if kind not in ("positive", "negative"):
            raise ValueError(f"control kind must be positive or negative, got {kind!r}")
        return cls(
            name=str(data["name"]),
            kind=kind,
            metric=str(data["metric"]),
            value=cell_from_json(data.get("value")),
            threshold=float(data["threshold"]),
            fired=bool(data["fired"]),
        )


@dataclass
class Verdict:
    """The section's risk level, the rule that chose it and the controls that back it.

    A ``low`` verdict ("no risk found") stands only when every positive control fired: otherwise
    :func:`Verdict.checked` turns it into ``inconclusive`` (the attack is underpowered here).
    """

    level: str
    rule: str = ""
    controls: list[Control] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"verdict level must be one of {list(LEVELS)}, got {self.level!r}")

    @property
    def controls_passed(self) -> bool:
        return all(c.passed for c in self.controls)

    def checked(self) -> Verdict:
        """This verdict, downgraded to ``inconclusive`` when it says "low" but a positive control did not fire."""
        positives = [c for c in self.controls if c.kind == "positive"]
        if self.level == "low" and positives and not all(c.passed for c in positives):
            return Verdict(
                "inconclusive",
                self.rule + " — but the attack did not fire on its positive control, so 'low' cannot be claimed",
                self.controls,
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "rule": self.rule, "controls": [c.to_dict() for c in self.controls]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str) -> Verdict:
        if isinstance(data, str):
            return cls(data)
        return cls(
            str(data["level"]),
            str(data.get("rule", "")),
            [Control.from_dict(c) for c in data.get("controls", [])],
        )


@dataclass
class Figure:
    """A figure file, its path relative to the run directory (POSIX separators)."""

    path: str
    caption: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "caption": self.caption}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Figure:
        return cls(str(data["path"]), str(data.get("caption", "")))


@dataclass
class WhatToDo:
    """The section's advice: measured defenses with their cost to honest users, and the evidence's limits.

    Attributes:
        advice: recommendations, each backed by a number measured in this section.
        defenses: the defenses measured here (effect and honest-user cost), if any were.
        not_covered: what the evidence does not cover.
    """

    advice: list[Text] = field(default_factory=list)
    defenses: Table | None = None
    not_covered: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.advice or self.defenses or self.not_covered)

    def to_dict(self) -> dict[str, Any]:
        return {
            "advice": [a.to_dict() for a in self.advice],
            "defenses": None if self.defenses is None else self.defenses.to_dict(),
            "not_covered": list(self.not_covered),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> WhatToDo:
        if not data:
            return cls()
        return cls(
            [Text.from_dict(a) for a in data.get("advice", [])],
            None if data.get("defenses") is None else Table.from_dict(data["defenses"]),
            [str(x) for x in data.get("not_covered", [])],
        )


@dataclass
class Section:
    """One audit's part of the report (see the module docstring).

    Attributes:
        key: ``victim``, ``stealing``, ``membership``, ``poisoning`` or ``protection``.
        title: the heading.
        headline: the one sentence with the number that matters.
        verdict: level, rule and controls.
        labels: wording of the levels on this section's card where it differs from
            :data:`DEFAULT_LABELS` (data protection reads "Protection fails" / "Protection holds").
        tables, figures: the evidence.
        costs: what the audit spent, ``{name: number}``; names ending in ``_seconds`` are durations,
            ``query_images`` / ``api_calls`` counts.
        config: the resolved configuration of this section.
        caveats: what limits the finding.
        todo: what to do about it.
        seeds: how many seeds this section summarises (1 unless aggregated).
    """

    key: str
    title: str
    headline: Text
    verdict: Verdict
    labels: dict[str, str] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    costs: dict[str, Cell] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    caveats: list[str] = field(default_factory=list)
    todo: WhatToDo = field(default_factory=WhatToDo)
    seeds: int = 1

    def label(self) -> str:
        """The card's wording of the verdict level."""
        return self.labels.get(self.verdict.level, DEFAULT_LABELS[self.verdict.level])

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "headline": self.headline.to_dict(),
            "verdict": self.verdict.to_dict(),
            "labels": dict(self.labels),
            "tables": [t.to_dict() for t in self.tables],
            "figures": [f.to_dict() for f in self.figures],
            "costs": {k: cell_to_json(v) for k, v in self.costs.items()},
            "config": self.config,
            "caveats": list(self.caveats),
            "todo": self.todo.to_dict(),
            "seeds": self.seeds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, key: str | None = None) -> Section:
        """Read a section written by :meth:`to_dict`.

        Raises:
            ValueError: a malformed section (unknown level, ragged table, ...).
        """
        k = str(data.get("key") or key or "")
        return cls(
            key=k,
            title=str(data.get("title", k)),
            headline=Text.from_dict(data.get("headline", "")),
            verdict=Verdict.from_dict(data.get("verdict", "skipped")),
            labels={str(a): str(b) for a, b in dict(data.get("labels", {})).items()},
            tables=[Table.from_dict(t) for t in data.get("tables", [])],
            figures=[Figure.from_dict(f) for f in data.get("figures", [])],
            costs={str(a): cell_from_json(b) for a, b in dict(data.get("costs", {})).items()},
            config=dict(data.get("config", {})),
            caveats=[str(c) for c in data.get("caveats", [])],
            todo=WhatToDo.from_dict(data.get("todo")),
            seeds=int(data.get("seeds", 1)),
        )


def status_section(key: str, title: str, level: str, message: str, caveats: Sequence[str] = ()) -> Section:
    """A section that only says why it holds no results (``skipped`` or ``failed``)."""
    return Section(key=key, title=title, headline=literal(message), verdict=Verdict(level), caveats=list(caveats))


# --------------------------------------------------------------------------------------------- schema 1


def _v1_cell(value: Any) -> Cell:
    if isinstance(value, dict) and "mean" in value:
        return Stat(
            mean=float(value["mean"]),
            std=None if value.get("std") is None else float(value["std"]),
            n=int(value.get("n") or 1),
            of=None if value.get("of") is None else int(value["of"]),
        )
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)


def _v1_costs(costs: Mapping[str, Any]) -> dict[str, Cell]:
    out: dict[str, Cell] = {}
    for k, v in costs.items():
        if isinstance(v, dict) and "mean" not in v:
            continue  # nested per-attack timing: not a cost line
        out[str(k)] = _v1_cell(v)
    return out


def upgrade_v1(data: Mapping[str, Any], key: str) -> Section:
    """A schema-1 section (text cells, text headline, verdict as a word) as a :class:`Section`."""
    level = str(data.get("verdict", "skipped"))
    if level not in LEVELS:
        raise ValueError(f"section {key!r}: unknown verdict {level!r}")
    tables = []
    for t in data.get("tables", []):
        cols = [Column(str(c)) for c in t.get("columns", [])]
        rows = []
        for row in t.get("rows", []):
            if isinstance(row, dict):
                row = [row.get(c.name, "") for c in cols]
            rows.append([_v1_cell(v) for v in row])
        tables.append(Table(str(t.get("title", "")), cols, rows, str(t.get("note", ""))))
    return Section(
        key=key,
        title=str(data.get("title", key)),
        headline=literal(str(data.get("headline", ""))),
        verdict=Verdict(level, "(written by an older version: the rule was not recorded)"),
        tables=tables,
        figures=[Figure.from_dict(f) for f in data.get("figures", [])],
        costs=_v1_costs(dict(data.get("costs", {}))),
        config=dict(data.get("config", {})),
        caveats=[str(c) for c in data.get("caveats", [])],
    )
