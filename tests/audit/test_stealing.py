"""The stealing stage of the main audit: smoke config end to end, JSON round trip, section and verdict rule."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from encoder_audit.attacks.stealing.compare import DatasetEval, Reference, RunRecord, Scores
from encoder_audit.audit.config import PRESETS, resolve_config
from encoder_audit.audit.family import get_family, result_from_json, result_to_json
from encoder_audit.audit.plan import prepare_data
from encoder_audit.audit.runner import stage_context
from encoder_audit.audit.sections.stealing import build_stealing_section, level_of
from encoder_audit.audit.stealing import ControlRun, StealingAuditResult, run_stealing_stage, strongest_methods
from encoder_audit.models import create_encoder
from encoder_audit.victim import LocalEncoder


@pytest.fixture(scope="module")
def smoke_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[StealingAuditResult, Path]:
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("run")
    config = resolve_config("smoke", overrides=["device=cpu"])
    data = prepare_data(config.data, seed=0)
    with torch.random.fork_rng():
        torch.manual_seed(1)  # not the seed-0 random-init encoder the negative control compares with
        victim = LocalEncoder(create_encoder("cnn-small", 1, 28))
    ctx = stage_context(config, run_dir, "stealing", run_seed=0, data=data, victim=lambda: victim)
    return run_stealing_stage(ctx, config.stealing), run_dir


def test_smoke_stage_runs_round_trips_and_builds(smoke_result: tuple[StealingAuditResult, Path]) -> None:
    result, run_dir = smoke_result
    cfg = resolve_config("smoke").stealing
    assert {r.method for r in result.runs} == set(cfg.methods)
    for r in result.runs:  # every row states its charge and its compute
        assert r.steps == cfg.compute and r.query_images <= max(cfg.budgets) and r.forward_passes > 0
    rda = next(r for r in result.runs if r.method == "rda")
    assert rda.query_images == rda.n_drawn * 3 and rda.prototype_norm_median is not None
    assert {c.kind for c in result.controls} == {"positive", "negative"}
    assert result.defense_runs and result.defense_costs[0].defense == "round:decimals=1"
    assert (run_dir / result.figures[0].path).is_file()

    again = result_from_json(StealingAuditResult, result_to_json(result))
    assert result_to_json(again) == result_to_json(result)

    section = get_family("stealing").build(again)
    assert section.key == "stealing" and section.verdict.level in {"high", "medium", "low"}
    assert "0.80" in section.verdict.rule and "steps" in section.verdict.rule
    text = section.headline.render()
    assert text.startswith("Strongest attack: ") and "{" not in text
    assert len(section.verdict.controls) == 2
    main = section.tables[0]
    assert [c.name for c in main.columns if c.is_key] == ["method", "budget (images charged)", "dataset"]
    assert {"images charged", "API calls", "unique images", "optimizer steps", "forward passes"} <= {
        c.name for c in main.columns
    }
    assert all(isinstance(v, (int, float)) for v in section.costs.values())
    assert section.todo.defenses is not None and section.todo.not_covered


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_resolves_and_validates(preset: str) -> None:
    cfg = resolve_config(preset).stealing
    assert cfg.methods and cfg.budgets and cfg.compute >= 1
    assert cfg.rule in {"steps", "forward_passes"}


@pytest.mark.parametrize(
    "bad",
    [
        ["stealing.budgets=[1]"],
        ["stealing.rule=epochs"],
        ["stealing.compute=0"],
        ["stealing.methods=[]"],
        ["stealing.options={nope: {}}"],
        ["stealing.fire_fidelity=1.5"],
    ],
)
def test_bad_values_are_refused(bad: list[str]) -> None:
    with pytest.raises(ValueError):
        resolve_config("quick", overrides=bad)


# --------------------------------------------------------------------------------------------- verdict rule


def _run(method: str, level: int, fid: float, knn: float, charged: int | None = None) -> RunRecord:
    d = DatasetEval("fashion-mnist", 2000, 1000, Scores(knn, 20, knn, knn, 0.8), 0.9, fid, 0.5, 0.6)
    return RunRecord(
        method=method, arm="images", level=level, seed=0, defense="none", rule="steps", rule_amount=100,
        n_drawn=level, unique_images=level, query_images=charged or level, api_calls=level // 100, steps=100,
        forward_passes=10_000, epochs=1.0, wall_seconds=1.0, train_seconds=1.0, query_seconds=0.1, final_loss=0.1,
        datasets=[d],
    )  # fmt: skip


def _result(runs: list[RunRecord], positive: float = 0.9) -> StealingAuditResult:
    ref = Reference("fashion-mnist", 2000, Scores(0.63, 20, 0.63, 0.6, 0.8), Scores(0.50, 20, 0.5, 0.5, 0.72), 0.1)
    return StealingAuditResult(
        head="fashion-mnist", methods=sorted({r.method for r in runs}), budgets=sorted({r.level for r in runs}),
        equal_n=None, rule="steps", compute=100, surrogate="cnn-small", query_pool=5000, input_channels=1, runs=runs,
        references=[ref],
        controls=[ControlRun("pos", "positive", "rda", positive, 0.5), ControlRun("neg", "negative", "none", 0.1, 0.5)],
    )  # fmt: skip


def test_verdict_reads_high_when_a_copy_is_faithful() -> None:
    result = _result([_run("rda", 500, 0.85, 0.62), _run("conventional", 500, 0.6, 0.61)])
    section = build_stealing_section(result)
    assert section.verdict.level == "high"
    assert section.headline.values["method"] == "rda"
    assert "best other method conventional" in section.headline.render()


def test_verdict_reads_low_when_nothing_is_copied_and_inconclusive_without_the_positive_control() -> None:
    runs = [_run("rda", 500, 0.2, 0.52), _run("conventional", 500, 0.3, 0.53)]
    assert build_stealing_section(_result(runs)).verdict.checked().level == "low"
    assert build_stealing_section(_result(runs, positive=0.2)).verdict.checked().level == "inconclusive"
    assert strongest_methods(runs, "fashion-mnist") == ["conventional", "rda"]


def test_level_rule_thresholds() -> None:
    assert level_of(0.80, None) == "high" and level_of(0.79, 0.95) == "high"
    assert level_of(0.5, None) == "medium" and level_of(0.1, 0.5) == "medium"
    assert level_of(0.49, 0.49) == "low" and level_of(0.3, math.nan) == "low"


def test_utility_alone_reads_medium_when_the_target_beats_random_init() -> None:
    # fidelity below 0.5 but 0.57 kNN recovers (0.57 - 0.50) / (0.63 - 0.50) = 54% of the target's gain
    assert build_stealing_section(_result([_run("rda", 500, 0.3, 0.57)])).verdict.level == "medium"
