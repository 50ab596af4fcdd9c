"""``encoder-audit report``: re-render report.md and report.html of a run from its results.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..report import build_report
from .common import HelpFormatter, emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="re-render an audit's report.md and report.html from results.json",
        description="Rebuild report.md and the self-contained report.html of an audit run directory from its "
        "results.json alone (figures are read from the run directory and inlined).",
        epilog="example:\n  encoder-audit report runs/20261122-010000-audit",
        formatter_class=HelpFormatter,
    )
    p.add_argument("run_dir", type=Path, help="an audit run directory")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    md, page = build_report(args.run_dir)
    emit(f"wrote {md}\nwrote {page}")
    return 0
