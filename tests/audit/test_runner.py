"""The main audit runner: disjoint splits, resumable stages, failures recorded, report written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from encoder_audit.audit import AuditConfig, prepare_data, run_audit
from encoder_audit.audit import runner as runner_mod
from encoder_audit.runs import RunDir

TINY = AuditConfig(
    dataset="synthetic",
    eval_datasets=("synthetic",),
    sections=(),
    members=128,
    nonmembers=64,
    shadow=64,
    queries=64,
    victim_epochs=1,
    victim_batch_size=64,
)


def test_splits_are_disjoint_and_reloadable(tmp_path: Path) -> None:
    data = prepare_data(TINY, manifest_path=tmp_path / "splits.json")
    parts = [set(np.asarray(d.indices).tolist()) for d in (data.members, data.nonmembers, data.shadow, data.queries)]
    assert [len(p) for p in parts] == [128, 64, 64, 64]
    assert sum(len(p) for p in parts) == len(set().union(*parts))
    again = prepare_data(TINY, manifest_path=tmp_path / "splits.json")
    assert again.manifest.hash() == data.manifest.hash()


def test_config_rejects_unknown_sections() -> None:
    with pytest.raises(ValueError, match="unknown audit section"):
        AuditConfig(sections=("stealing", "mind-reading"))


def test_victim_stage_trains_evaluates_reports_and_resumes(tmp_path: Path, monkeypatch) -> None:
    run = RunDir.create("audit", out=tmp_path / "run")
    results = run_audit(TINY, run, progress=False)
    victim = results["sections"]["victim"]
    assert victim["verdict"] == "info" and victim["tables"][0]["rows"][0][0] == "synthetic"
    assert (tmp_path / "run" / "victim" / "encoder.safetensors").is_file()
    assert (tmp_path / "run" / "report.html").is_file() and (tmp_path / "run" / "report.md").is_file()
    stamp = (tmp_path / "run" / "stages" / "victim.json").stat().st_mtime_ns

    def broken(ctx):
        raise RuntimeError("the attack exploded")

    monkeypatch.setitem(runner_mod.STAGES, "stealing", ("Encoder stealing", broken))
    again = run_audit(AuditConfig(**{**TINY.__dict__, "sections": ("stealing",)}), run, progress=False)
    assert (tmp_path / "run" / "stages" / "victim.json").stat().st_mtime_ns == stamp  # not re-run
    assert again["sections"]["stealing"]["verdict"] == "failed"
    assert "the attack exploded" in again["sections"]["stealing"]["headline"]
    assert "RuntimeError" in (tmp_path / "run" / "stealing-error.log").read_text()
    assert not (tmp_path / "run" / "stages" / "stealing.json").exists()  # a failed stage is retried on resume
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["kind"] == "audit"
    assert saved["wall_time_s"] == pytest.approx(sum(saved["stage_seconds"].values()), abs=0.11)
