"""The main audit runner: disjoint splits, results stored and rebuilt on resume, failures recorded, seeds aggregated."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from encoder_audit.audit import family as family_mod
from encoder_audit.audit import prepare_data, resolve_config, run_audit
from encoder_audit.audit.family import Family, StageContext, result_from_json, result_to_json
from encoder_audit.report.model import Control, Section, Table, Text, Verdict, key, num
from encoder_audit.runs import RunDir

TINY = resolve_config(
    "smoke",
    values={
        "sections": [],
        "data": {
            "dataset": "synthetic",
            "eval_datasets": ["synthetic"],
            "members": 128,
            "nonmembers": 64,
            "shadow": 64,
            "queries": 64,
        },
        "default_victim": {"epochs": 1, "batch_size": 64},
    },
)


@dataclass
class ProbeResult:
    """Mean embedding norm of the member and non-member splits (a real, cheap measurement)."""

    member_norm: float
    nonmember_norm: float
    per_split: dict[str, float] = field(default_factory=dict)
    views: list[int] = field(default_factory=list)


CALLS: list[int] = []


def _run_probe(ctx: StageContext, config: object) -> ProbeResult:
    CALLS.append(ctx.run_seed)
    v = ctx.victim()
    norms = {
        name: float(v.embed(ds.images[:32].float() / 255).norm(dim=1).mean())
        for name, ds in (("members", ctx.data.members), ("nonmembers", ctx.data.nonmembers))
    }
    return ProbeResult(norms["members"], norms["nonmembers"], norms, [ctx.seed % 7])


def _build_probe(r: ProbeResult) -> Section:
    gap = r.member_norm - r.nonmember_norm
    return Section(
        key="stealing",
        title="Probe",
        headline=Text("member norm {m:.3f}, gap {g:+.3f}", {"m": r.member_norm, "g": gap}),
        verdict=Verdict("low", "low if |gap| < 10", [Control("null", "negative", "gap", gap, 10.0, abs(gap) >= 10)]),
        tables=[Table("norms", [key("split"), num("norm")], [[k, v] for k, v in r.per_split.items()])],
    )


PROBE = Family("stealing", "Probe", "stealing", ProbeResult, _run_probe, _build_probe)


@pytest.fixture
def probe_family(monkeypatch: pytest.MonkeyPatch) -> Family:
    family_mod.families()  # load the built-in families first, then replace one
    monkeypatch.setitem(family_mod._FAMILIES, "stealing", PROBE)
    CALLS.clear()
    return PROBE


def test_splits_are_disjoint_and_reloadable(tmp_path: Path) -> None:
    data = prepare_data(TINY.data, seed=0, manifest_path=tmp_path / "splits.json")
    parts = [set(np.asarray(d.indices).tolist()) for d in (data.members, data.nonmembers, data.shadow, data.queries)]
    assert [len(p) for p in parts] == [128, 64, 64, 64]
    assert sum(len(p) for p in parts) == len(set().union(*parts))
    again = prepare_data(TINY.data, seed=5, manifest_path=tmp_path / "splits.json")
    assert again.manifest.hash() == data.manifest.hash()


def test_results_round_trip_nested_dataclasses() -> None:
    r = ProbeResult(1.0, float("nan"), {"a": 2.0}, [1, 2])
    back = result_from_json(ProbeResult, json.loads(json.dumps(result_to_json(r))))
    assert back.member_norm == 1.0 and np.isnan(back.nonmember_norm) and back.per_split == {"a": 2.0}
    with pytest.raises(ValueError, match="missing"):
        result_from_json(ProbeResult, {"member_norm": 1.0})


def test_victim_stage_trains_evaluates_reports_and_resumes(tmp_path: Path, probe_family: Family) -> None:
    config = replace(TINY, sections=("stealing",))
    results = run_audit(config, tmp_path / "run", progress=False)
    assert results["schema_version"] == 2
    victim = results["sections"]["victim"]
    assert victim["verdict"]["level"] == "info" and victim["tables"][0]["rows"][0][0] == "synthetic"
    assert isinstance(victim["tables"][0]["rows"][0][1], float)  # numbers stay numbers
    assert (tmp_path / "run" / "victim" / "encoder.safetensors").is_file()
    assert (tmp_path / "run" / "report.html").is_file() and (tmp_path / "run" / "report.md").is_file()
    stored = json.loads((tmp_path / "run" / "stages" / "stealing.json").read_text())
    assert set(stored["result"]) == {"member_norm", "nonmember_norm", "per_split", "views"}
    stamp = (tmp_path / "run" / "stages" / "victim.json").stat().st_mtime_ns
    again = run_audit(config, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "stages" / "victim.json").stat().st_mtime_ns == stamp  # not re-run
    assert CALLS == [0]  # the family's result was reloaded, its section rebuilt
    assert again["sections"]["stealing"] == results["sections"]["stealing"]


def test_a_failing_stage_is_recorded_and_the_audit_goes_on(
    tmp_path: Path, probe_family: Family, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(ctx: StageContext, config: object) -> ProbeResult:
        raise RuntimeError("the attack exploded")

    monkeypatch.setitem(family_mod._FAMILIES, "stealing", replace(PROBE, run=broken))
    results = run_audit(replace(TINY, sections=("stealing",)), tmp_path / "run", progress=False)
    sec = results["sections"]["stealing"]
    assert sec["verdict"]["level"] == "failed" and "the attack exploded" in sec["headline"]["template"]
    assert "RuntimeError" in (tmp_path / "run" / "stealing-error.log").read_text()
    assert not (tmp_path / "run" / "stages" / "stealing.json").exists()  # retried on --resume


def test_a_family_can_say_why_it_does_not_run(tmp_path: Path, probe_family: Family, monkeypatch) -> None:
    monkeypatch.setitem(family_mod._FAMILIES, "stealing", replace(PROBE, skip=lambda ctx: "members are unknown"))
    results = run_audit(replace(TINY, sections=("stealing",)), tmp_path / "run", progress=False)
    assert results["sections"]["stealing"]["verdict"]["level"] == "skipped"
    assert CALLS == []


def test_multi_seed_audit_runs_each_seed_in_its_directory_and_aggregates(tmp_path: Path, probe_family: Family) -> None:
    config = replace(TINY, sections=("stealing",), seeds=(0, 1))
    results = run_audit(config, tmp_path / "run", progress=False)
    assert sorted(CALLS) == [0, 1]
    for s in (0, 1):
        assert (tmp_path / "run" / "seeds" / str(s) / "stages" / "stealing.json").is_file()
    sec = results["sections"]["stealing"]
    assert sec["seeds"] == 2
    m = sec["headline"]["values"]["m"]
    per = [results["per_seed"][str(s)]["sections"]["stealing"]["headline"]["values"]["m"] for s in (0, 1)]
    assert m["mean"] == pytest.approx(sum(per) / 2) and m["n"] == 2


def test_a_given_encoder_object_is_audited_and_evaluated_once(tmp_path: Path, probe_family: Family) -> None:
    from encoder_audit.evaluate import random_init_baseline

    enc = random_init_baseline("cnn-small", (1, 28, 28), seed=0)
    config = replace(TINY, sections=("stealing",), seeds=(0, 1))
    results = run_audit(config, tmp_path / "run", victim=enc, progress=False)
    assert not (tmp_path / "run" / "seeds" / "0" / "victim" / "encoder.safetensors").exists()
    assert "victim" in results["per_seed"]["0"]["sections"] and "victim" not in results["per_seed"]["1"]["sections"]
    assert results["victim"]["name"].startswith("encoder LocalEncoder")
    with torch.no_grad():
        assert results["sections"]["stealing"]["tables"][0]["rows"]


def test_run_directory_given_as_a_relative_path_renders_figures(tmp_path: Path, monkeypatch, probe_family) -> None:
    monkeypatch.chdir(tmp_path)
    run_audit(replace(TINY, sections=()), Path("runs") / "r", progress=False)
    assert (tmp_path / "runs" / "r" / "report.html").is_file()
    RunDir.open(Path("runs") / "r").load_results()
