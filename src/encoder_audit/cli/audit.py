"""``encoder-audit audit``: the main job. Every audit against one encoder, one report."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import yaml

from ..audit import SECTIONS, resolve_config, run_audit
from ..audit.config import PRESETS, AuditConfig, describe_plan
from ..audit.runner import load_run_config, start_run
from ..config import load_yaml
from ..report import load_sections
from ..runs import RunDir, seed_everything
from .common import VICTIM_SPEC_HELP, HelpFormatter, add_victim_arguments, emit, progress, victim_options

EPILOG = """examples:
  encoder-audit audit                                   # train the embedded default and audit it (minutes on CPU)
  encoder-audit audit --preset smoke                    # the whole audit at toy size, under a minute
  encoder-audit audit --victim runs/…/encoder.safetensors --splits splits.json
  encoder-audit audit --victim http://127.0.0.1:8000 --api-key $KEY --sections stealing
  encoder-audit audit --set stealing.budgets=[500,5000] --set stealing.defenses=[topk:k=8]
  encoder-audit audit --seeds 0 1 2                     # every audit 3 times: tables show mean ± std (~3x the time)
  encoder-audit audit --config runs/20261122-010000-audit/config.yaml   # repeat a run exactly
  encoder-audit audit --resume runs/20261122-010000-audit   # finish an interrupted audit (finished stages are kept)
  encoder-audit audit --preset paper --device cuda --dry-run   # show the CIFAR-10 / ResNet-18 plan, run nothing

Presets: smoke (toy sizes, < 1 min on 2 cores), quick (the embedded Fashion-MNIST default on CPU),
paper (CIFAR-10 / ResNet-18 at the papers' settings; needs the data and a GPU). A config is resolved
from the preset, then --config, then the flags, then --set (dotted keys reach into the tree:
data.members, default_victim.epochs, stealing.*, membership.*, poisoning.*, protection.*; see
`--dry-run` for every key). The report is written to RUN_DIR/report.html (self-contained) and
RUN_DIR/report.md; `encoder-audit report RUN_DIR` re-renders it from RUN_DIR/results.json.
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
    v = p.add_argument_group("victim")
    v.add_argument("--victim", default=None, help=VICTIM_SPEC_HELP + " (default: train the embedded default)")
    v.add_argument("--api-key", default=None, help="API key for a victim URL (falls back to $ENCODER_AUDIT_API_KEY)")
    add_victim_arguments(p)
    p.add_argument("--preset", choices=PRESETS, default=None, help="scale of every audit (default: quick)")
    p.add_argument(
        "--sections", default=None, help=f"comma-separated audits to run, from: {', '.join(SECTIONS)} (default: all)"
    )
    p.add_argument("--dataset", default=None, help="data the audits draw from, e.g. fashion-mnist, cifar10, "
                   "imagefolder:PATH (default: the preset's)")  # fmt: skip
    p.add_argument(
        "--eval-dataset",
        dest="eval_datasets",
        action="append",
        default=None,
        metavar="NAME",
        help="labelled dataset for downstream evaluation (repeatable; default: --dataset if given, else the "
        "preset's)",
    )
    p.add_argument(
        "--splits",
        type=Path,
        default=None,
        help="split manifest (parts members, nonmembers, shadow, queries) naming the victim's real training "
        "members; lets membership inference run against a given victim",
    )
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR", help="continue an interrupted audit")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and the plan, run nothing")
    g = p.add_argument_group("run")
    seeds = g.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        metavar="S",
        help="run every audit once per seed and report mean ± std over them, e.g. --seeds 0 1 2 (default: 0)",
    )
    seeds.add_argument("--seed", type=int, default=None, help="one seed (same as --seeds S)")
    g.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run directories are created")
    g.add_argument("--out", type=Path, default=None, help="exact run directory to write")
    g.add_argument("--config", type=Path, default=None, help="YAML audit config (a run's own config.yaml repeats it)")
    g.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting (repeatable), e.g. --set data.members=1000 --set stealing.budgets=[500,5000]",
    )
    g.add_argument("--data-root", type=Path, default=None, help="folder holding datasets")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    g.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.set_defaults(func=run)


def _flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The config values the flags set (only those given)."""
    values: dict[str, Any] = {}
    data: dict[str, Any] = {}
    if args.victim is not None:
        values["victim"] = args.victim
    options = victim_options(args)
    if options:
        values["victim_options"] = options
    if args.sections is not None:
        values["sections"] = [s.strip() for s in args.sections.split(",") if s.strip()]
    if args.seeds is not None:
        values["seeds"] = args.seeds
    elif args.seed is not None:
        values["seeds"] = [args.seed]
    if args.device is not None:
        values["device"] = args.device
    if args.dataset is not None:
        data["dataset"] = args.dataset
        data["eval_datasets"] = [args.dataset]  # evaluate on the data audited, unless told otherwise
    if args.eval_datasets:
        data["eval_datasets"] = args.eval_datasets
    if args.splits is not None:
        data["members_known"] = True
    if data:
        values["data"] = data
    return values


def resolve(args: argparse.Namespace) -> AuditConfig:
    """The audit config the command line asks for."""
    file_values = load_yaml(args.config) if args.config else {}
    return resolve_config(args.preset, file_values=file_values, values=_flag_values(args), overrides=args.overrides)


def _print_plan(config: AuditConfig) -> None:
    lines = ["# resolved config", yaml.safe_dump(config.to_dict(), sort_keys=False).rstrip(), "", "# plan"]
    lines += [f"{i}. {stage}: {text}" for i, (stage, text) in enumerate(describe_plan(config), 1)]
    lines.append(f"seeds: {', '.join(map(str, config.seeds))} · device: {config.device} · preset: {config.preset}")
    emit("\n".join(lines))


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    if args.resume:
        run_dir = RunDir.open(args.resume)
        config = load_run_config(run_dir.path)
        if (args.seeds or args.seed is not None) and tuple(args.seeds or [args.seed]) != config.seeds:
            raise ValueError(f"{args.resume} was started with seeds {list(config.seeds)}; resume it without --seeds")
        if args.dry_run:
            _print_plan(config)
            return 0
    else:
        config = resolve(args)
        if args.dry_run:
            _print_plan(config)
            return 0
        run_dir = start_run(config, runs_dir=args.runs_dir, out=args.out, splits=args.splits)
    seed_everything(config.seed)
    emit(f"run directory: {run_dir.path}")
    api_key = args.api_key or os.environ.get("ENCODER_AUDIT_API_KEY")
    results = run_audit(config, run_dir, api_key=api_key, data_root=args.data_root, progress=progress(args))
    lines = ["", f"{'audit':<26}{'verdict':<18}finding"]
    sections = load_sections(results)
    for key, sec in sections.items():
        if key == "victim":
            continue
        lines.append(f"{sec.title:<26}{sec.label():<18}{sec.headline.render()}")
    lines += ["", f"report: {run_dir.file('report.html')}  ({time.perf_counter() - t0:.0f} s)"]
    emit("\n".join(lines))
    failed = [k for k, s in sections.items() if s.verdict.level == "failed"]
    return 1 if failed else 0
