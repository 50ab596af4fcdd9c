"""``encoder-audit protect``: publish a folder of images as unlearnable examples (Unlearnable Clusters).

Parses arguments and calls :func:`encoder_audit.attacks.unlearnable.folder.protect_folder`, which does
the work (see its module for what is read, written and recorded).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from .common import HelpFormatter, add_common, emit, resolved_options, section

log = logging.getLogger(__name__)

EPILOG = """examples:
  encoder-audit protect photos/ --out photos_protected/      # trains (or reuses) a surrogate on photos/ itself
  encoder-audit protect photos/ --out photos_protected/ --surrogate runs/surrogate/encoder.safetensors
  encoder-audit protect photos/ --out out/ --method uc --surrogate S.safetensors --clusters 10 --eps 16/255 \\
      --epochs 20 --train-on members
  encoder-audit protect photos/ --out out/ --method random --eps 8/255   # the random-noise control
  encoder-audit protect photos/ --out out/ --surrogate clip.safetensors  # UC-CLIP with a CLIP checkpoint

Method options go through --set KEY=VALUE (fields of the method's config, e.g. --set loss=cosine).
Images are written as 8-bit PNG (lossless: the budget holds on the files); grayscale images stay
grayscale, others become RGB (alpha is dropped), 16-bit images are scaled to 8 bits. Every input file is
in the manifest: protected (with its output name, unique even when names collide) or skipped and why.
"""


def register(sub: argparse._SubParsersAction) -> None:
    from ..attacks.registry import attack_names

    p = sub.add_parser(
        "protect",
        help="protect a folder of images with Unlearnable Clusters (or a baseline)",
        description="Add a bounded, cluster-wise perturbation to every image of FOLDER so that models trained "
        "on the published copies learn little, whatever labels their trainer uses (Unlearnable Clusters, "
        "Zhang et al., CVPR 2023). Writes protected PNGs with the same relative paths and a manifest.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("folder", type=Path, help="folder of images to protect (read only; searched recursively)")
    p.add_argument("--method", choices=attack_names("protection"), default="uc", help="protection method")
    p.add_argument(
        "--surrogate",
        type=Path,
        default=None,
        help="encoder (or CLIP) checkpoint used as surrogate (default: train one on FOLDER itself, cached)",
    )
    p.add_argument("--clusters", type=int, default=None, help="K of K-means (default 10, lowered for small folders)")
    p.add_argument("--eps", default="16/255", help="budget in [0,1] pixel units, e.g. 16/255")
    p.add_argument("--norm", choices=["linf", "l2"], default="linf", help="budget norm")
    p.add_argument("--epochs", type=int, default=None, help="generator epochs (uc; official 50)")
    p.add_argument("--train-on", choices=["all", "members"], default=None, help="uc: images training each generator")
    p.add_argument(
        "--craft-size", type=int, default=None, help="side of the crafted noise (default: surrogate input, or fit)"
    )
    p.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="use a surrogate whose channels or input size do not fit the images (otherwise refused)",
    )
    p.add_argument("--cache-dir", type=Path, default=None, help="where surrogates trained on folders are kept")
    p.add_argument("--surrogate-epochs", type=int, default=30, help="SimCLR epochs of a surrogate trained on FOLDER")
    p.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty OUT")
    add_common(p, data=False)
    for action in p._actions:
        if action.dest == "out":
            action.help = "folder to write the protected PNGs and the manifest to (required; not inside FOLDER)"
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..attacks.unlearnable.base import parse_eps
    from ..attacks.unlearnable.folder import FolderOptions, protect_folder
    from ..audit.runner import resolve_device

    if args.out is None:
        raise ValueError("--out is required: the folder to write the protected copies to")
    options = resolved_options(args)
    values: dict[str, Any] = {k: v for k, v in options.items() if not isinstance(v, dict)}
    values.update(section(options, args.method))
    opts = FolderOptions(
        method=args.method,
        surrogate=args.surrogate,
        clusters=args.clusters,
        eps=parse_eps(args.eps, norm=args.norm),
        norm=args.norm,
        epochs=args.epochs,
        train_on=args.train_on,
        craft_size=args.craft_size,
        seed=args.seed,
        options=values,
        overwrite=args.overwrite,
        allow_mismatch=args.allow_mismatch,
        cache_dir=args.cache_dir,
        surrogate_epochs=args.surrogate_epochs,
        device=resolve_device(args.device),
        progress=None if not args.no_progress else False,
    )
    protect_folder(args.folder, args.out, opts, emit=emit)
    return 0


def registries() -> list[tuple[str, dict[str, str]]]:
    """Protection methods, for ``encoder-audit info``."""
    from ..attacks.registry import registry

    return [("protections (encoder-audit protect --method)", registry("protection").describe())]
