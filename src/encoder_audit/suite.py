"""Experiment suites: a grid of ``encoder-audit`` commands declared in YAML, run, sharded, collected.

A suite file::

    name: quick-pretrain                 # names the suite directory
    command: pretrain                    # any encoder-audit command
    base: {preset: quick, no-progress: true}   # options shared by every cell
    grid:                                # cartesian product of these options
      method: [simclr, moco]
      seed: [0, 1, 2]
    metrics:                             # dotted paths into each cell's results.json
      kNN: evaluation.fashion-mnist.encoder.knn
      linear: evaluation.fashion-mnist.encoder.linear

Each cell runs ``encoder-audit COMMAND --opt value ... --out SUITE_DIR/cells/<cell>`` in its own
process. A cell whose ``results.json`` exists is skipped, so an interrupted suite resumes by running
it again. ``jobs`` cells run at once; ``shard=(i, n)`` runs only cells ``i, i+n, i+2n, ...`` so a grid
spreads over machines or a scheduler's array jobs; :func:`collect` merges the cells of one or more
suite directories into a table, averaging over ``seed`` (mean ± std).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import re
import statistics
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .config import load_yaml
from .io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Suite:
    """A parsed suite file."""

    name: str
    command: str
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"suite name must be letters, digits, '.', '_' or '-', got {self.name!r}")
        if not self.command or not re.fullmatch(r"[a-z-]+( [a-z-]+)?", self.command):
            raise ValueError(f"suite command must be an encoder-audit command, got {self.command!r}")
        for key, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"grid entry {key!r} must be a non-empty list")

    @classmethod
    def load(cls, path: str | Path) -> Suite:
        data = load_yaml(path)
        unknown = set(data) - {"name", "command", "base", "grid", "metrics"}
        if unknown:
            raise ValueError(f"{path}: unknown suite keys {sorted(unknown)}")
        if "command" not in data:
            raise ValueError(f"{path}: a suite needs a 'command'")
        return cls(
            name=str(data.get("name", Path(path).stem)),
            command=str(data["command"]),
            base=dict(data.get("base") or {}),
            grid={k: list(v) if isinstance(v, list) else v for k, v in (data.get("grid") or {}).items()},
            metrics={str(k): str(v) for k, v in (data.get("metrics") or {}).items()},
        )

    def cells(self) -> list[dict[str, Any]]:
        """Every combination of the grid, in a stable order."""
        keys = list(self.grid)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(self.grid[k] for k in keys))] or [{}]


def cell_id(params: dict[str, Any]) -> str:
    """A readable, filesystem-safe name of a cell, e.g. ``method=rda,queries=2500,seed=0``."""
    if not params:
        return "single"
    text = ",".join(f"{k}={v}" for k, v in params.items())
    return re.sub(r"[^A-Za-z0-9=,._-]+", "_", text)


def cell_argv(suite: Suite, params: dict[str, Any], out: Path) -> list[str]:
    """The ``encoder-audit`` argument list of one cell."""
    argv = suite.command.split()
    for key, value in {**suite.base, **params}.items():
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            for v in value:
                argv += [flag, str(v)]
        else:
            argv += [flag, str(value)]
    return [*argv, "--out", str(out)]


def run_suite(
    suite: Suite,
    root: str | Path = "runs",
    *,
    jobs: int = 1,
    shard: tuple[int, int] = (0, 1),
    dry_run: bool = False,
    progress: bool | None = None,
) -> Path:
    """Run the cells of ``suite`` (this shard) under ``root/suite-<name>/``; returns that directory.

    Raises:
        ValueError: bad shard or jobs.
        RuntimeError: some cells failed (their logs are in ``cells/<cell>.log``).
    """
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard must be I/N with 0 <= I < N, got {index}/{count}")
    if jobs < 1:
        raise ValueError("jobs must be >= 1")
    suite_dir = Path(root) / f"suite-{suite.name}"
    cells_dir = suite_dir / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        suite_dir / "suite.json",
        {
            "name": suite.name,
            "command": suite.command,
            "base": suite.base,
            "grid": suite.grid,
            "metrics": suite.metrics,
        },
    )
    mine = [p for i, p in enumerate(suite.cells()) if i % count == index]
    todo = [p for p in mine if not (cells_dir / cell_id(p) / "results.json").is_file()]
    log.info("suite %s: %d cells in this shard, %d to run", suite.name, len(mine), len(todo))
    if dry_run:
        for p in todo:
            log.info("would run: encoder-audit %s", " ".join(cell_argv(suite, p, cells_dir / cell_id(p))))
        return suite_dir

    def run_cell(params: dict[str, Any]) -> tuple[str, int]:
        cid = cell_id(params)
        argv = [sys.executable, "-m", "encoder_audit", *cell_argv(suite, params, cells_dir / cid)]
        with open(cells_dir / f"{cid}.log", "w") as logf:
            code = subprocess.run(argv, stdout=logf, stderr=subprocess.STDOUT).returncode
        return cid, code

    failed = []
    with (
        ThreadPoolExecutor(max_workers=jobs) as pool,
        tqdm(
            total=len(todo), desc=f"suite {suite.name}", unit="cell", disable=True if progress is False else None
        ) as bar,
    ):
        for cid, code in pool.map(run_cell, todo):
            bar.update(1)
            if code != 0:
                failed.append(cid)
                log.error("cell %s failed (exit %d); see %s", cid, code, cells_dir / f"{cid}.log")
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(todo)} cells failed: {', '.join(failed[:5])}")
    return suite_dir


def _lookup(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return None
    return obj


def collect(suite_dirs: Iterable[str | Path], out: str | Path | None = None) -> tuple[list[str], list[list[Any]]]:
    """Merge the finished cells of suite directories (e.g. several shards) into one table.

    Rows group cells that differ only in ``seed``; each metric becomes ``mean ± std`` over seeds.
    Writes ``table.md``, ``table.csv`` and ``table.json`` into ``out`` (default: the first directory).

    Raises:
        ValueError: no suite directories or no finished cells.
    """
    dirs = [Path(d) for d in suite_dirs]
    if not dirs:
        raise ValueError("collect needs at least one suite directory")
    meta: dict[str, Any] = {}
    groups: dict[tuple[tuple[str, str], ...], list[dict[str, Any]]] = {}
    for d in dirs:
        if not (d / "suite.json").is_file():
            raise ValueError(f"{d} is not a suite directory (no suite.json)")
        meta = meta or json.loads((d / "suite.json").read_text())
        for res_path in sorted((d / "cells").glob("*/results.json")):
            params = dict(kv.split("=", 1) for kv in res_path.parent.name.split(",") if "=" in kv)
            key = tuple(sorted((k, v) for k, v in params.items() if k != "seed"))
            groups.setdefault(key, []).append(json.loads(res_path.read_text()))
    if not groups:
        raise ValueError(f"no finished cells in {', '.join(map(str, dirs))}")
    metrics = meta.get("metrics") or {}
    param_cols = sorted({k for key in groups for k, _ in key})
    columns = [*param_cols, "seeds", *metrics]
    rows: list[list[Any]] = []
    for key, results in sorted(groups.items()):
        params = dict(key)
        row: list[Any] = [params.get(c, "") for c in param_cols] + [len(results)]
        for path in metrics.values():
            vals = [v for v in (_lookup(r, path) for r in results) if isinstance(v, (int, float))]
            if not vals:
                row.append(None)
            else:
                row.append({"mean": statistics.mean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0})
        rows.append(row)
    target = Path(out) if out else dirs[0]
    target.mkdir(parents=True, exist_ok=True)
    atomic_write_json(target / "table.json", {"columns": columns, "rows": rows})

    def fmt(c: Any) -> str:
        if isinstance(c, dict):
            return f"{c['mean']:.4g} ± {c['std']:.2g}"
        return "–" if c is None else str(c)

    md = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    atomic_write_text(target / "table.md", "\n".join(md) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    writer.writerows([[fmt(c) for c in row] for row in rows])
    atomic_write_text(target / "table.csv", buf.getvalue())
    return columns, rows
