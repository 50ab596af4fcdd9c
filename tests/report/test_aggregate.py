"""Mean ± std over seeds: tables, headlines, verdicts and costs of the same audit run with several seeds."""

from __future__ import annotations

import math

import pytest

from encoder_audit.report import aggregate_sections, normalise_section
from encoder_audit.report.aggregate import aggregate_section, aggregate_tables, merge_texts
from encoder_audit.report.schema import format_cell

COLUMNS = ["method", "budget", "kNN", "acc", "wall"]


def naive_mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def table(rows: list[list[object]], note: str = "seed 11; fixed") -> dict[str, object]:
    return {"title": "Surrogates", "columns": COLUMNS, "rows": rows, "note": note}


def rendered(t: dict[str, object]) -> list[list[str]]:
    return [[format_cell(c) for c in row] for row in t["rows"]]  # type: ignore[union-attr]


def test_numbers_and_formatted_strings_aggregate_to_exact_mean_and_sample_std() -> None:
    seeds = [
        table([["rda", 500, "0.700", "81.0%", 12.5], ["target (ceiling)", "-", "0.950", "-", "-"]], "seed 11; fixed"),
        table([["rda", 500, "0.800", "83.0%", 13.5], ["target (ceiling)", "-", "0.950", "-", "-"]], "seed 12; fixed"),
        table([["rda", 500, "0.900", "85.0%", 14.5], ["target (ceiling)", "-", "0.950", "-", "-"]], "seed 13; fixed"),
    ]
    out = aggregate_tables(seeds, [0, 1, 2])
    knn = out["rows"][0][2]
    m, s = naive_mean_std([0.7, 0.8, 0.9])
    assert knn["mean"] == pytest.approx(m, abs=1e-12) and knn["std"] == pytest.approx(s, abs=1e-12)
    assert knn["n"] == 3 and knn["decimals"] == 3
    m, s = naive_mean_std([81.0, 83.0, 85.0])
    assert out["rows"][0][3]["mean"] == pytest.approx(m) and out["rows"][0][3]["std"] == pytest.approx(s)
    assert rendered(out) == [
        ["rda", "500", "0.800 ± 0.100", "83.0 ± 2.0%", "13.5 ± 1.0"],
        ["target (ceiling)", "-", "0.950", "-", "-"],  # the same in every seed: kept as written
    ]
    assert out["note"].startswith("Mean ± sample std over 3 seeds (0, 1, 2).")
    assert "seed {11, 12, 13}; fixed" in out["note"]


def test_rows_are_matched_by_their_keys_when_the_order_differs() -> None:
    a = table(
        [["rda", 500, "0.700", "1%", 1.0], ["rda", 5000, "0.900", "2%", 2.0], ["baseline", 500, "0.5", "3%", 3.0]]
    )
    b = table(
        [["baseline", 500, "0.7", "5%", 5.0], ["rda", 5000, "0.950", "4%", 4.0], ["rda", 500, "0.800", "3%", 3.0]]
    )
    out = aggregate_tables([a, b], ["0", "1"])
    assert rendered(out) == [
        ["rda", "500", "0.750 ± 0.071", "2 ± 1%", "2.0 ± 1.4"],
        ["rda", "5,000", "0.925 ± 0.035", "3 ± 1%", "3.0 ± 1.4"],
        ["baseline", "500", "0.6 ± 0.1", "4 ± 1%", "4.0 ± 1.4"],
    ]


def test_a_row_missing_from_some_seeds_is_marked_and_averaged_over_the_others() -> None:
    a = table([["rda", 500, "0.700", "1%", 1.0], ["rda", 5000, "0.900", "2%", 2.0]])
    b = table([["rda", 500, "0.800", "3%", 3.0]])
    c = table([["rda", 500, "0.900", "5%", 5.0], ["rda", 5000, "0.800", "4%", 4.0]])
    out = aggregate_tables([a, b, c], [0, 1, 2])
    assert rendered(out) == [
        ["rda", "500", "0.800 ± 0.100", "3 ± 2%", "3.0 ± 2.0"],
        ["rda [2/3 seeds]", "5,000", "0.850 ± 0.071", "3 ± 1%", "3.0 ± 1.4"],
    ]
    assert "Rows marked [k/n seeds]" in out["note"]
    with pytest.raises(ValueError, match="columns differ"):
        aggregate_tables([a, {**b, "columns": ["x"] * 5}], [0, 1])


def test_cells_that_are_not_numbers_in_every_seed_are_listed() -> None:
    a = table([["rda", 500, "0.700", "-", "fast"]])
    b = table([["rda", 500, "0.900", "0.5", "slow"]])
    out = rendered(aggregate_tables([a, b], [0, 1]))
    assert out == [["rda", "500", "0.800 ± 0.141", "0.5 (n=1)", "fast / slow"]]
    # a number missing in one seed: the mean over the others, with how many
    c = table([["rda", 500, "0.800", "0.7", "fast"]])
    assert rendered(aggregate_tables([a, b, c], [0, 1, 2]))[0][3] == "0.6 ± 0.1 (n=2)"


