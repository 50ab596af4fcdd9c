"""``encoder-audit protect``: publish a folder of images as unlearnable examples (Unlearnable Clusters).

Reads every image under FOLDER (any size; PNG, JPEG, ...), crafts the protection at the surrogate's
input size, resizes each perturbation to the image's own size with nearest-neighbour interpolation
(which keeps every value, so the L-inf budget is unchanged; the official ``resize_type: noise`` mode),
and writes ``OUT/<same relative path>.png`` atomically, plus ``OUT/protect_manifest.json`` (cluster of
every image, budget, surrogate sha256, seed, unreadable files) and ``OUT/perturbations.safetensors``.
FOLDER is only read.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from .common import HelpFormatter, add_common, emit, resolved_options, section

log = logging.getLogger(__name__)

EPILOG = """examples:
  encoder-audit pretrain --preset quick --out runs/surrogate          # a surrogate encoder (minutes on CPU)
  encoder-audit protect photos/ --out photos_protected/ --surrogate runs/surrogate/encoder.safetensors
  encoder-audit protect photos/ --out out/ --method uc --surrogate S.safetensors --clusters 10 --eps 16/255 \\
      --epochs 20 --train-on members
  encoder-audit protect photos/ --out out/ --method random --eps 8/255   # the random-noise control
  encoder-audit protect photos/ --out out/ --surrogate clip.safetensors  # UC-CLIP with a CLIP checkpoint

