"""``encoder-audit poison``: poison / backdoor a CLIP-style model or backdoor an image encoder, then measure it."""

from __future__ import annotations

import argparse
from typing import Any

from .common import HelpFormatter, add_common, emit, progress

EPILOG_CLIP = """examples:
  encoder-audit poison clip --attack backdoor --poisons 100               # 2000 pairs, cnn-small/16, ~1 CPU-min idle
  encoder-audit poison clip --attack targeted --poisons 16 --targets 8
  encoder-audit poison clip --attack backdoor --sweep 0,25,50,100,200      # poison-count curve + PNG
  encoder-audit poison clip --attack backdoor --poisons 100 --defense cleanclip --defense filter-similarity
  encoder-audit poison clip --attack backdoor --trigger-size 4 --trigger-pattern white --placement fixed

Writes manifest_targeted.json / manifest_backdoor.json (indices, trigger, positions, captions, seed),
clip.safetensors (+ .json with the tokenizer), results.json and, for --sweep, a PNG figure.
"""

EPILOG_BADENCODER = """examples:
  encoder-audit pretrain --preset quick --out runs/victim
  encoder-audit poison badencoder --victim runs/victim/encoder.safetensors --target-label 0
  encoder-audit poison badencoder --victim runs/victim --epochs 10 --shadow-size 10000 --lr 5e-4

Writes the backdoored encoder (encoder.safetensors + .json) and results.json with CA, BA and ASR of a
linear probe trained by an unsuspecting user on clean features.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "poison",
        help="poisoning and backdoor attacks (CLIP-style targeted/backdoor, BadEncoder) and defenses",
        description="Carlini-Terzis targeted poisoning and patch backdoors of CLIP-style image-text training, "
        "and BadEncoder on a pre-trained image encoder, with CleanCLIP and poisoned-pair filtering defenses.",
        formatter_class=HelpFormatter,
    )
    ps = p.add_subparsers(dest="poison_command", metavar="ATTACK")
    c = ps.add_parser(
        "clip",
        help="poison CLIP-style training (targeted or backdoor), train, evaluate",
        description="Caption a labelled dataset, add poisoned pairs, train a CPU-scale CLIP-style model and "
        "measure zero-shot accuracy, targeted success / rank of y', backdoor ASR and z-score.",
        epilog=EPILOG_CLIP,
        formatter_class=HelpFormatter,
    )
    c.add_argument("--dataset", default="fashion-mnist", help="labelled dataset with class names")
    c.add_argument("--attack", choices=["targeted", "backdoor"], default="backdoor", help="attack to run")
    c.add_argument("--poisons", type=int, default=100, help="k per target (targeted) or m (backdoor)")
    c.add_argument("--sweep", default=None, metavar="N,N,...", help="comma-separated poison counts (one training each)")
    c.add_argument("--targets", type=int, default=8, help="targeted trials planted per training")
    c.add_argument("--target-label", type=int, default=0, help="backdoor target class y'")
    c.add_argument("--caption-source", choices=["templates", "corpus"], default="templates")
    c.add_argument("--trigger-size", type=int, default=4, help="patch side in pixels")
    c.add_argument("--trigger-pattern", choices=["checkerboard", "white", "black", "random"], default="checkerboard")
    c.add_argument("--placement", choices=["random", "fixed"], default="random", help="trigger placement")
    c.add_argument("--train-size", type=int, default=2000, help="clean pairs (0 = the whole split)")
    c.add_argument("--epochs", type=int, default=10)
    c.add_argument("--batch-size", type=int, default=64)
    c.add_argument("--lr", type=float, default=3e-3)
    c.add_argument("--image-width", type=int, default=16, help="cnn-small width (0 = architecture default, 32)")
    c.add_argument(
        "--defense",
        action="append",
        default=[],
        choices=["cleanclip", "filter-similarity", "filter-density"],
        help="defense(s) to apply afterwards (repeatable)",
    )
    c.add_argument("--trusted-pairs", type=int, default=500, help="defender's clean pairs (disjoint from training)")
    c.add_argument("--remove-fraction", type=float, default=0.1, help="share of pairs a filter defense removes")
    add_common(c)
    c.set_defaults(func=run_clip)

    b = ps.add_parser(
        "badencoder",
        help="BadEncoder: backdoor a pre-trained image encoder (white-box)",
        description="Fine-tune a copy of the victim encoder with BadEncoder's three-term loss on shadow data, "
        "then report CA / BA / ASR of a linear probe trained on clean downstream data.",
        epilog=EPILOG_BADENCODER,
        formatter_class=HelpFormatter,
    )
    b.add_argument("--victim", required=True, help="encoder checkpoint (.safetensors + .json, or a run directory)")
    b.add_argument("--dataset", default="fashion-mnist", help="shadow + downstream dataset")
    b.add_argument("--target-label", type=int, default=0)
    b.add_argument("--references", type=int, default=3, help="reference inputs of the target class")
    b.add_argument("--shadow-size", type=int, default=2000)
    b.add_argument("--epochs", type=int, default=8)
    b.add_argument("--batch-size", type=int, default=64)
    b.add_argument("--lr", type=float, default=1e-3)
    b.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    b.add_argument("--trigger-size", type=int, default=9)
    b.add_argument("--trigger-pattern", choices=["checkerboard", "white", "black", "random"], default="white")
    b.add_argument("--max-train", type=int, default=5000, help="downstream training images for the linear probe")
    add_common(b)
    b.set_defaults(func=run_badencoder)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _trigger(args: argparse.Namespace, fixed_default: tuple[int, int] = (-5, -5)) -> Any:
    from ..attacks.poisoning.trigger import Trigger

    size = args.trigger_size
    pos = fixed_default if fixed_default != (-5, -5) else (-(size + 1), -(size + 1))
    return Trigger(size=size, pattern=args.trigger_pattern, placement=getattr(args, "placement", "fixed"), position=pos)


def _plain(config: Any) -> dict[str, Any]:
    """A (nested) config dataclass as plain JSON/YAML types."""
    import dataclasses
    import json

    return json.loads(json.dumps(dataclasses.asdict(config)))


def run_clip(args: argparse.Namespace) -> int:
    import torch

    from ..attacks.poisoning.experiment import ClipExperimentConfig, clean_pairs, run_defenses, run_poisoned_clip
    from ..attacks.poisoning.plots import plot_backdoor, plot_targeted
    from ..data import create_dataset
    from ..data.captions import make_paired
    from ..runs import RunDir, seed_everything

    counts = [int(v) for v in args.sweep.split(",")] if args.sweep else [args.poisons]
    if any(v < 0 for v in counts):
        raise ValueError("poison counts must be >= 0")
    cfg = ClipExperimentConfig(
        train_size=args.train_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        image_width=args.image_width,
        targets=args.targets,
        caption_source=args.caption_source,
        backdoor_target=args.target_label,
        trigger=_trigger(args),
    )
    run_dir = RunDir.create("poison-clip", args.runs_dir, out=args.out)
    seed_everything(args.seed, deterministic=args.deterministic)
    train = create_dataset(args.dataset, "train", root=args.data_root, download=args.download)
    test = create_dataset(args.dataset, "test", root=args.data_root, download=args.download)
    if not 0 <= args.target_label < train.info.num_classes:
        raise ValueError(f"--target-label must be in [0, {train.info.num_classes})")
    run_dir.save_config(
        {
            "command": "poison clip",
            "attack": args.attack,
            "counts": counts,
            "experiment": _plain(cfg),
            "defenses": args.defense,
            "seed": args.seed,
        }
    )
    run_dir.save_env(args.seed, args.deterministic)
    emit(f"run directory: {run_dir.path}")
    clean = clean_pairs(train, cfg)
    rows, last = [], None
    for n in counts:
        k, m = (n, 0) if args.attack == "targeted" else (0, n)
        last = run_poisoned_clip(
            clean,
            test,
            targeted_poisons=k,
            backdoor_poisons=m,
            config=cfg,
            seed=args.seed,
            out_dir=run_dir.path / f"poisons_{n}",
            save_model=len(counts) == 1,
            progress=progress(args),
        )
        r = last.metrics
        rows.append(r)
        if args.attack == "targeted":
            emit(
                f"k={n:>4} per target ({100 * r['targeted_rate_per_target']:.3f}% of {r['train_pairs']} pairs): "
                f"success {r['targeted_success']:.2f}, mean rank of y' {r['targeted_mean_rank']:.2f}, "
                f"clean zero-shot {r['clean_zeroshot_top1']:.3f}"
            )
        else:
            emit(
                f"m={n:>4} ({100 * r['backdoor_rate']:.3f}% of {r['train_pairs']} pairs): ASR {r['backdoor_asr']:.3f} "
                f"(no-trigger {r['backdoor_baseline_target_rate']:.3f}), z-score {r['backdoor_zscore']:.2f}, "
                f"clean zero-shot {r['clean_zeroshot_top1']:.3f}"
            )
    results: dict[str, Any] = {"attack": args.attack, "rows": rows}
    if len(counts) > 1:
        plot = plot_targeted if args.attack == "targeted" else plot_backdoor
        fig = plot(rows, run_dir.file(f"poisoning_{args.attack}.png"))
        results["figure"] = str(fig)
        emit(f"figure: {fig}")
    if args.defense and last is not None:
        used = set(clean.images.indices.tolist())
        g = torch.Generator().manual_seed(args.seed + 12345)
        rest = [i for i in torch.randperm(len(train), generator=g).tolist() if i not in used][: args.trusted_pairs]
        trusted = make_paired(train.subset(sorted(rest)), seed=args.seed + 1)
        drows = run_defenses(
            last,
            test,
            trusted,
            config=cfg,
            defenses=tuple(args.defense),
            remove_fraction=args.remove_fraction,
            seed=args.seed,
            progress=progress(args),
        )
        results["defenses"] = drows
        key = "targeted_success" if args.attack == "targeted" else "backdoor_asr"
        for d in drows:
            det = d.get("detection")
            extra = f", detector AUROC {det['auroc']:.3f}" if det else ""
            emit(
                f"{d['defense']}: {key} {d['before'][key]:.3f} -> {d['after'][key]:.3f}, clean zero-shot "
                f"{d['before']['clean_zeroshot_top1']:.3f} -> {d['after']['clean_zeroshot_top1']:.3f}{extra}"
            )
    run_dir.save_results(results, kind="poison-clip")
    return 0


def run_badencoder(args: argparse.Namespace) -> int:
    from ..attacks.poisoning.badencoder import BadEncoder, BadEncoderConfig, evaluate_badencoder, reference_images
    from ..attacks.poisoning.trigger import Trigger
    from ..data import create_dataset
    from ..models.checkpoint import load_encoder_net, save_encoder
    from ..runs import RunDir, seed_everything

    net, _ = load_encoder_net(args.victim)
    size = args.trigger_size
    trigger = Trigger(size=size, pattern=args.trigger_pattern, placement="fixed", position=(-(size + 1), -(size + 1)))
    cfg = BadEncoderConfig(
        target_label=args.target_label,
        references=args.references,
        trigger=trigger,
        shadow_size=args.shadow_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
    )
    run_dir = RunDir.create("poison-badencoder", args.runs_dir, out=args.out)
    seed_everything(args.seed, deterministic=args.deterministic)
    train = create_dataset(args.dataset, "train", root=args.data_root, download=args.download)
    test = create_dataset(args.dataset, "test", root=args.data_root, download=args.download)
    if tuple(train.images.shape[1:]) != tuple(net.input_shape):
        raise ValueError(f"victim expects {net.input_shape} images, {args.dataset} has {tuple(train.images.shape[1:])}")
    if not 0 <= args.target_label < train.info.num_classes:
        raise ValueError(f"--target-label must be in [0, {train.info.num_classes})")
    run_dir.save_config({"command": "poison badencoder", "victim": str(args.victim), "config": _plain(cfg)})
    run_dir.save_env(args.seed, args.deterministic)
    emit(f"run directory: {run_dir.path}")
    refs, ref_rows = reference_images(train, args.target_label, args.references, seed=args.seed)
    attack = BadEncoder(cfg)
    bad = attack.attack(net, train, refs, seed=args.seed, progress=progress(args))
    save_encoder(
        run_dir.file("encoder.safetensors"),
        bad,
        training={"method": "badencoder", "victim": str(args.victim), **_plain(cfg)},
        extra={
            "backdoor": {"trigger": trigger.to_dict(), "target_label": args.target_label, "reference_rows": ref_rows}
        },
    )
    metrics = evaluate_badencoder(
        net, bad, train, test, trigger, args.target_label, max_train=args.max_train, seed=args.seed
    )
    run_dir.save_results(
        {"metrics": metrics, "history": attack.history, "attack_seconds": attack.seconds}, kind="poison-badencoder"
    )
    emit(
        f"CA {metrics['clean_accuracy']:.3f}  BA {metrics['backdoored_accuracy']:.3f}  ASR {metrics['asr']:.3f} "
        f"(same trigger on the clean encoder: {metrics['asr_clean_encoder']:.3f}); "
        f"backdoored encoder: {run_dir.file('encoder.safetensors')}"
    )
    return 0


def registries() -> list[tuple[str, dict[str, str]]]:
    from ..attacks.poisoning import backdoor, badencoder, targeted  # noqa: F401
    from ..attacks.poisoning.base import POISONING

    return [("poisoning attacks", POISONING.describe())]
