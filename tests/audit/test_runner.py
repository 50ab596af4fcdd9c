"""The main audit runner: disjoint splits, resumable stages, failures recorded, report written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from encoder_audit.audit import AuditConfig, prepare_data, run_audit
from encoder_audit.audit import runner as runner_mod
from encoder_audit.config import build_config
from encoder_audit.runs import RunDir, derive_seed

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


def test_config_seeds_are_validated_and_seed_is_the_first() -> None:
    assert AuditConfig().seeds == (0,) and AuditConfig().seed == 0
    assert AuditConfig(seed=3).seeds == (3,)  # configurations written before seeds existed
    assert AuditConfig(seeds=(2, 5)).seed == 2
    assert build_config(AuditConfig, {"seeds": [1, 2], "seed": 1}).seeds == (1, 2)
    for bad, match in [
        ({"seeds": ()}, "at least one"),
        ({"seeds": (0, 0)}, "unique"),
        ({"seeds": (1, -1)}, "non-negative"),
        ({"seeds": (0, 1), "seed": 1}, "disagrees"),
    ]:
        with pytest.raises(ValueError, match=match):
            AuditConfig(**bad)
    with pytest.raises(ValueError, match="unique"):
        build_config(AuditConfig, {"seeds": [4, 4]})


def stub_stages(monkeypatch: pytest.MonkeyPatch, calls: list[tuple[int, str]], interrupt: int | None = None) -> None:
    """Small stand-ins for the victim and stealing stages: numbers that depend on the seed, a figure, costs."""

    def victim(ctx: runner_mod.AuditContext) -> dict:
        calls.append((ctx.run_seed, "victim"))
        return {"verdict": "info", "headline": "kNN 80.0%.", "tables": []}

    def stealing(ctx: runner_mod.AuditContext) -> dict:
        calls.append((ctx.run_seed, "stealing"))
        if ctx.run_seed == interrupt:
            raise KeyboardInterrupt
        fig = ctx.stage_dir("stealing") / "sweep.png"
        fig.write_bytes(b"png")
        knn = 0.6 + 0.1 * ctx.config.seeds.index(ctx.run_seed)
        return {
            "verdict": "high",
            "headline": f"RDA copied the encoder: kNN {knn:.1%}.",
            "tables": [{"title": "t", "columns": ["method", "budget", "kNN"], "rows": [["rda", 500, f"{knn:.3f}"]]}],
            "figures": [{"path": str(fig), "caption": "sweep"}],
            "costs": {"query_images": 500, "wall_seconds": 1.5},
            "config": {"seed": ctx.seed("stealing")},
        }

    monkeypatch.setitem(runner_mod.STAGES, "victim", ("Encoder under audit", victim))
    monkeypatch.setitem(runner_mod.STAGES, "stealing", ("Encoder stealing", stealing))


def test_multi_seed_audit_runs_each_seed_in_its_directory_resumes_and_aggregates(tmp_path: Path, monkeypatch) -> None:
    config = AuditConfig(**{**TINY.__dict__, "seeds": (0, 1), "seed": None, "sections": ("stealing",)})
    run = RunDir.create("audit", out=tmp_path / "run")
    calls: list[tuple[int, str]] = []
    stub_stages(monkeypatch, calls, interrupt=1)
    with pytest.raises(KeyboardInterrupt):
        run_audit(config, run, progress=False)
    assert calls == [(0, "victim"), (0, "stealing"), (1, "victim"), (1, "stealing")]
    seeds = tmp_path / "run" / "seeds"
    assert (seeds / "0" / "stages" / "stealing.json").is_file() and (seeds / "1" / "stages" / "victim.json").is_file()
    assert not (seeds / "1" / "stages" / "stealing.json").exists()
    interrupted = json.loads((tmp_path / "run" / "results.json").read_text())  # written after every stage
    assert set(interrupted["per_seed"]) == {"0", "1"} and "stealing" not in interrupted["per_seed"]["1"]["sections"]

    calls.clear()
    stub_stages(monkeypatch, calls)
    results = run_audit(config, run, progress=False)
    assert calls == [(1, "stealing")]  # only the unfinished stage ran again
    assert (seeds / "0" / "splits.json").read_text() != (seeds / "1" / "splits.json").read_text()
    per_seed = results["per_seed"]
    assert per_seed["0"]["sections"]["stealing"]["tables"][0]["rows"] == [["rda", 500, "0.600"]]
    assert per_seed["1"]["sections"]["stealing"]["tables"][0]["rows"] == [["rda", 500, "0.700"]]
    cell = results["sections"]["stealing"]["tables"][0]["rows"][0][2]
    assert cell["mean"] == pytest.approx(0.65) and cell["std"] == pytest.approx(0.1 / 2**0.5)
    assert results["sections"]["stealing"]["headline"] == "RDA copied the encoder: kNN 65.0% (mean of 2 seeds)."
    assert results["sections"]["stealing"]["figures"][0]["path"] == "seeds/0/stealing/sweep.png"
    assert results["sections"]["stealing"]["costs"]["query_images (total)"] == 1000
    assert results["seeds"] == [0, 1] and results["environment"]["seeds"] == [0, 1]
    assert results["wall_time_s"] == pytest.approx(sum(results["stage_seconds"].values()), abs=0.11)
    md = (tmp_path / "run" / "report.md").read_text()
    assert "| rda | 500 | 0.650 ± 0.071 |" in md and "Wall time per seed: seed 0:" in md


def test_a_given_victim_is_evaluated_once_and_given_splits_are_shared(tmp_path: Path, monkeypatch) -> None:
    config = AuditConfig(**{**TINY.__dict__, "seeds": (3, 1, 2), "seed": None, "sections": ("stealing",)})
    run = RunDir.create("audit", out=tmp_path / "run")
    prepare_data(config, manifest_path=run.file("splits.json"), seed=7)  # as `--splits` leaves it
    calls: list[tuple[int, str]] = []
    stub_stages(monkeypatch, calls)
    results = run_audit(config, run, victim=str(tmp_path / "given.safetensors"), progress=False)
    assert calls == [(3, "victim"), (3, "stealing"), (1, "stealing"), (2, "stealing")]
    assert not list((tmp_path / "run" / "seeds").glob("*/splits.json"))
    assert len({s["splits"]["sha256"] for s in results["per_seed"].values()}) == 1
    assert results["sections"]["victim"]["headline"] == "kNN 80.0%."  # one evaluation: no mean
    assert results["sections"]["stealing"]["tables"][0]["rows"][0][2]["n"] == 3
    # the stages derive their seeds from the run seed: seed 3 of this run is seed 3 of a one-seed run
    assert results["per_seed"]["3"]["sections"]["stealing"]["config"]["seed"] == derive_seed(3, "stealing") % 2**31


@pytest.mark.slow
def test_default_victim_is_trained_per_seed(tmp_path: Path) -> None:
    run = RunDir.create("audit", out=tmp_path / "run")
    results = run_audit(AuditConfig(**{**TINY.__dict__, "seeds": (0, 1), "seed": None}), run, progress=False)
    weights = [(tmp_path / "run" / "seeds" / s / "victim" / "encoder.safetensors").read_bytes() for s in "01"]
    assert weights[0] != weights[1]
    knn = results["sections"]["victim"]["tables"][0]["rows"][0][1]
    assert knn["n"] == 2 and knn["std"] > 0
    assert "(mean of 2 seeds)" in results["victim"]["description"]
    assert " ± " in (tmp_path / "run" / "report.html").read_text()
