"""``encoder-audit audit``: the main job. Every audit against one encoder, one report."""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from ..audit import run_audit
from ..audit.plan import SECTIONS, AuditConfig, config_for
from ..config import build_config, config_to_dict, load_yaml
from ..runs import RunDir, seed_everything
from .common import HelpFormatter, emit, progress, resolved_options

EPILOG = """examples:
  encoder-audit audit                                   # train the embedded default and audit it (~10 min on CPU)
  encoder-audit audit --victim runs/…/encoder.safetensors --splits splits.json
  encoder-audit audit --victim http://127.0.0.1:8000 --api-key $KEY --sections stealing
  encoder-audit audit --seeds 0 1 2                     # every audit 3 times: tables show mean ± std (~3x the time)
  encoder-audit audit --resume runs/20261122-010000-audit   # finish an interrupted audit (finished stages are kept)
  encoder-audit audit --preset paper --device cuda      # CIFAR-10 / ResNet-18 scale (needs the data and a GPU)

The report is written to RUN_DIR/report.html (self-contained) and RUN_DIR/report.md;
`encoder-audit report RUN_DIR` re-renders it from RUN_DIR/results.json. With several --seeds, seed S
keeps its stages in RUN_DIR/seeds/S/ and results.json holds every seed's results and their aggregate.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="run every audit on one encoder and write a report (the main job)",
        description="Audit an encoder for stealing, membership inference, poisoning/backdoors and data "
        "protection, and write report.md + a self-contained report.html. With no --victim, the embedded "
        "default (SimCLR cnn-small on Fashion-MNIST members) is trained first, so every audit has ground truth.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("--victim", default=None, help="encoder checkpoint (.safetensors) or URL of an embedding service")
    p.add_argument("--api-key", default=None, help="API key for a victim URL (falls back to $ENCODER_AUDIT_API_KEY)")
    p.add_argument("--preset", choices=["quick", "paper"], default="quick", help="scale of every audit")
    p.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated audits to run, from: {', '.join(SECTIONS)}"
    )
    p.add_argument(
        "--splits",
        type=Path,
        default=None,
        help="split manifest (parts members, nonmembers, shadow, queries) naming the victim's real training "
        "members; lets membership inference run against a given victim",
    )
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR", help="continue an interrupted audit")
    g = p.add_argument_group("run")
    seeds = g.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=argparse.SUPPRESS,
        metavar="S",
        help="run every audit once per seed and report mean ± std over them, e.g. --seeds 0 1 2 "
        "(default: the config's seeds, else 0)",
    )
    seeds.add_argument("--seed", type=int, default=argparse.SUPPRESS, help="one seed (same as --seeds S)")
    g.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run directories are created")
    g.add_argument("--out", type=Path, default=None, help="exact run directory to write")
    g.add_argument("--config", type=Path, default=None, help="YAML with audit settings (see configs/audit.yaml)")
    g.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an audit setting, e.g. --set members=1000",
    )
    g.add_argument("--data-root", type=Path, default=None, help="folder holding datasets")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    g.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    if args.resume:
        run_dir = RunDir.open(args.resume)
        saved = load_yaml(run_dir.file("config.yaml"))
        victim, config = saved.pop("victim", None), build_config(AuditConfig, saved)
        asked = getattr(args, "seeds", None) or ([args.seed] if hasattr(args, "seed") else None)
        if asked is not None and tuple(asked) != config.seeds:
            raise ValueError(f"{args.resume} was started with seeds {list(config.seeds)}; resume it without --seeds")
    else:
        values = resolved_options(args)
        values.setdefault("sections", [s.strip() for s in args.sections.split(",") if s.strip()])
        if hasattr(args, "seeds") or hasattr(args, "seed"):  # a flag replaces the file's seed and seeds
            values.pop("seed", None)
            values["seeds"] = args.seeds if hasattr(args, "seeds") else [args.seed]
        base = config_to_dict(config_for(values.pop("preset", args.preset)))
        if "seed" in values or "seeds" in values:  # the preset's seeds give way to the file's
            del base["seed"], base["seeds"]
        config = build_config(AuditConfig, {**base, **values, "members_known": args.splits is not None})
        victim = args.victim
        if args.splits is not None and not args.splits.is_file():
            raise ValueError(f"split manifest {args.splits} not found")
        run_dir = RunDir.create("audit", args.runs_dir, out=args.out)
        if args.splits is not None:
            shutil.copyfile(args.splits, run_dir.file("splits.json"))
        run_dir.save_config({**config_to_dict(config), "victim": victim})
        run_dir.save_env(config.seed)
    seed_everything(config.seed)
    emit(f"run directory: {run_dir.path}")
    api_key = args.api_key or os.environ.get("ENCODER_AUDIT_API_KEY")
    results = run_audit(
        config, run_dir, victim=victim, api_key=api_key, data_root=args.data_root, progress=progress(args)
    )
    lines = ["", f"{'audit':<26}{'verdict':<10}finding"]
    for key, sec in results["sections"].items():
        if key == "victim":
            continue
        lines.append(f"{sec['title']:<26}{sec['verdict']:<10}{sec['headline']}")
    lines += ["", f"report: {run_dir.file('report.html')}  ({time.perf_counter() - t0:.0f} s)"]
    emit("\n".join(lines))
    failed = [k for k, s in results["sections"].items() if s["verdict"] == "failed"]
    return 1 if failed else 0