def test_headlines_average_their_numbers_and_name_the_seed_count() -> None:
    assert merge_texts(
        ["AUC 0.800 (TPR 10.0% at 1% FPR) on 2,000 images.", "AUC 0.900 (TPR 20.0% at 1% FPR) on 2,000 images."]
    ) == ("AUC 0.850 (TPR 15.0% at 1% FPR) on 2,000 images.")
    assert merge_texts(["seed 3", "seed 4"], mode="list") == "seed {3, 4}"
    assert merge_texts(["one thing", "another"]) == "one thing | another"

    def sec(verdict: str, auc: str, acc: float) -> dict[str, object]:
        return normalise_section(
            {
                "verdict": verdict,
                "headline": f"encodermi-v separates members with AUC {auc}.",
                "tables": [{"title": "t", "columns": ["attack", "acc %"], "rows": [["encodermi-v", acc]]}],
                "figures": [{"path": f"seeds/x/{auc}.png", "caption": "ROC"}],
                "costs": {"query_images": 1000, "wall_seconds": acc / 10, "query_images_per_audited_image": 10.0},
                "caveats": [f"blind AUC {auc}", "same caveat"],
                "config": {"seed": 7, "preset": "quick"},
            },
            title="Membership inference",
        )

    out = aggregate_section(
        [(0, sec("high", "0.80", 80.0)), (1, sec("medium", "0.70", 70.0)), (2, sec("medium", "0.60", 60.0))]
    )
    assert (
        out["headline"]
        == "encodermi-v separates members with AUC 0.70 (mean of 3 seeds; per-seed risk high, medium, medium)."
    )
    assert out["verdict"] == "medium"  # mean level (2 + 1 + 1) / 3 rounds to medium
    assert format_cell(out["tables"][0]["rows"][0][1]) == "70.0 ± 10.0"
    assert out["figures"] == [{"path": "seeds/x/0.80.png", "caption": "ROC (seed 0)."}]
    assert out["costs"]["query_images (total)"] == 3000 and out["costs"]["query_images per seed"] == 1000
    assert out["costs"]["wall_seconds (total)"] == 21.0 and out["costs"]["wall_seconds per seed"] == "8 / 7 / 6"
    assert out["costs"]["query_images_per_audited_image"] == 10.0  # a rate: not summed
    assert out["caveats"] == ["blind AUC {0.80, 0.70, 0.60}", "same caveat"]
    assert out["config"]["seeds"] == [0, 1, 2] and out["config"]["stage seeds"] == [7, 7, 7]
    # a high / medium tie goes to the higher risk
    assert aggregate_section([(0, sec("high", "0.80", 80.0)), (1, sec("medium", "0.70", 70.0))])["verdict"] == "high"


def test_failed_seeds_are_left_out_and_named() -> None:
    ok = normalise_section({"verdict": "low", "headline": "fine 1.0", "tables": []}, title="Stealing")
    ok2 = normalise_section({"verdict": "low", "headline": "fine 3.0", "tables": []}, title="Stealing")
    bad = normalise_section({"verdict": "failed", "headline": "RuntimeError: boom"}, title="Stealing")
    out = aggregate_sections({0: {"stealing": ok}, 1: {"stealing": bad}, 2: {"stealing": ok2}})["stealing"]
    assert out["verdict"] == "low" and out["headline"] == "fine 2.0 (mean of 2 seeds)."
    assert out["caveats"] == ["Seed 1 failed: RuntimeError: boom"]
    every = aggregate_sections({0: {"stealing": bad}, 1: {"stealing": bad}})["stealing"]
    assert every["verdict"] == "failed" and every["headline"] == "RuntimeError: boom"
    # an audit only one seed has (a given victim is evaluated once) is shown as it is
    only = aggregate_sections({0: {"victim": ok, "stealing": ok}, 1: {"stealing": ok2}})
    assert only["victim"] == ok


def test_headlines_worded_differently_keep_the_majority_mean_and_quote_the_others() -> None:
    def sec(verdict: str, headline: str) -> dict[str, object]:
        return normalise_section({"verdict": verdict, "headline": headline}, title="Poisoning")

    out = aggregate_section(
        [
            (0, sec("high", "16 poisons reach 60% ASR.")),
            (1, sec("medium", "no count reaches 50% ASR (best 30%).")),
            (2, sec("high", "16 poisons reach 70% ASR.")),
        ]
    )
    assert out["headline"] == (
        "16 poisons reach 65% ASR (mean of 2 seeds; per-seed risk high, medium, high). "
        "Seed 1: no count reaches 50% ASR (best 30%)."
    )
    assert out["verdict"] == "high"  # (2 + 1 + 2) / 3 rounds to high
