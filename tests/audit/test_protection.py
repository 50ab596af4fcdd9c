"""The data-protection stage: smoke run through the runner's stage context, JSON round trip, section, verdict rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from encoder_audit.audit.config import PRESETS, preset_config, resolve_config
from encoder_audit.audit.family import get_family, result_from_json, result_to_json
from encoder_audit.audit.plan import prepare_data
from encoder_audit.audit.protection import (
    CLEAN,
    ORACLE,
    RANDOM,
    ProtectionResult,
    ProtectionRun,
    SurrogateRun,
    TrainerRun,
    strongest,
)
from encoder_audit.audit.protection_config import ProtectionAuditConfig
from encoder_audit.audit.runner import stage_context
from encoder_audit.audit.sections.protection import build_protection_section, protection_verdict
from encoder_audit.models import create_encoder
from encoder_audit.victim import LocalEncoder


def _config(**protection):
    return resolve_config(
        "smoke",
        values={
            "data": {
                "dataset": "synthetic",
                "eval_datasets": ["synthetic"],
                "members": 32,
                "nonmembers": 32,
                "shadow": 240,
                "queries": 200,
            },
            "protection": {"train": 120, "test": 100, **protection},
        },
    )


def _ctx(tmp_path: Path, config):
    data = prepare_data(config.data, seed=0)
    victim = LocalEncoder(create_encoder("cnn-small", in_channels=1, image_size=28))
    return stage_context(config, tmp_path, "protection", run_seed=0, data=data, victim=lambda: victim)


def test_smoke_stage_runs_round_trips_and_builds(tmp_path: Path) -> None:
    config = _config(surrogates=["supervised", "victim"], k_candidates=[3, 5], min_cluster_images=10)
    fam = get_family("protection")
    ctx = _ctx(tmp_path, config)
    result = fam.run(ctx, config.protection)
    assert isinstance(result, ProtectionResult)
    names = [p.name for p in result.protections]
    assert names == ["uc-supervised", ORACLE, "uc-victim", RANDOM]
    assert {s.name for s in result.surrogates} == {"supervised", "victim"}
    for s in result.surrogates:
        assert s.chosen_k in (3, 5) and [r.k for r in s.k_sweep] == [3, 5]
        assert all(0 < r.purity <= 1 for r in s.k_sweep)
    for p in result.protections:
        assert p.linf_levels <= 16
        if p.method == "uc":
            assert 0 <= p.target_success <= 1 and 0 <= p.purity <= 1
    oracle = next(p for p in result.protections if p.name == ORACLE)
    assert oracle.purity == 1.0 and oracle.clusters == 10
    assert result.run(CLEAN, "true") is not None and result.run(RANDOM, "true") is not None
    assert (tmp_path / result.figure).is_file()

    data = json.loads(json.dumps(result_to_json(result)))
    again = result_from_json(ProtectionResult, data)
    assert again == result

    section = fam.build(again)
    assert section.key == "protection" and section.headline.render()
    assert "{" not in section.headline.render()
    assert "room lost" in section.verdict.rule and section.verdict.controls
    assert {c.kind for c in section.verdict.controls} == {"positive", "negative"}
    accuracy = section.tables[0]
    assert [c.name for c in accuracy.columns if c.is_key] == ["protection", "labeling"]
    assert accuracy.columns[accuracy.index("final")].unit == "%"
    assert all(isinstance(v, (int, float)) for v in section.costs.values())
    assert section.label() in ("Protection fails", "Protection holds", "Protection partial", "Protection inconclusive")
    json.dumps(section.to_dict())


def test_victim_without_weights_is_skipped(tmp_path: Path) -> None:
    class BlackBox:
        input_shape = (1, 28, 28)
        embedding_dim = 4

        def embed(self, x):  # pragma: no cover - never called
            raise AssertionError

    config = _config(surrogates=["victim"], controls=False)
    data = prepare_data(config.data, seed=0)
    ctx = stage_context(config, tmp_path, "protection", run_seed=0, data=data, victim=BlackBox)
    result = get_family("protection").run(ctx, config.protection)
    assert result.protections == [] and "not at hand" in result.surrogates[0].skipped
    section = build_protection_section(result)
    assert section.verdict.level == "inconclusive" and "No protection" in section.headline.render()


def _result(clean: float, uc: dict[str, float], oracle: float, rnd: float) -> ProtectionResult:
    runs = [TrainerRun(CLEAN, "true", 10, 0.1, clean, clean), TrainerRun(CLEAN, "coarse", 4, 0.3, 0.9, 0.9)]
    runs += [
        TrainerRun("uc-supervised", lab, 10 if lab == "true" else 4, 0.1 if lab == "true" else 0.3, v, v)
        for lab, v in uc.items()
    ]
    runs += [TrainerRun(ORACLE, "true", 10, 0.1, oracle, oracle), TrainerRun(RANDOM, "true", 10, 0.1, rnd, rnd)]
    prot = [
        ProtectionRun("uc-supervised", "uc", "method", "supervised", 16 / 255, 50, 0.9, 0.7, 0.1, 0.5, 16, 26, 0.8, 1),
        ProtectionRun(ORACLE, "uc", "positive-control", "supervised", 16 / 255, 10, 1.0, 1.0, 0.1, 0.5, 16, 26, 0.8, 1),
        ProtectionRun(RANDOM, "random", "negative-control", "", 16 / 255, 0, None, None, None, None, 16, 30, 0.9, 0),
    ]
    return ProtectionResult(
        seed=0,
        dataset="toy",
        train_images=5000,
        test_images=1000,
        eps=16 / 255,
        uc_config={},
        trainer_config={},
        k_rule="rule",
        holds_at=0.5,
        fails_below=0.15,
        surrogates=[SurrogateRun("supervised", "s", 1.0, [], 50)],
        protections=prot,
        runs=runs,
    )


def test_verdict_holds_when_every_labeling_loses_half_its_room() -> None:
    r = _result(0.85, {"true": 0.30, "coarse": 0.45}, oracle=0.35, rnd=0.84)
    v = protection_verdict(r)
    assert v.level == "low" and v.controls_passed
    section = build_protection_section(r)
    assert section.label() == "Protection holds"
    text = section.headline.render()
    assert "85.0%" in text and "30.0%" in text and "uc-supervised" in text and text.startswith("The strongest")


def test_verdict_fails_when_a_labeling_keeps_its_accuracy() -> None:
    r = _result(0.85, {"true": 0.30, "coarse": 0.88}, oracle=0.35, rnd=0.84)
    assert protection_verdict(r).level == "high"
    assert build_protection_section(r).label() == "Protection fails"


def test_verdict_medium_and_controls_downgrade() -> None:
    assert protection_verdict(_result(0.85, {"true": 0.60, "coarse": 0.70}, 0.35, 0.84)).level == "medium"
    # protection "fails" but even oracle clusters did not protect: the evaluation has no power
    v = protection_verdict(_result(0.85, {"true": 0.84, "coarse": 0.9}, oracle=0.80, rnd=0.84))
    assert v.level == "inconclusive" and "positive control" in v.rule
    # protection "holds" but random noise hurt as much: this trainer breaks on any noise
    v = protection_verdict(_result(0.85, {"true": 0.30, "coarse": 0.45}, oracle=0.35, rnd=0.30))
    assert v.level == "inconclusive" and "negative control" in v.rule


def test_verdict_is_inconclusive_when_the_clean_trainer_is_at_chance() -> None:
    v = protection_verdict(_result(0.15, {"true": 0.12, "coarse": 0.88}, oracle=0.11, rnd=0.15))
    assert v.level == "inconclusive" and "at chance" in v.rule


def test_strongest_is_chosen_by_worst_labeling() -> None:
    r = _result(0.85, {"true": 0.30, "coarse": 0.88}, 0.35, 0.84)
    other = ProtectionRun("uc-victim", "uc", "method", "victim", 16 / 255, 20, 0.6, 0.5, 0.1, 0.5, 16, 26, 0.8, 1)
    r.protections.append(other)
    r.runs += [TrainerRun("uc-victim", "true", 10, 0.1, 0.6, 0.6), TrainerRun("uc-victim", "coarse", 4, 0.3, 0.7, 0.7)]
    assert strongest(r) == "uc-victim"  # smaller true-label drop but it holds under both labelings


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_resolves_and_validates(preset: str) -> None:
    cfg = preset_config(preset).protection
    assert isinstance(cfg, ProtectionAuditConfig)
    assert resolve_config(preset).protection == cfg


@pytest.mark.parametrize(
    "bad",
    [
        {"surrogates": []},
        {"surrogates": ["oracle"]},
        {"labelings": ["coarse"]},
        {"eps": 1.5},
        {"k_candidates": [1]},
        {"holds_at": 0.1, "fails_below": 0.2},
        {"uc": {"clusters": 3}},
        {"countermeasures": ["nope"]},
        {"train": 5},
    ],
)
def test_config_rejects_bad_values(bad) -> None:
    with pytest.raises(ValueError):
        ProtectionAuditConfig(**bad)
