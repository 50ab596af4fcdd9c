"""``encoder-audit pretrain``: contrastive pre-training of an encoder, then a quick evaluation."""

from __future__ import annotations

import argparse

from ..config import build_config, config_to_dict, load_yaml
from ..data import create_dataset
from ..models import ENCODERS
from ..runs import RunDir, seed_everything
from ..train import OBJECTIVES, PRESETS, TrainConfig, TrainingInterrupted, method_config, pretrain
from .common import HelpFormatter, add_common, emit, pick, progress, resolved_options, section

EPILOG = """examples:
  encoder-audit pretrain --preset quick                     # SimCLR cnn-small on Fashion-MNIST, minutes on CPU
  encoder-audit pretrain --method moco --epochs 20 --max-images 60000
  encoder-audit pretrain --preset paper --device cuda        # ResNet-18 on CIFAR-10 (needs the data and a GPU)
  encoder-audit pretrain --resume runs/20261122-010000-pretrain   # continue an interrupted run
  torchrun --nproc_per_node 2 -m encoder_audit pretrain --preset quick   # DDP (gloo on CPU, NCCL on GPU)

Method options go through --set method_options.KEY=VALUE (e.g. --set method_options.temperature=0.2);
optimiser options through flags or --set train.KEY=VALUE.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pre-train an encoder (SimCLR, MoCo, supervised)",
        description="Pre-train an encoder with a contrastive method, save it as safetensors + JSON, and "
        "evaluate it (kNN, linear probe) beside a random-init encoder of the same architecture.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--preset", choices=sorted(PRESETS), default="quick", help="scale defaults: quick (CPU minutes) or paper"
    )
    p.add_argument("--dataset", default=None, help="training dataset (default from preset; see `encoder-audit info`)")
    p.add_argument("--method", choices=OBJECTIVES.names(), default=None, help="training objective (default simclr)")
    p.add_argument("--encoder", choices=ENCODERS.names(), default=None, help="architecture (default from preset)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default from preset)")
    p.add_argument("--batch-size", type=int, default=None, help="global batch size (default from preset)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default from preset)")
    p.add_argument(
        "--max-images",
        type=int,
        default=None,
        help="train on the first N images of a seeded shuffle (default from preset)",
    )
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue the interrupted run in RUN_DIR")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    if args.resume:
        # A resumed run uses exactly the configuration it started with.
        run_dir = RunDir.open(args.resume)
        if not run_dir.file("config.yaml").is_file():
            raise ValueError(f"{args.resume} has no config.yaml: not a pretrain run directory")
        values = load_yaml(run_dir.file("config.yaml"))
        for flag in ("dataset", "encoder", "method", "max_images", "epochs", "batch_size", "lr"):
            setattr(args, flag, None)
        args.seed = int(values.get("train", {}).get("seed", args.seed))
    else:
        values = resolved_options(args)
    preset = PRESETS[values.get("preset") or args.preset]
    dataset_name = pick(args.dataset, values.get("dataset"), preset.dataset)
    encoder_name = pick(args.encoder, values.get("encoder"), preset.encoder)
    method = pick(args.method, values.get("method"), "simclr")
    max_images = pick(args.max_images, values.get("max_images"), preset.max_images)
    train_values = {**preset.train, **section(values, "train"), "seed": args.seed, "device": args.device}
    for key, flag in (("epochs", args.epochs), ("batch_size", args.batch_size), ("lr", args.lr)):
        if flag is not None:
            train_values[key] = flag
    train_cfg = build_config(TrainConfig, train_values)
    method_opts = section(values, "method_options")
    method_config(method, method_opts)  # validate before creating anything

    if not args.resume:
        run_dir = RunDir.create("pretrain", args.runs_dir, out=args.out)
    seed_everything(args.seed, deterministic=args.deterministic)
    full = create_dataset(dataset_name, "train", root=args.data_root, download=args.download)
    ds = full
    if max_images is not None and max_images < len(full):
        perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(args.seed))[:max_images]
        ds = full.subset(perm.sort().values)
    config = {
        "command": "pretrain",
        "preset": values.get("preset") or args.preset,
        "dataset": dataset_name,
        "encoder": encoder_name,
        "method": method,
        "max_images": max_images,
        "train": config_to_dict(train_cfg),
        "method_options": method_opts,
    }
    run_dir.save_config(config)
    run_dir.save_env(args.seed, args.deterministic)
    emit(f"run directory: {run_dir.path}")
    try:
        result = pretrain(
            ds,
            method=method,
            encoder=encoder_name,
            train=train_cfg,
            method_options=method_opts,
            run=run_dir,
            resume=bool(args.resume),
            progress=progress(args),
        )
    except TrainingInterrupted as exc:
        emit(f"{exc}\nresume with: encoder-audit pretrain --resume {run_dir.path}")
        return 130
    results: dict = {
        "train": {
            "seconds": round(result.seconds, 2),
            "images_per_second": round(result.images_per_second, 1),
            "final_loss": result.history[-1]["loss"] if result.history else None,
            "images": len(ds),
        },
        "checkpoint": str(run_dir.file("encoder.safetensors")),
    }
    if not args.no_eval and full.labels is not None:
        from .evaluate import evaluate_and_report

        results["evaluation"] = evaluate_and_report(
            run_dir.file("encoder.safetensors"), [dataset_name], args, max_train=preset.eval_max_train
        )
    run_dir.save_results(results, kind="pretrain")
    run_dir.save_summary(_summary(config, results))
    checkpoint = run_dir.file("encoder.safetensors")
    emit(f"trained {encoder_name} with {method} in {result.seconds:.0f}s; checkpoint: {checkpoint}")
    return 0


def _summary(config: dict, results: dict) -> str:
    t = results["train"]
    lines = [
        f"# Pre-training: {config['method']} {config['encoder']} on {config['dataset']}",
        "",
        f"{t['images']:,} images, {config['train']['epochs']} epochs, batch {config['train']['batch_size']}, "
        f"{t['seconds']:.0f} s ({t['images_per_second']:.0f} images/s), final loss {t['final_loss']:.4f}.",
        "",
        f"Checkpoint: `{results['checkpoint']}`",
    ]
    for name, ev in results.get("evaluation", {}).items():
        e, r = ev["encoder"], ev["random_init"]
        lines += [
            "",
            f"| {name} | kNN | linear |",
            "|---|---|---|",
            f"| trained | {e['knn']:.2%} | {e['linear']:.2%} |",
            f"| random init | {r['knn']:.2%} | {r['linear']:.2%} |",
        ]
    return "\n".join(lines)
