"""The typed report model: validation, rendering of templates, JSON round trips, the controls rule."""

from __future__ import annotations

import json

import pytest

from encoder_audit.report.model import (
    Column,
    Control,
    Section,
    Stat,
    Table,
    Text,
    Verdict,
    literal,
    number,
    upgrade_v1,
)

from .conftest import stealing_section


def test_a_section_round_trips_through_json_with_numbers_kept_numbers() -> None:
    sec = stealing_section()
    data = json.loads(json.dumps(sec.to_dict()))
    assert data["tables"][0]["rows"][0] == ["rda", 2500, 0.81, 0.9]
    assert data["headline"]["values"]["fid"] == 0.9
    back = Section.from_dict(data)
    assert back == sec


def test_stats_and_nan_serialise() -> None:
    t = Table("t", [Column("a"), Column("b")], [[Stat(0.5, 0.1, n=3, lo=0.3, hi=0.7), float("nan")]])
    data = t.to_dict()
    assert data["rows"][0] == [{"mean": 0.5, "std": 0.1, "lo": 0.3, "hi": 0.7, "n": 3}, None]
    assert Table.from_dict(data).rows[0][0] == Stat(0.5, 0.1, n=3, lo=0.3, hi=0.7)


def test_a_ragged_row_is_refused() -> None:
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        Table("t", [Column("a"), Column("b"), Column("c")], [[1, 2]])


def test_text_renders_stats_with_the_fields_format() -> None:
    assert Text("{x:.1%}", {"x": Stat(0.812, 0.021, n=3)}).render() == "81.2% ± 2.1%"
    assert Text("{x:.2f} and {y}", {"x": None, "y": "rda"}).render() == "n/a and rda"
    with pytest.raises(ValueError, match=r"missing|not given"):
        Text("{x} {y}", {"x": 1})
    assert literal("a {b} c").render() == "a {b} c"


def test_low_without_a_firing_positive_control_is_inconclusive() -> None:
    pos = Control("known-leaking target", "positive", "AUC", 0.52, 0.75, fired=False)
    neg = Control("shuffled membership", "negative", "AUC", 0.5, 0.6, fired=False)
    assert Verdict("low", "r", [pos, neg]).checked().level == "inconclusive"
    fired = Control("known-leaking target", "positive", "AUC", 0.9, 0.75, fired=True)
    assert Verdict("low", "r", [fired, neg]).checked().level == "low"
    assert Verdict("high", "r", [pos]).checked().level == "high"  # a finding stands without the control
    assert Verdict("low", "r").checked().level == "low"
    assert not neg.__class__("n", "negative", "AUC", 0.9, 0.6, fired=True).passed
    with pytest.raises(ValueError, match="level"):
        Verdict("severe")


def test_schema_1_sections_are_upgraded() -> None:
    sec = upgrade_v1(
        {"title": "T", "verdict": "high", "headline": "x {y}", "tables": [{"columns": ["a"], "rows": [["1"]]}]}, "k"
    )
    assert sec.headline.render() == "x {y}"
    assert sec.verdict.level == "high" and "older version" in sec.verdict.rule
    assert sec.tables[0].rows == [["1"]]
    with pytest.raises(ValueError):
        upgrade_v1({"verdict": "bogus"}, "k")


def test_number_reads_cells() -> None:
    assert number(Stat(0.3)) == 0.3 and number(2) == 2.0
    assert number("x") is None and number(True) is None and number(float("nan")) is None
