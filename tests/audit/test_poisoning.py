"""The poisoning stage of the audit: smoke run through the runner's context, JSON round trip, section, verdict rule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from encoder_audit.audit import family
from encoder_audit.audit.config import PRESETS, resolve_config
from encoder_audit.audit.family import result_from_json, result_to_json
from encoder_audit.audit.plan import prepare_data
from encoder_audit.audit.poisoning import (
    BadEncoderResult,
    ClipLevel,
    DefenseOutcome,
    PoisoningResult,
    run_poisoning,
)
from encoder_audit.audit.poisoning_config import PoisoningAuditConfig
from encoder_audit.audit.runner import stage_context
from encoder_audit.audit.sections.poisoning import build_poisoning_section, newcombe, poisoning_verdict, wilson
from encoder_audit.models import create_encoder
from encoder_audit.report.model import number
from encoder_audit.victim import LocalEncoder


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[PoisoningResult, Path]:
    config = resolve_config("smoke", overrides=["device=cpu", "poisoning.filter_retrain=true"])
    run_dir = tmp_path_factory.mktemp("run")
    data = prepare_data(config.data, seed=0)
    victim = LocalEncoder(create_encoder("cnn-small", 1, 28, width=8).eval())
    ctx = stage_context(config, run_dir, "poisoning", run_seed=0, data=data, victim=lambda: victim)
    return run_poisoning(ctx, config.poisoning), run_dir


def test_smoke_stage_round_trips_and_builds_a_section(smoke_run: tuple[PoisoningResult, Path]) -> None:
    result, run_dir = smoke_run
    assert [lv.role for lv in result.levels] == ["control", "dose"]
    assert result.levels[1].k == 4 and result.levels[1].m == 20
    # replacement: the poisoned training set keeps the clean set's size
    assert result.mode == "replace" and result.levels[1].train_pairs == result.levels[1].clean_pairs == 200
    assert result.badencoder.ran and result.badencoder.steps >= 1
    assert [d.defense for d in result.defenses] == ["none", "filter-density", "cleanclip"]
    retrained = result.defenses[1]
    assert retrained.setting == "removed" and retrained.removed_pairs == 4 * result.levels[1].targets + 20
    assert result.filters and any(p.at_poison_rate for p in result.filters)
    at_rate = next(p for p in result.filters if p.at_poison_rate)
    assert at_rate.flagged == at_rate.poisons == 4 * result.levels[1].targets + 20 and at_rate.max_recall == 1.0

    data = json.loads(json.dumps(result_to_json(result)))
    again = result_from_json(PoisoningResult, data)
    assert result_to_json(again) == data

    section = build_poisoning_section(again)
    assert section.key == "poisoning" and section.verdict.level in {"high", "medium", "low"}
    assert "gain" in section.verdict.rule and "95%" in section.verdict.rule
    assert section.headline.render().startswith(("Strongest: ", "No tested attack beat its paired control"))
    assert "{" not in section.headline.render()
    kinds = {c.kind for c in section.verdict.controls}
    assert "negative" in kinds
    for table in section.tables:
        assert any(c.is_key for c in table.columns), table.title
    titles = [t.title for t in section.tables]
    assert any("BadEncoder" in t for t in titles) and any("filters" in t for t in titles)
    for fig in section.figures:
        assert (run_dir / fig.path).is_file()
    assert all(isinstance(v, (int, float)) for v in section.costs.values())
    assert section.costs["query_images"] == 0
    assert any("training pipeline, not its weights" in c for c in section.caveats)
    assert section.todo.defenses is not None and section.todo.not_covered
    fam = family._FAMILIES["poisoning"]  # registered on import, without loading the other families
    assert fam.result_type is PoisoningResult and fam.config_attr == "poisoning"
    assert fam.build(again).headline.render() == section.headline.render()


def _level(role: str, k: int, m: int, hits: int, asr: float, targets: int = 8, n: int = 900) -> ClipLevel:
    return ClipLevel(role, k, m, 500, 500, targets, hits, 2.0, 0.7, asr, n, 0.05, 0.1, 0.3, 1.0)


def _result(levels: list[ClipLevel], bad: BadEncoderResult | None = None) -> PoisoningResult:
    return PoisoningResult(
        victim_label="v",
        dataset="fashion-mnist",
        classes=10,
        image_encoder="cnn-small",
        image_width=16,
        text_layers=1,
        epochs=30,
        batch_size=64,
        mode="replace",
        trigger="4x4 checkerboard, random position",
        backdoor_target="t-shirt",
        seed=0,
        levels=levels,
        badencoder=bad or BadEncoderResult(ran=False, reason="black box"),
        defenses=[DefenseOutcome("none", "", 0.0, 0, 8, 8, 0.9, 0.7)],
    )


def test_verdict_is_high_when_poisons_beat_the_control_beyond_noise() -> None:
    r = _result([_level("control", 0, 0, 0, 0.03), _level("dose", 8, 30, 8, 0.04)])
    v = poisoning_verdict(r)
    assert v.level == "high" and v.checked().level == "high"
    assert build_poisoning_section(r).headline.values["attack"].startswith("targeted")


def test_verdict_subtracts_the_control() -> None:
    # 90% ASR with the trigger on the *unpoisoned* model too: the poisons add nothing
    r = _result([_level("control", 0, 0, 0, 0.90), _level("dose", 0, 30, 0, 0.92)])
    assert poisoning_verdict(r).level == "low"
    neg = next(c for c in poisoning_verdict(r).controls if c.kind == "negative")
    assert neg.fired and not neg.passed


def test_a_few_trials_are_not_evidence() -> None:
    # 3 of 8 trials against 0 of 8: a 38% gain whose 95% interval still reaches below zero
    r = _result([_level("control", 0, 0, 0, 0.03), _level("dose", 2, 0, 3, 0.03)])
    assert poisoning_verdict(r).level == "low"
    r = _result([_level("control", 0, 0, 0, 0.03), _level("dose", 0, 30, 0, 0.30)])
    assert poisoning_verdict(r).level == "medium"  # 27 points over 900 images is


def test_low_stands_only_with_a_firing_positive_control() -> None:
    quiet = [_level("control", 0, 0, 0, 0.03), _level("dose", 1, 10, 0, 0.04)]
    fired = _result([*quiet, _level("positive control", 32, 200, 8, 0.95)])
    v = poisoning_verdict(fired)
    assert v.level == "low" and v.checked().level == "low"
    assert {c.name for c in v.controls if c.kind == "positive"} == {
        "positive control: targeted poisoning, k=32 copies per target",
        "positive control: patch backdoor, m=200 poisons",
    }
    dud = _result([*quiet, _level("positive control", 32, 200, 1, 0.05)])
    assert poisoning_verdict(dud).checked().level == "inconclusive"


def test_badencoder_counts_against_its_clean_encoder_base_rate() -> None:
    bad = BadEncoderResult(
        ran=True, asr=0.9, asr_clean_encoder=0.06, n_asr=900, clean_accuracy=0.82, backdoored_accuracy=0.80,
        asr_raw=0.4, asr_clean_encoder_raw=0.06, clean_accuracy_raw=0.82, backdoored_accuracy_raw=0.8,
    )  # fmt: skip
    r = _result([_level("control", 0, 0, 0, 0.03), _level("dose", 1, 10, 0, 0.04)], bad)
    section = build_poisoning_section(r)
    assert section.verdict.level == "high"
    assert section.headline.values["attack"] == "BadEncoder on the victim's weights"
    table = next(t for t in section.tables if t.title.startswith("BadEncoder on"))
    rows = {row[0]: row for row in table.rows}
    assert number(rows["L2-normalised (official)"][table.index("ASR")]) == 0.9
    assert number(rows["raw"][table.index("ASR")]) == 0.4


def test_intervals_match_published_values() -> None:
    # Newcombe (Stat. Med. 1998), Table II example: 56/70 vs 48/80 -> difference 0.2, method 10: 0.0524 to 0.3339
    lo, hi = newcombe(56 / 70, 70, 48 / 80, 80)
    assert lo == pytest.approx(0.0524, abs=5e-4) and hi == pytest.approx(0.3339, abs=5e-4)
    # Wilson interval of 0 / 10: upper bound 0.2775 (Newcombe 1998, Table I)
    assert wilson(0.0, 10)[0] == 0.0 and wilson(0.0, 10)[1] == pytest.approx(0.2775, abs=5e-4)
    assert wilson(float("nan"), 5) == (0.0, 1.0)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_resolves(preset: str) -> None:
    cfg = resolve_config(preset).poisoning
    assert (0, 0) in cfg.levels and cfg.experiment.mode == "replace"
    assert resolve_config(preset, overrides=["poisoning.levels=[[0,0],[2,10]]"]).poisoning.levels == ((0, 0), (2, 10))


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="control"):
        PoisoningAuditConfig(levels=((2, 10),))
    with pytest.raises(ValueError):
        PoisoningAuditConfig(defenses=("prayer",))
    with pytest.raises(ValueError):
        PoisoningAuditConfig(filter_fractions=(1.5,))
    with pytest.raises(ValueError):
        PoisoningAuditConfig(positive_control=(0, 0))
    with pytest.raises(ValueError):
        PoisoningAuditConfig(medium_gain=0.6, high_gain=0.5)
    assert math.isclose(PoisoningAuditConfig().high_gain, 0.5)


def test_a_folder_smaller_than_one_clip_batch_still_trains(tmp_path: Path) -> None:
    import dataclasses

    config = resolve_config(
        "smoke", overrides=["device=cpu", "poisoning.defenses=[]", "poisoning.run_badencoder=false"]
    )
    data = prepare_data(config.data, seed=0)
    small = dataclasses.replace(data, train=data.train.subset(range(40)))  # fewer pairs than the batch of 64
    assert config.poisoning.experiment.batch_size > 40
    victim = LocalEncoder(create_encoder("cnn-small", 1, 28, width=8).eval())
    ctx = stage_context(config, tmp_path, "poisoning", run_seed=0, data=small, victim=lambda: victim)
    result = run_poisoning(ctx, config.poisoning)
    assert result.batch_size <= 40 and result.levels
