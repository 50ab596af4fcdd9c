"""``encoder-audit poison``: poison / backdoor a CLIP-style model or backdoor an image encoder, then measure it."""

from __future__ import annotations

import argparse
from typing import Any

from .common import VICTIM_SPEC_HELP, HelpFormatter, add_common, add_victim_arguments, emit, progress, victim_options

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
linear probe trained by an unsuspecting user on clean L2-normalised features (the official protocol),
and the same probe on raw features.
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
    c.add_argument(
        "--mode",
        choices=["replace", "add"],
        default="replace",
        help="poisons replace clean pairs (the paper's fixed-size set) or are added as extra copies",
    )
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
    b.add_argument("--victim", required=True, help=VICTIM_SPEC_HELP + " (white-box specs only)")
    add_victim_arguments(b)
    b.add_argument("--dataset", default="fashion-mnist", help="shadow + downstream dataset")
    b.add_argument("--target-label", type=int, default=0)
    b.add_argument("--references", type=int, default=1, help="reference inputs of the target class (one trigger each)")
    b.add_argument("--shadow-size", type=int, default=None, help="shadow images (default: BadEncoderConfig)")
    b.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default: BadEncoderConfig)")
    b.add_argument("--batch-size", type=int, default=None)
    b.add_argument("--lr", type=float, default=None)
    b.add_argument("--optimizer", choices=["adam", "sgd"], default=None)
    b.add_argument("--trigger-size", type=int, default=9)
    b.add_argument("--trigger-pattern", choices=["checkerboard", "white", "black", "random"], default="white")
    b.add_argument("--max-train", type=int, default=5000, help="downstream training images for the linear probe")
    add_common(b)
    b.set_defaults(func=run_badencoder)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _trigger(size: int, pattern: str, placement: str) -> Any:
    from ..attacks.poisoning.trigger import Trigger

    return Trigger(size=size, pattern=pattern, placement=placement, position=(-(size + 1), -(size + 1)))


def run_clip(args: argparse.Namespace) -> int:
    from ..attacks.poisoning.commands import ClipJob, run_clip_job
    from ..attacks.poisoning.experiment import ClipExperimentConfig
    from ..runs import RunDir

    job = ClipJob(
        dataset=args.dataset,
        attack=args.attack,
        counts=tuple(int(v) for v in args.sweep.split(",")) if args.sweep else (args.poisons,),
        experiment=ClipExperimentConfig(
            train_size=args.train_size,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            image_width=args.image_width,
            targets=args.targets,
            caption_source=args.caption_source,
            backdoor_target=args.target_label,
            trigger=_trigger(args.trigger_size, args.trigger_pattern, args.placement),
            mode=args.mode,
        ),
        defenses=tuple(args.defense),
        trusted_pairs=args.trusted_pairs,
        remove_fraction=args.remove_fraction,
        seed=args.seed,
    )
    run_dir = RunDir.create("poison-clip", args.runs_dir, out=args.out)
    emit(f"run directory: {run_dir.path}")
    run_clip_job(
        job,
        run_dir,
        data_root=args.data_root,
        download=args.download,
        deterministic=args.deterministic,
        progress=progress(args),
        say=emit,
    )
    return 0


def run_badencoder(args: argparse.Namespace) -> int:
    from ..attacks.poisoning.badencoder import BadEncoderConfig
    from ..attacks.poisoning.commands import BadEncoderJob, run_badencoder_job
    from ..runs import RunDir

    job = BadEncoderJob(
        victim=str(args.victim),
        victim_options=victim_options(args),
        dataset=args.dataset,
        config=BadEncoderConfig(
            target_label=args.target_label,
            references=args.references,
            trigger=_trigger(args.trigger_size, args.trigger_pattern, "fixed"),
            **{
                k: getattr(args, k)
                for k in ("shadow_size", "epochs", "batch_size", "lr", "optimizer")
                if getattr(args, k) is not None
            },
        ),
        max_train=args.max_train,
        seed=args.seed,
    )
    run_dir = RunDir.create("poison-badencoder", args.runs_dir, out=args.out)
    emit(f"run directory: {run_dir.path}")
    run_badencoder_job(
        job,
        run_dir,
        data_root=args.data_root,
        download=args.download,
        deterministic=args.deterministic,
        progress=progress(args),
        say=emit,
    )
    return 0


def registries() -> list[tuple[str, dict[str, str]]]:
    from ..attacks.registry import registry

    return [
        ("poisoning attacks", registry("poisoning").describe()),
        ("backdoor attacks", registry("backdoor").describe()),
    ]