Method options go through --set KEY=VALUE (fields of the method's config, e.g. --set loss=cosine).
Images are written as 8-bit PNG (lossless: the budget holds on the files); grayscale images stay
grayscale, others become RGB (alpha is dropped). Unreadable files are listed on stderr and in the manifest.
"""

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
MANIFEST = "protect_manifest.json"


def register(sub: argparse._SubParsersAction) -> None:
    from ..attacks.unlearnable import PROTECTIONS

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
    p.add_argument("--method", choices=PROTECTIONS.names(), default="uc", help="protection method")
    p.add_argument("--surrogate", type=Path, default=None, help="encoder (or CLIP) checkpoint used as surrogate")
    p.add_argument("--clusters", type=int, default=10, help="K of K-means (uc; protector classes of baselines)")
    p.add_argument("--eps", default="16/255", help="budget in [0,1] pixel units, e.g. 16/255")
    p.add_argument("--norm", choices=["linf", "l2"], default="linf", help="budget norm")
    p.add_argument("--epochs", type=int, default=None, help="generator epochs (uc; official 50)")
    p.add_argument("--train-on", choices=["all", "members"], default=None, help="uc: images training each generator")
    p.add_argument("--craft-size", type=int, default=None, help="side of the crafted noise (default: surrogate input)")
    p.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty OUT")
    add_common(p, data=False)
    for action in p._actions:
        if action.dest == "out":
            action.help = "folder to write the protected PNGs and the manifest to (required; not inside FOLDER)"
    p.set_defaults(func=run)


def _scan(folder: Path) -> list[Path]:
    return sorted(
        f
        for f in folder.rglob("*")
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(folder).parts)
    )


def _load(path: Path) -> Any:
    """(C, H, W) uint8 tensor of an image file (EXIF orientation applied), or raise."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
        gray = img.mode in ("1", "L", "LA", "I", "I;16", "F")
        arr = np.asarray(img.convert("L" if gray else "RGB"))
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def _output_names(rels: list[Path]) -> list[Path]:
    """``a/b.jpg`` -> ``a/b.png``; if two inputs would collide, keep the old suffix (``a/b.jpg.png``)."""
    outs = [r.with_suffix(".png") for r in rels]
    seen: dict[Path, int] = {}
    for o in outs:
        seen[o] = seen.get(o, 0) + 1
    return [
        r.with_name(r.name + ".png") if seen[o] > 1 and r.suffix.lower() != ".png" else o for r, o in zip(rels, outs)
    ]


def _surrogate(path: Path) -> tuple[Any, dict[str, Any]]:
    import json

    from ..models.checkpoint import sha256_file
    from ..victim import load_encoder

    weights = path / "encoder.safetensors" if path.is_dir() else path
    if weights.suffix != ".safetensors":
        weights = weights.with_suffix(".safetensors")
    if not weights.is_file():
        raise FileNotFoundError(f"surrogate checkpoint {weights} not found")
    sidecar = weights.with_suffix(".json")
    kind = json.loads(sidecar.read_text()).get("kind") if sidecar.is_file() else None
    info = {"path": str(weights), "sha256": sha256_file(weights), "kind": kind or "encoder"}
    if kind == "clip":
        from ..models.clip import load_clip

        model, _ = load_clip(weights)
        enc = model.image_encoder()
        info["uc_variant"] = "UC-CLIP"
        return enc, info
    enc = load_encoder(weights)
    info["architecture"] = enc.meta.get("architecture")
    info["uc_variant"] = "UC"
    return enc, info


def run(args: argparse.Namespace) -> int:
    import torch

    from ..attacks.unlearnable import PROTECTIONS, apply_perturbation, create_protection, parse_eps
    from ..attacks.unlearnable.generator import resize_perturbation
    from ..attacks.unlearnable.perceptibility import save_png_atomic
    from ..config import build_config, config_to_dict
    from ..data.base import DatasetInfo, ImageDataset
    from ..io import atomic_write, atomic_write_json
    from ..victim import adapt_images

    t0 = time.perf_counter()
    folder: Path = args.folder
    out: Path = args.out if args.out is not None else None  # type: ignore[assignment]
    if out is None:
        raise ValueError("--out is required: the folder to write the protected copies to")
    if not folder.is_dir():
        raise FileNotFoundError(f"input folder {folder} does not exist or is not a folder")
    fr, orr = folder.resolve(), out.resolve()
    if orr == fr or fr in orr.parents:
        raise ValueError(f"--out {out} must not be inside the input folder {folder} (the input is never modified)")
    if orr in fr.parents:
        raise ValueError(f"--out {out} must not contain the input folder {folder}")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise ValueError(f"--out {out} exists and is not empty (use --overwrite)")
    eps = parse_eps(args.eps)
    if args.clusters < 2:
        raise ValueError(f"--clusters must be >= 2, got {args.clusters}")

    files = _scan(folder)
    images, rels, unreadable = [], [], []
    for f in files:
        try:
            images.append(_load(f))
            rels.append(f.relative_to(folder))
        except Exception as exc:
            unreadable.append({"path": str(f.relative_to(folder)), "error": f"{type(exc).__name__}: {exc}"[:200]})
            log.warning("unreadable, skipped: %s (%s)", f.relative_to(folder), type(exc).__name__)
    for u in unreadable:
        emit(f"unreadable: {u['path']}")
    if not images:
        raise ValueError(f"no readable images in {folder}")

    # Resolve the method's config: CLI flags, then --config/--set values.
    cls = PROTECTIONS.config_class(args.method)
    options = resolved_options(args)
    values: dict[str, Any] = {k: v for k, v in options.items() if not isinstance(v, dict)}
    values.update(section(options, args.method))
    fields = set(cls.__dataclass_fields__) if cls is not None else set()
    flag_values = {
        "eps": eps,
        "norm": args.norm,
        "seed": args.seed,
        "clusters": args.clusters,
        "label_clusters": args.clusters,
        "label_source": "clusters",
        "epochs": args.epochs,
        "train_on": args.train_on,
    }
    for key, value in flag_values.items():
        if key in fields and value is not None:
            values.setdefault(key, value)
    config = build_config(cls, values) if cls is not None else None

    surrogate, sinfo = (None, {"path": None})
    if args.surrogate is not None:
        surrogate, sinfo = _surrogate(args.surrogate)
    elif args.method in ("uc",) or getattr(config, "label_source", None) == "clusters":
        raise ValueError(f"--method {args.method} needs --surrogate CHECKPOINT (e.g. from `encoder-audit pretrain`)")

    # Working set at the surrogate's input shape (or the craft size).
    if surrogate is not None:
        c_s, s_h, _ = surrogate.input_shape
    else:
        c_s, s_h = (1 if all(im.shape[0] == 1 for im in images) else 3), 32
    size = args.craft_size or s_h
    work = torch.stack(
        [
            (adapt_images(im[None].float().div(255), (c_s, size, size))[0] * 255).round().clamp(0, 255).to(torch.uint8)
            for im in images
        ]
    )
    info = DatasetInfo(name=f"folder:{folder.name}", channels=c_s, image_size=size, num_classes=0)
    ds = ImageDataset(work, None, info, split="train")
    kwargs: dict[str, Any] = {"surrogate": surrogate}
    if args.method == "uc":
        kwargs["craft_size"] = size
    protection = create_protection(args.method, config, **kwargs)
    emit(f"protecting {len(images)} images from {folder} with {args.method} (eps {args.eps} {args.norm}) ...")
    prot = protection.protect(ds, progress=None if not args.no_progress else False)
    if args.method == "uc":
        deltas = prot.meta["fit"].perturbations  # (K, C, h, w) exact float perturbations
        per_image = None
    else:
        deltas = None
        per_image = (prot.dataset.images.float() - work.float()) / 255.0
    groups = prot.groups

    names = _output_names(rels)
    records = []
    worst = 0
    for i, (im, rel, name) in enumerate(zip(images, rels, names)):
        c, h, w = im.shape
        if deltas is not None:
            d = resize_perturbation(deltas[int(groups[i]) : int(groups[i]) + 1], h, w, c)
        else:
            d = resize_perturbation(per_image[i : i + 1], h, w, c)
        protected = apply_perturbation(im[None], d, prot.eps, prot.norm)[0]
        save_png_atomic(out / name, protected)
        diff = int((protected.int() - im.int()).abs().max())
        worst = max(worst, diff)
        records.append(
            {
                "source": str(rel),
                "output": str(name),
                "cluster": None if groups is None else int(groups[i]),
                "size": [h, w],
                "channels": c,
                "linf_levels": diff,
            }
        )
    if deltas is not None:
        from safetensors.torch import save_file

        atomic_write(
            out / "perturbations.safetensors",
            lambda tmp: save_file(
                {"perturbations": deltas.contiguous()}, str(tmp), metadata={"format": "encoder-audit"}
            ),
        )
    seconds = time.perf_counter() - t0
    fit_meta = {k: v for k, v in prot.meta.items() if k != "fit"}
    manifest = {
        "kind": "protect-manifest",
        "method": args.method,
        "variant": sinfo.get("uc_variant") if args.method == "uc" else None,
        "budget": {
            "eps": prot.eps,
            "eps_text": str(args.eps),
            "norm": prot.norm,
            "eps_levels": round(prot.eps * 255, 3),
        },
        "max_linf_levels_written": worst,
        "surrogate": sinfo,
        "seed": args.seed,
        "clusters": args.clusters if args.method == "uc" else getattr(config, "label_clusters", None),
        "config": config_to_dict(config) if config is not None else {},
        "craft_size": size,
        "noise_resize": "nearest (per-cluster perturbation resized to each image's size)",
        "protection_meta": {k: v for k, v in fit_meta.items() if isinstance(v, (str, int, float, bool, list, dict))},
        "images": records,
        "unreadable": unreadable,
        "input_folder": str(folder),
        "seconds": round(seconds, 2),
    }
    atomic_write_json(out / MANIFEST, manifest)
    emit(
        f"wrote {len(records)} protected PNGs to {out} (max |delta| {worst}/255, budget {prot.eps * 255:.1f}/255); "
        f"{len(unreadable)} unreadable; manifest {out / MANIFEST} ({seconds:.0f}s)"
    )
    return 0


def registries() -> list[tuple[str, dict[str, str]]]:
    """Protection methods, for ``encoder-audit info``."""
    from ..attacks.unlearnable import PROTECTIONS

    return [("protections (encoder-audit protect --method)", PROTECTIONS.describe())]
