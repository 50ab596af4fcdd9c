"""``encoder-audit evaluate``: kNN and linear-probe accuracy of a checkpoint beside random init."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..data import create_dataset
from ..errors import UserError
from ..evaluate import EvalConfig, evaluate_encoder, random_init_baseline
from ..runs import RunDir, seed_everything
from ..victim import HasMetadata, load_encoder
from .common import VICTIM_SPEC_HELP, HelpFormatter, add_common, add_victim_arguments, emit, victim_options

EPILOG = """examples:
  encoder-audit evaluate runs/…-pretrain/encoder.safetensors
  encoder-audit evaluate encoder.safetensors --dataset fashion-mnist --dataset digits --max-train 0
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="kNN + linear probe of an encoder checkpoint",
        description="Evaluate an encoder checkpoint on labelled datasets with a kNN classifier (cosine, "
        "k=200, T=0.1) and a linear probe, beside a randomly initialised encoder of the same architecture "
        "(only the gap above random init is learned).",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("checkpoint", help=VICTIM_SPEC_HELP)
    p.add_argument(
        "--dataset", action="append", default=None, help="labelled dataset (repeatable; default fashion-mnist)"
    )
    p.add_argument("--max-train", type=int, default=10_000, help="cap on training images for the probes (0 = all)")
    p.add_argument("--knn-k", type=int, default=200, help="neighbours for kNN")
    p.add_argument("--knn-temperature", type=float, default=0.1, help="kNN vote temperature")
    add_victim_arguments(p)
    add_common(p)
    p.set_defaults(func=run)


def evaluate_and_report(
    checkpoint: Path | str, datasets: list[str], args: argparse.Namespace, *, max_train: int | None = 10_000
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` (any victim spec) and its random-init twin on each dataset; print a table."""
    encoder = load_encoder(str(checkpoint), device=getattr(args, "device", "cpu"), **victim_options(args))
    meta = encoder.meta if isinstance(encoder, HasMetadata) else {}
    arch = meta.get("architecture")
    if not arch:
        raise UserError(f"{checkpoint}: its sidecar names no architecture, so no random-init twin can be built")
    norm = meta.get("normalization", {})
    baseline = random_init_baseline(
        arch, encoder.input_shape, seed=args.seed, mean=norm.get("mean"), std=norm.get("std")
    )
    cfg = EvalConfig(
        knn_k=getattr(args, "knn_k", 200),
        knn_temperature=getattr(args, "knn_temperature", 0.1),
        max_train=max_train or None,
        seed=args.seed,
    )
    out: dict[str, Any] = {}
    lines = [f"{'dataset':<16}{'encoder':<12}{'kNN':>8}{'linear':>9}", "-" * 45]
    for name in datasets:
        train = create_dataset(name, "train", root=args.data_root, download=args.download)
        test = create_dataset(name, "test", root=args.data_root, download=args.download)
        trained = evaluate_encoder(encoder, train, test, cfg)
        rand = evaluate_encoder(baseline, train, test, cfg)
        out[name] = {
            "encoder": trained,
            "random_init": rand,
            "gain_knn": trained["knn"] - rand["knn"],
            "gain_linear": trained["linear"] - rand["linear"],
        }
        lines.append(f"{name:<16}{'trained':<12}{trained['knn']:>8.2%}{trained['linear']:>9.2%}")
        lines.append(f"{'':<16}{'random init':<12}{rand['knn']:>8.2%}{rand['linear']:>9.2%}")
    emit("\n".join(lines))
    return out


def run(args: argparse.Namespace) -> int:
    seed_everything(args.seed)
    run_dir = RunDir.create("evaluate", args.runs_dir, out=args.out)
    datasets = args.dataset or ["fashion-mnist"]
    run_dir.save_config(
        {
            "command": "evaluate",
            "checkpoint": str(args.checkpoint),
            "datasets": datasets,
            "max_train": args.max_train,
            "knn_k": args.knn_k,
            "knn_temperature": args.knn_temperature,
        }
    )
    run_dir.save_env(args.seed)
    results = evaluate_and_report(args.checkpoint, datasets, args, max_train=args.max_train)
    run_dir.save_results({"checkpoint": str(args.checkpoint), "evaluation": results}, kind="evaluate")
    lines = [
        "# Evaluation",
        "",
        f"Checkpoint: `{args.checkpoint}`",
        "",
        "| dataset | kNN | linear | random-init kNN | random-init linear |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        e, b = r["encoder"], r["random_init"]
        lines.append(f"| {name} | {e['knn']:.2%} | {e['linear']:.2%} | {b['knn']:.2%} | {b['linear']:.2%} |")
    run_dir.save_summary("\n".join(lines))
    emit(f"results: {run_dir.file('results.json')}")
    return 0
