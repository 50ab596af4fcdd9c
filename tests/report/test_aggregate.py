"""Aggregation over seeds works on numbers: exact means and sample stds, rows matched on key columns."""

from __future__ import annotations

import statistics

import pytest

from encoder_audit.report.aggregate import aggregate_cells, aggregate_sections, aggregate_tables, summarize
from encoder_audit.report.model import Control, Section, Stat, Table, Text, Verdict, count, key, num, status_section

from .conftest import stealing_section


def test_summarize_matches_the_statistics_module_and_gives_a_t_interval() -> None:
    vals = [0.81, 0.85, 0.78, 0.9]
    s = summarize(vals, interval=True)
    assert s.mean == pytest.approx(statistics.mean(vals))
    assert s.std == pytest.approx(statistics.stdev(vals))
    assert s.n == 4
    half = 3.182 * statistics.stdev(vals) / 2  # t(0.975, df=3) * s / sqrt(4)
    assert s.lo == pytest.approx(s.mean - half) and s.hi == pytest.approx(s.mean + half)
    assert summarize([1.0]).std is None
    assert summarize([1.0, float("nan"), 3.0]).n == 2
    with pytest.raises(ValueError):
        summarize([float("nan")])


def test_cells_that_agree_stay_cells_and_varying_ones_become_stats() -> None:
    assert aggregate_cells([5, 5, 5]) == 5
    s = aggregate_cells([0.5, 0.7])
    assert isinstance(s, Stat) and s.mean == pytest.approx(0.6) and s.n == 2
    assert aggregate_cells(["a", "b", "a"]) == "a / b"
    partial = aggregate_cells([0.5, None, 0.7], of=3)
    assert isinstance(partial, Stat) and partial.n == 2 and partial.of == 3


def test_rows_are_matched_by_key_columns_whatever_their_order() -> None:
    cols = [key("method"), count("budget", is_key=True), num("fidelity")]
    a = Table("t", cols, [["rda", 100, 0.9], ["conv", 100, 0.8]])
    b = Table("t", cols, [["conv", 100, 0.6], ["rda", 100, 0.7], ["rda", 1000, 0.95]])
    out = aggregate_tables([a, b])
    rows = {(r[0], r[1]): r[2] for r in out.rows}
    assert rows[("rda", 100)].mean == pytest.approx(0.8)
    assert rows[("conv", 100)].mean == pytest.approx(0.7)
    only_b = rows[("rda", 1000)]
    assert only_b.n == 1 and only_b.of == 2
    with pytest.raises(ValueError, match="columns differ"):
        aggregate_tables([a, Table("t", [key("x")], [])])


def _sec(fid: float, level: str, method: str = "rda", fired: bool = False) -> Section:
    sec = stealing_section(fid, method)
    sec.verdict = Verdict(
        level, "high if fidelity >= 0.8", [Control("random init", "negative", "fidelity", 0.1, 0.8, fired)]
    )
    return sec


def test_sections_aggregate_headline_numbers_verdicts_and_controls() -> None:
    out = aggregate_sections(
        {0: {"stealing": _sec(0.9, "high")}, 1: {"stealing": _sec(0.7, "medium")}, 2: {"stealing": _sec(0.8, "high")}}
    )
    sec = out["stealing"]
    fid = sec.headline.values["fid"]
    assert isinstance(fid, Stat) and fid.mean == pytest.approx(0.8) and fid.n == 3
    assert sec.headline.values["method"] == "rda"
    assert sec.verdict.level == "high"  # mean level 1.67 -> high
    assert "seeds' levels" in sec.verdict.rule
    assert sec.seeds == 3
    assert sec.costs["query_images"] == 2500
    assert not sec.verdict.controls[0].fired


def test_seeds_that_disagree_on_the_strongest_attack_are_named_not_averaged() -> None:
    per = {
        0: {"stealing": _sec(0.9, "high")},
        1: {"stealing": _sec(0.95, "high")},
        2: {"stealing": _sec(0.5, "medium", "conventional")},
    }
    sec = aggregate_sections(per)["stealing"]
    assert sec.headline.values["method"] == "rda"
    assert sec.headline.values["fid"].mean == pytest.approx(0.925)
    assert any("seed 2: conventional" in c for c in sec.caveats)


def test_failed_and_skipped_seeds_are_left_out_and_named() -> None:
    per = {
        0: {"stealing": _sec(0.9, "high")},
        1: {"stealing": status_section("stealing", "Encoder stealing", "failed", "boom")},
    }
    sec = aggregate_sections(per)["stealing"]
    assert sec.seeds == 1 and sec.headline.values["fid"] == 0.9
    assert any("seed 1: failed (boom)" in c for c in sec.caveats)


def test_inconclusive_in_any_seed_is_inconclusive_and_a_control_firing_in_one_seed_counts() -> None:
    per = {0: {"s": _sec(0.9, "low")}, 1: {"s": _sec(0.9, "inconclusive", fired=True)}}
    sec = aggregate_sections(per)["s"]
    assert sec.verdict.level == "inconclusive"
    assert sec.verdict.controls[0].fired  # a negative control that fired in any seed has fired


def test_text_values_stay_numbers_through_aggregation() -> None:
    per = {s: {"x": Section("x", "X", Text("{a:.2f}", {"a": v}), Verdict("info"))} for s, v in enumerate([1.0, 2.0])}
    assert aggregate_sections(per)["x"].headline.render() == "1.50 ± 0.71"
