"""``encoder-audit run``: run an experiment suite (a YAML grid of commands), or collect its table."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..suite import Suite, collect, run_report, run_suite
from .common import HelpFormatter, emit, progress

EPILOG = """examples:
  encoder-audit run suites/quick-pretrain.yaml --jobs 2
  encoder-audit run suites/stealing-budgets.yaml --jobs 2         # a benchmark suite: cells, then its report
  encoder-audit run suites/stealing-budgets.yaml --shard 0/4        # on machine/array task 0 of 4
  encoder-audit run --collect runs/suite-stealing-budgets            # merge finished cells into a table
  sbatch --array=0-3 --wrap 'encoder-audit run suite.yaml --shard $SLURM_ARRAY_TASK_ID/4'

Finished cells are skipped, so re-running a suite resumes it. Suites that declare a report (the
benchmark suites under suites/) write report.md (tables) and their figures when all cells are done.
"""


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard must look like I/N, got {text!r}") from None
    return i, n


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run an experiment suite (grid of commands) or collect its table",
        description="Run every cell of a YAML suite (methods x budgets x defenses x seeds) as its own "
        "run directory, in parallel processes, optionally one shard of the grid; or merge finished cells "
        "(of several shards) into one table with mean ± std over seeds.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("suite", nargs="*", type=Path, help="suite YAML (or, with --collect, suite directories)")
    p.add_argument("--jobs", type=int, default=1, help="cells run at once (each is a process)")
    p.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N", help="run only every N-th cell from I")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where suite-<name>/ is created")
    p.add_argument("--collect", action="store_true", help="merge the given suite directories into table.md/csv/json")
    p.add_argument("--out", type=Path, default=None, help="with --collect: where to write the table")
    p.add_argument("--dry-run", action="store_true", help="list the commands without running them")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.suite:
        raise ValueError("give a suite YAML file (or suite directories with --collect)")
    if args.collect:
        _finish(list(args.suite), args.out)
        return 0
    if len(args.suite) != 1:
        raise ValueError("run one suite file at a time")
    suite = Suite.load(args.suite[0])
    suite_dir = run_suite(
        suite, args.runs_dir, jobs=args.jobs, shard=args.shard, dry_run=args.dry_run, progress=progress(args)
    )
    if args.dry_run:
        return 0
    if args.shard[1] == 1:
        _finish([suite_dir], None)
    emit(f"suite directory: {suite_dir}")
    return 0


def _finish(dirs: list[Path], out: Path | None) -> None:
    """Merge finished cells: the metrics table (if the suite has metrics) and the report (if it has one)."""
    meta = Suite.load_meta(dirs[0])
    if meta.metrics:
        _, rows = collect(dirs, out)
        target = out or dirs[0]
        emit((Path(target) / "table.md").read_text())
        emit(f"{len(rows)} rows written to {target}/table.md, table.csv, table.json")
    report = run_report(dirs)
    if report is not None:
        emit(report.read_text())
        emit(f"report written to {report}")
