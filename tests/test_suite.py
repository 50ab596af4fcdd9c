"""Experiment suites: grid expansion, sharding, resumption and collection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from encoder_audit.cli.main import main
from encoder_audit.suite import Suite, cell_argv, cell_id, collect, run_suite


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
