"""``encoder-audit info``: what datasets, encoders, methods and view recipes exist."""

from __future__ import annotations

import argparse

from ..augment import VIEWS
from ..data import DATASETS
from ..models import ENCODERS
from ..train import OBJECTIVES
from .common import HelpFormatter, emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="list datasets, encoders, training methods and view recipes",
        description="List every registered name the other commands accept.",
        formatter_class=HelpFormatter,
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from . import main as cli_main

    blocks = [
        ("datasets", DATASETS.describe()),
        ("encoders", ENCODERS.describe()),
        ("training methods", OBJECTIVES.describe()),
        ("view recipes", VIEWS.describe()),
    ]
    blocks += cli_main.extra_registries()
    out = []
    for title, entries in blocks:
        out.append(f"{title}:")
        out += [f"  {name:<18} {text}" for name, text in entries.items()]
        out.append("")
    out.append("  imagefolder:PATH    a folder of PNG/JPEG images (class sub-folders optional)")
    emit("\n".join(out))
    return 0
