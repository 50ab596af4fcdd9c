"""``encoder-audit audit`` from the command line: presets, --set, --config, --dry-run, errors, a real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from encoder_audit.cli.main import main

TINY = [
    "--preset",
    "smoke",
    "--dataset",
    "synthetic",
    "--eval-dataset",
    "synthetic",
    "--set",
    "data.members=128",
    "--set",
    "default_victim.epochs=1",
    "--sections",
    "",
    "--no-progress",
]


def _config_from_dry_run(out: str) -> dict:
    text = out.split("# resolved config\n", 1)[1].split("\n# plan", 1)[0]
    return yaml.safe_load(text)


def test_paper_dry_run_resolves_every_stage_without_a_gpu(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["audit", "--preset", "paper", "--device", "cuda", "--dry-run", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    config = _config_from_dry_run(out)
    assert config["device"] == "cuda" and config["data"]["dataset"] == "cifar10"
    assert config["default_victim"]["encoder"] == "resnet18"
    for stage in ("victim", "stealing", "membership", "poisoning", "protection"):
        assert f". {stage}:" in out
    assert not any(tmp_path.iterdir())  # nothing was written


def test_set_reaches_a_family_and_a_run_config_repeats_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ["audit", "--preset", "smoke", "--set", "stealing.budgets=[500,5000]", "--seeds", "0", "1"]
    assert main([*args, "--dry-run"]) == 0
    config = _config_from_dry_run(capsys.readouterr().out)
    assert config["stealing"]["budgets"] == [500, 5000] and config["seeds"] == [0, 1]
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump({**config, "victim": "runs/x/encoder.safetensors"}))
    assert main(["audit", "--config", str(saved), "--dry-run"]) == 0
    again = _config_from_dry_run(capsys.readouterr().out)
    assert again == {**config, "victim": "runs/x/encoder.safetensors"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "stealing.nope=1"], "stealing.nope"),
        (["--seeds", "0", "0"], "unique"),
        (["--set", "data.members=0"], "members"),
        (["--sections", "stealing,mind-reading"], "mind-reading"),
        (["--splits", "no-such-file.json"], "not found"),
        (["--config", "no-such-file.yaml"], "not found"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["audit", "--preset", "smoke", "--runs-dir", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_seed_and_seeds_conflict() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["audit", "--seed", "1", "--seeds", "0", "1"])
    assert exc.value.code == 2


def test_audit_runs_saves_its_config_resumes_and_repeats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["audit", *TINY, "--runs-dir", "runs", "--out", "runs/a"]) == 0
    out = capsys.readouterr().out
    assert "report: runs/a/report.html" in out
    results = json.loads((tmp_path / "runs" / "a" / "results.json").read_text())
    assert results["schema_version"] == 2
    assert isinstance(results["sections"]["victim"]["headline"]["values"]["knn"], float)
    saved = yaml.safe_load((tmp_path / "runs" / "a" / "config.yaml").read_text())
    assert saved["data"]["dataset"] == "synthetic" and saved["victim"] is None
    # resume: nothing left to do, the stored stage is kept
    stamp = (tmp_path / "runs" / "a" / "stages" / "victim.json").stat().st_mtime_ns
    assert main(["audit", "--resume", "runs/a", "--no-progress"]) == 0
    assert (tmp_path / "runs" / "a" / "stages" / "victim.json").stat().st_mtime_ns == stamp
    assert main(["audit", "--resume", "runs/a", "--seeds", "3"]) == 2
    # the saved config repeats the run
    assert main(["audit", "--config", "runs/a/config.yaml", "--out", "runs/b", "--no-progress"]) == 0
    again = json.loads((tmp_path / "runs" / "b" / "results.json").read_text())
    assert again["config"] == results["config"]
    assert again["sections"]["victim"]["tables"] == results["sections"]["victim"]["tables"]
