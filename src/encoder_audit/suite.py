"""Experiment suites: a grid of commands declared in YAML, run, sharded, collected.

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
process. A finished cell is skipped, so an interrupted suite resumes by running it again. ``jobs``
cells run at once; ``shard=(i, n)`` runs only cells ``i, i+n, i+2n, ...`` so a grid spreads
over machines or a scheduler's array jobs; :func:`collect` merges the cells of one or more suite
directories into a table, averaging over ``seed`` (mean ± std).

A suite may instead run a Python **script** per cell (the benchmark scripts under ``benchmarks/``),
prepare shared inputs once (``setup``) and turn all cells' outputs into tables and figures
(``report``)::

    name: stealing-budgets
    script: benchmarks/stealing_sweep.py       # run with this Python, from the current directory
    setup:                                     # in order, before any cell; skipped when `creates` exists
      - run: encoder-audit pretrain --preset quick --out runs/victim --no-progress
        creates: runs/victim/encoder.safetensors
    base: {victim: runs/victim/encoder.safetensors}
    grid: {seed: [0, 1, 2]}
    output: rows.jsonl                         # each cell gets --out CELL/rows.jsonl
    # stdout: true                             # or: no --out; the script's stdout is saved as CELL/rows.jsonl
    # a list value becomes "--flag a b c" for scripts and "--flag a --flag b" for encoder-audit commands
    report: python benchmarks/stealing_report.py --rows {outputs} --figure {suite_dir}/budget.png

In ``run``/``report`` strings, ``encoder-audit`` and ``python`` mean this interpreter, ``{outputs}``
expands to the output file of every finished cell and ``{suite_dir}`` to the suite directory; the
report's standard output is saved as ``SUITE_DIR/report.md``. A cell is finished once it exited 0
(``done.json`` in its directory); an unfinished cell's old output is removed before it runs again.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .config import load_yaml
from .io import atomic_write_json, atomic_write_text
from .report.aggregate import summarize

log = logging.getLogger(__name__)

SUITE_KEYS = {"name", "command", "script", "setup", "base", "grid", "metrics", "output", "stdout", "report"}


@dataclass(frozen=True)
class SetupStep:
    """A command run once before the cells; skipped when ``creates`` (a path) already exists."""

    run: str
    creates: str | None = None


@dataclass(frozen=True)
class Suite:
    """A parsed suite file."""

    name: str
    command: str = ""
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    script: str = ""
    setup: tuple[SetupStep, ...] = ()
    output: str = "results.json"
    stdout: bool = False
    report: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"suite name must be letters, digits, '.', '_' or '-', got {self.name!r}")
        if bool(self.command) == bool(self.script):
            raise ValueError("a suite needs exactly one of 'command' (encoder-audit) or 'script' (a .py file)")
        if self.command and not re.fullmatch(r"[a-z-]+( [a-z-]+)?", self.command):
            raise ValueError(f"suite command must be an encoder-audit command, got {self.command!r}")
        if self.stdout and not self.script:
            raise ValueError("'stdout: true' is for script suites")
        if self.script and not self.script.endswith(".py"):
            raise ValueError(f"suite script must be a .py file, got {self.script!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.output):
            raise ValueError(f"suite output must be a file name, got {self.output!r}")
        for key, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"grid entry {key!r} must be a non-empty list")

    @classmethod
    def load(cls, path: str | Path) -> Suite:
        data = load_yaml(path)
        unknown = set(data) - SUITE_KEYS
        if unknown:
            raise ValueError(f"{path}: unknown suite keys {sorted(unknown)}")
        if "command" not in data and "script" not in data:
            raise ValueError(f"{path}: a suite needs a 'command' or a 'script'")
        steps = []
        for step in data.get("setup") or []:
            if isinstance(step, str):
                step = {"run": step}
            if not isinstance(step, dict) or set(step) - {"run", "creates"} or "run" not in step:
                raise ValueError(f"{path}: each setup step is a command or {{run: ..., creates: ...}}")
            steps.append(SetupStep(str(step["run"]), None if step.get("creates") is None else str(step["creates"])))
        return cls(
            name=str(data.get("name", Path(path).stem)),
            command=str(data.get("command") or ""),
            script=str(data.get("script") or ""),
            setup=tuple(steps),
            base=dict(data.get("base") or {}),
            grid={k: list(v) if isinstance(v, list) else v for k, v in (data.get("grid") or {}).items()},
            metrics={str(k): str(v) for k, v in (data.get("metrics") or {}).items()},
            output=str(data.get("output") or "results.json"),
            stdout=bool(data.get("stdout", False)),
            report=str(data.get("report") or ""),
        )

    @classmethod
    def load_meta(cls, suite_dir: str | Path) -> Suite:
        """The suite recorded in a suite directory's ``suite.json``.

        Raises:
            ValueError: not a suite directory.
        """
        path = Path(suite_dir) / "suite.json"
        if not path.is_file():
            raise ValueError(f"{suite_dir} is not a suite directory (no suite.json)")
        data = json.loads(path.read_text())
        steps = tuple(SetupStep(s["run"], s.get("creates")) for s in data.get("setup") or [])
        fields = {k: v for k, v in data.items() if k in SUITE_KEYS and k != "setup"}
        return cls(**{**fields, "setup": steps})

    def to_dict(self) -> dict[str, Any]:
        """What ``suite.json`` records (enough for :func:`collect` and :func:`run_report`)."""
        return {
            "name": self.name,
            "command": self.command,
            "script": self.script,
            "setup": [{"run": s.run, "creates": s.creates} for s in self.setup],
            "base": self.base,
            "grid": self.grid,
            "metrics": self.metrics,
            "output": self.output,
            "stdout": self.stdout,
            "report": self.report,
        }

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


def command_argv(text: str, **fields: list[str] | str) -> list[str]:
    """Split a ``setup``/``report`` command; ``encoder-audit``/``python`` become this interpreter.

    A word ``{name}`` is replaced by ``fields[name]`` (a list expands to several words).
    """
    words = shlex.split(text)
    if not words:
        raise ValueError("empty command in suite")
    head = {"encoder-audit": [sys.executable, "-m", "encoder_audit"], "python": [sys.executable]}.get(words[0])
    argv = head if head is not None else [words[0]]
    for word in words[1:]:
        key = word[1:-1] if word.startswith("{") and word.endswith("}") else None
        if key is not None and key in fields:
            value = fields[key]
            argv += value if isinstance(value, list) else [value]
        else:
            for name, value in fields.items():  # only the known placeholders: other braces (e.g. code) stay
                if isinstance(value, str):
                    word = word.replace(f"{{{name}}}", value)
            argv.append(word)
    return argv


def cell_argv(suite: Suite, params: dict[str, Any], out: Path) -> list[str]:
    """The argument list of one cell (after ``encoder-audit`` or ``python``)."""
    argv = [suite.script] if suite.script else suite.command.split()
    for key, value in {**suite.base, **params}.items():
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list) and suite.script:  # benchmark scripts take lists as nargs="+"
            argv += [flag, *map(str, value)]
        elif isinstance(value, list):  # encoder-audit's list options repeat the flag
            for v in value:
                argv += [flag, str(v)]
        else:
            argv += [flag, str(value)]
    if suite.stdout:  # the script prints its result; the runner saves it as the cell's output
        return argv
    return [*argv, "--out", str(out / suite.output if suite.script else out)]


def cell_done(suite: Suite, cell_dir: Path) -> bool:
    """Whether a cell has finished (``done.json``; for command suites also a legacy ``results.json``)."""
    return (cell_dir / "done.json").is_file() or (not suite.script and (cell_dir / "results.json").is_file())


def run_setup(suite: Suite, suite_dir: Path) -> None:
    """Run the suite's setup steps whose ``creates`` path does not exist yet (logs in ``setup-<i>.log``).

    Raises:
        RuntimeError: a step exited non-zero or did not create what it promised.
    """
    for i, step in enumerate(suite.setup):
        if step.creates and Path(step.creates).exists():
            log.info("setup %d: %s exists, skipped", i, step.creates)
            continue
        argv = command_argv(step.run, suite_dir=str(suite_dir))
        log.info("setup %d: %s", i, step.run)
        with open(suite_dir / f"setup-{i}.log", "w") as logf:
            code = subprocess.run(argv, stdout=logf, stderr=subprocess.STDOUT).returncode
        if code != 0:
            raise RuntimeError(f"setup step {i} failed (exit {code}); see {suite_dir / f'setup-{i}.log'}")
        if step.creates and not Path(step.creates).exists():
            raise RuntimeError(f"setup step {i} finished but did not create {step.creates}")


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
    atomic_write_json(suite_dir / "suite.json", suite.to_dict())
    mine = [p for i, p in enumerate(suite.cells()) if i % count == index]
    todo = [p for p in mine if not cell_done(suite, cells_dir / cell_id(p))]
    log.info("suite %s: %d cells in this shard, %d to run", suite.name, len(mine), len(todo))
    prefix = [sys.executable] if suite.script else [sys.executable, "-m", "encoder_audit"]
    if dry_run:
        for step in suite.setup:
            log.info("setup: %s", step.run)
        for p in todo:
            log.info("would run: %s", shlex.join([*prefix, *cell_argv(suite, p, cells_dir / cell_id(p))]))
        return suite_dir
    run_setup(suite, suite_dir)

    def run_cell(params: dict[str, Any]) -> tuple[str, int]:
        cid = cell_id(params)
        cell_dir = cells_dir / cid
        if suite.script:  # scripts may append to their output: start unfinished cells afresh
            cell_dir.mkdir(exist_ok=True)
            (cell_dir / suite.output).unlink(missing_ok=True)
        argv = [*prefix, *cell_argv(suite, params, cell_dir)]
        start = time.perf_counter()
        with open(cells_dir / f"{cid}.log", "w") as logf:
            if suite.stdout:
                proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=logf, text=True)
                if proc.returncode == 0:
                    atomic_write_text(cell_dir / suite.output, proc.stdout)
                code = proc.returncode
            else:
                code = subprocess.run(argv, stdout=logf, stderr=subprocess.STDOUT).returncode
        if code == 0:
            cell_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(
                cell_dir / "done.json", {"argv": argv[1:], "seconds": round(time.perf_counter() - start, 1)}
            )
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


def suite_outputs(suite_dirs: Iterable[str | Path]) -> list[Path]:
    """The output file of every finished cell of the given suite directories, in a stable order."""
    outputs: list[Path] = []
    for d in map(Path, suite_dirs):
        meta = json.loads((d / "suite.json").read_text())
        name = meta.get("output") or "results.json"
        outputs += [p.parent / name for p in sorted((d / "cells").glob("*/done.json")) if (p.parent / name).exists()]
    return outputs


def run_report(suite_dirs: Iterable[str | Path]) -> Path | None:
    """Run the ``report`` command of a suite over all finished cells; its stdout goes to ``report.md``.

    Returns:
        the report path, or None when the suite declares no report.

    Raises:
        ValueError: no finished cells. RuntimeError: the report command failed.
    """
    dirs = [Path(d) for d in suite_dirs]
    meta = json.loads((dirs[0] / "suite.json").read_text())
    if not meta.get("report"):
        return None
    outputs = suite_outputs(dirs)
    if not outputs:
        raise ValueError(f"no finished cells in {', '.join(map(str, dirs))}")
    argv = command_argv(meta["report"], outputs=[str(p) for p in outputs], suite_dir=str(dirs[0]))
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"report command failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    atomic_write_text(dirs[0] / "report.md", proc.stdout)
    return dirs[0] / "report.md"


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
                stat = summarize(vals)
                row.append({"mean": stat.mean, "std": stat.std or 0.0, "n": stat.n})
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
