"""Experiment suites: grid expansion, sharding, resumption and collection."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from encoder_audit.cli.main import main
from encoder_audit.suite import Suite, cell_argv, cell_id, collect, command_argv, run_suite


def write_suite(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


SUITE = """
name: tiny
command: pretrain
base: {dataset: synthetic, max-images: 64, batch-size: 32, epochs: 1, no-eval: true, no-progress: true}
grid:
  method: [simclr, moco]
  seed: [0, 1]
metrics:
  loss: train.final_loss
"""


def test_grid_cells_argv_and_validation(tmp_path: Path) -> None:
    suite = Suite.load(write_suite(tmp_path, SUITE))
    cells = suite.cells()
    assert len(cells) == 4 and cells[0] == {"method": "simclr", "seed": 0}
    argv = cell_argv(suite, cells[0], Path("out"))
    assert argv[:1] == ["pretrain"] and "--no-eval" in argv and "--max-images" in argv
    assert argv[-2:] == ["--out", "out"] and "--no-progress" in argv
    assert cell_id({"method": "rda", "queries": 2500}) == "method=rda,queries=2500"
    with pytest.raises(ValueError, match="unknown suite keys"):
        Suite.load(write_suite(tmp_path, "command: pretrain\ngird: {}\n"))
    with pytest.raises(ValueError, match="non-empty list"):
        Suite.load(write_suite(tmp_path, "command: pretrain\ngrid: {seed: []}\n"))


def test_shards_partition_the_grid(tmp_path: Path) -> None:
    suite = Suite.load(write_suite(tmp_path, SUITE))
    for i in range(3):
        run_suite(suite, tmp_path / "runs", shard=(i, 3), dry_run=True, progress=False)
    with pytest.raises(ValueError, match="shard"):
        run_suite(suite, tmp_path / "runs", shard=(3, 3), dry_run=True)


def test_collect_averages_over_seeds_and_merges_shards(tmp_path: Path) -> None:
    for shard, seeds in ((0, (0,)), (1, (1, 2))):
        d = tmp_path / f"shard{shard}"
        (d / "cells").mkdir(parents=True)
        (d / "suite.json").write_text(json.dumps({"metrics": {"acc": "eval.acc"}}))
        for seed in seeds:
            cell = d / "cells" / f"method=rda,seed={seed}"
            cell.mkdir()
            (cell / "results.json").write_text(json.dumps({"eval": {"acc": 0.5 + 0.1 * seed}}))
    columns, rows = collect([tmp_path / "shard0", tmp_path / "shard1"], tmp_path / "table")
    assert columns == ["method", "seeds", "acc"]
    assert rows[0][:2] == ["rda", 3]
    assert rows[0][2]["mean"] == pytest.approx(0.6) and rows[0][2]["std"] == pytest.approx(0.1)
    assert "0.6 ± 0.1" in (tmp_path / "table" / "table.md").read_text()


def test_run_suite_end_to_end_and_resume(tmp_path: Path, capsys) -> None:
    path = write_suite(tmp_path, SUITE.replace("[simclr, moco]", "[simclr]"))
    assert main(["run", str(path), "--runs-dir", str(tmp_path / "runs"), "--jobs", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| simclr | 2 |" in out
    cells = sorted((tmp_path / "runs" / "suite-tiny" / "cells").glob("*/results.json"))
    assert len(cells) == 2
    stamp = cells[0].stat().st_mtime_ns
    assert main(["run", str(path), "--runs-dir", str(tmp_path / "runs"), "--no-progress"]) == 0
    assert cells[0].stat().st_mtime_ns == stamp  # finished cells are not run again


SCRIPT = """
import argparse, json, pathlib
ap = argparse.ArgumentParser()
ap.add_argument("--seed", type=int)
ap.add_argument("--scale", type=float)
ap.add_argument("--input")
ap.add_argument("--out", type=pathlib.Path)
a = ap.parse_args()
base = float(pathlib.Path(a.input).read_text())
if a.seed == 99:
    raise SystemExit(3)
with a.out.open("a") as f:  # appends, like the benchmark scripts: a re-run must not duplicate rows
    f.write(json.dumps({"seed": a.seed, "value": base + a.scale * a.seed}) + "\\n")
"""

REPORT = """
import json, sys
rows = [json.loads(line) for path in sys.argv[1:] for line in open(path)]
print("| seed | value |")
for r in sorted(rows, key=lambda r: r["seed"]):
    print(f"| {r['seed']} | {r['value']} |")
"""


def test_script_suite_setup_cells_report_and_resume(tmp_path: Path, capsys) -> None:
    (tmp_path / "bench.py").write_text(SCRIPT)
    (tmp_path / "report.py").write_text(REPORT)
    made = tmp_path / "prepared.txt"
    (tmp_path / "prep.py").write_text("import pathlib, sys\npathlib.Path(sys.argv[1]).write_text('10')\n")
    prep = f"python {tmp_path / 'prep.py'} {made}"
    text = f"""
