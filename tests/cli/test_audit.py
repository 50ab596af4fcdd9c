"""``encoder-audit audit --seeds``: parsing, validation, the config it saves, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from encoder_audit.audit import runner as runner_mod
from encoder_audit.cli.main import build_parser, main

TINY = [
    "--set",
    "dataset=synthetic",
    "--set",
    "eval_datasets=[synthetic]",
    "--set",
    "members=128",
    "--set",
    "nonmembers=64",
    "--set",
    "shadow=64",
    "--set",
    "queries=64",
    "--sections",
    "stealing",
    "--no-progress",
]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """Small stand-ins for the victim and stealing stages (the runner and the report are real)."""
    seen: list[tuple[int, str]] = []

    def stage(name: str, title: str):
        def run(ctx: runner_mod.AuditContext) -> dict:
            seen.append((ctx.run_seed, name))
            value = 0.5 + ctx.run_seed / 100
            return {
                "verdict": "info" if name == "victim" else "medium",
                "headline": f"{name} {value:.2f}.",
                "tables": [{"title": "t", "columns": ["what", "value"], "rows": [[name, value]]}],
            }

        return (title, run)

    monkeypatch.setitem(runner_mod.STAGES, "victim", stage("victim", "Encoder under audit"))
    monkeypatch.setitem(runner_mod.STAGES, "stealing", stage("stealing", "Encoder stealing"))
    return seen


def test_seeds_flag_parses_and_conflicts_with_seed(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert parser.parse_args(["audit", "--seeds", "0", "1", "2"]).seeds == [0, 1, 2]
    assert parser.parse_args(["audit", "--seed", "4"]).seed == 4
    assert not hasattr(parser.parse_args(["audit"]), "seeds")
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["audit", "--seeds", "0", "--seed", "1"])
    assert exc.value.code == 2
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    assert "--seeds 0 1 2" in capsys.readouterr().out


@pytest.mark.parametrize("seeds, message", [(["0", "0"], "unique"), (["1", "-2"], "non-negative")])
def test_bad_seeds_exit_2_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seeds: list[str], message: str
) -> None:
    assert main(["audit", "--seeds", *seeds, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_audit_with_seeds_saves_them_aggregates_and_resumes(tmp_path: Path, calls, capsys) -> None:
    out = tmp_path / "run"
    assert main(["audit", "--seeds", "2", "6", "--out", str(out), *TINY]) == 0
    assert calls == [(2, "victim"), (2, "stealing"), (6, "victim"), (6, "stealing")]
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["seeds"] == [2, 6] and saved["seed"] == 2
    assert "stealing 0.54 (mean of 2 seeds)." in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert list(results["per_seed"]) == ["2", "6"]
    # resuming keeps the finished stages and the run's seeds
    calls.clear()
    assert main(["audit", "--resume", str(out), "--no-progress"]) == 0 and calls == []
    assert main(["audit", "--resume", str(out), "--seeds", "2"]) == 2
    # the report command re-renders the aggregate from results.json alone
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0
    assert "| stealing | 0.54 ± 0.03 |" in (out / "report.md").read_text()


def test_seed_in_a_config_file_and_seeds_flag_over_it(tmp_path: Path, calls) -> None:
    cfg = tmp_path / "audit.yaml"
    cfg.write_text("seed: 7\n")  # a file written before seeds existed
    assert main(["audit", "--config", str(cfg), "--out", str(tmp_path / "a"), *TINY]) == 0
    assert yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())["seeds"] == [7]
    assert (tmp_path / "a" / "stages" / "stealing.json").is_file()  # one seed: the run directory itself
    assert main(["audit", "--config", str(cfg), "--seeds", "1", "3", "--out", str(tmp_path / "b"), *TINY]) == 0
    assert yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())["seeds"] == [1, 3]
    assert calls[-1] == (3, "stealing")