name: bench
script: {tmp_path / "bench.py"}
setup:
  - run: {prep}
    creates: {made}
base: {{scale: 0.5, input: {made}}}
grid: {{seed: [0, 1, 2]}}
output: rows.jsonl
report: python {tmp_path / "report.py"} {{outputs}}
"""
    path = write_suite(tmp_path, text)
    suite = Suite.load(path)
    assert cell_argv(suite, {"seed": 1}, Path("c"))[-2:] == ["--out", str(Path("c") / "rows.jsonl")]
    assert cell_argv(suite, {"seed": [1, 2]}, Path("c"))[-5:-2] == ["--seed", "1", "2"]
    runs = tmp_path / "runs"
    assert main(["run", str(path), "--runs-dir", str(runs), "--jobs", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| 0 | 10.0 |" in out and "| 2 | 11.0 |" in out
    assert (runs / "suite-bench" / "report.md").read_text().count("\n") == 4
    # a cell that died half-way is re-run from scratch: its partial output is not kept
    cell = runs / "suite-bench" / "cells" / "seed=1"
    (cell / "done.json").unlink()
    made.write_text("20")  # setup is skipped (its output exists), so the edited value is used
    assert main(["run", str(path), "--runs-dir", str(runs), "--no-progress"]) == 0
    assert (cell / "rows.jsonl").read_text().count("\n") == 1
    assert "| 1 | 20.5 |" in capsys.readouterr().out
    assert main(["run", "--collect", str(runs / "suite-bench")]) == 0
    assert "| 1 | 20.5 |" in capsys.readouterr().out


def test_script_suite_failures_are_reported(tmp_path: Path) -> None:
    (tmp_path / "bench.py").write_text(SCRIPT)
    (tmp_path / "in.txt").write_text("1")
    text = f"name: bad\nscript: {tmp_path / 'bench.py'}\nbase: {{scale: 1, input: {tmp_path / 'in.txt'}}}\n"
    path = write_suite(tmp_path, text + "grid: {seed: [1, 99]}\n")
    with pytest.raises(RuntimeError, match="1 of 2 cells failed: seed=99"):
        run_suite(Suite.load(path), tmp_path / "runs", progress=False)
    assert (tmp_path / "runs" / "suite-bad" / "cells" / "seed=1" / "done.json").is_file()
    assert not (tmp_path / "runs" / "suite-bad" / "cells" / "seed=99" / "done.json").exists()
    bad_setup = write_suite(tmp_path, text + "setup: ['python -c \"raise SystemExit(4)\"']\n")
    with pytest.raises(RuntimeError, match="setup step 0 failed"):
        run_suite(Suite.load(bad_setup), tmp_path / "runs", progress=False)
    with pytest.raises(ValueError, match="exactly one of"):
        Suite.load(write_suite(tmp_path, "name: x\ncommand: pretrain\nscript: a.py\n"))


def test_script_suite_stdout_output(tmp_path: Path, capsys) -> None:
    (tmp_path / "echo.py").write_text("import sys\nprint('value', sys.argv[-1])\n")
    path = write_suite(
        tmp_path,
        f"name: echo\nscript: {tmp_path / 'echo.py'}\nstdout: true\noutput: out.txt\ngrid: {{threads: [1, 2]}}\n"
        "report: python -c \"import sys; print(' + '.join(open(p).read().strip() for p in sys.argv[1:]))\" {outputs}\n",
    )
    assert cell_argv(Suite.load(path), {"threads": 1}, Path("c")) == [str(tmp_path / "echo.py"), "--threads", "1"]
    assert main(["run", str(path), "--runs-dir", str(tmp_path / "runs"), "--no-progress"]) == 0
    assert "value 1 + value 2" in capsys.readouterr().out


def test_shipped_suites_are_valid(tmp_path: Path) -> None:
    """Every suite under suites/ parses, names existing scripts and expands to its cells."""
    root = Path(__file__).resolve().parents[1]
    paths = sorted((root / "suites").glob("*.yaml"))
    assert len(paths) >= 10
    for path in paths:
        suite = Suite.load(path)
        assert suite.name == path.stem, path
        if suite.script:
            assert (root / suite.script).is_file(), suite.script
        for step in suite.setup:
            words = step.run.split()
            if words[0] == "python" and words[1].endswith(".py"):
                assert (root / words[1]).is_file(), step.run
        assert suite.cells()
        run_suite(suite, tmp_path / "runs", dry_run=True, progress=False)


def test_command_argv_placeholders_and_interpreter() -> None:
    text = "python r.py --rows {outputs} --fig {suite_dir}/a.png -c {x: 1}"
    argv = command_argv(text, outputs=["a", "b"], suite_dir="S")
    assert argv == [sys.executable, "r.py", "--rows", "a", "b", "--fig", "S/a.png", "-c", "{x:", "1}"]
    assert command_argv("encoder-audit run x.yaml")[:3] == [sys.executable, "-m", "encoder_audit"]
    with pytest.raises(ValueError, match="empty command"):
        command_argv("  ")
