"""``encoder-audit convert``: any victim spec as this project's checkpoint (safetensors + JSON sidecar).

The checkpoint format is documented in ``docs/CHECKPOINTS.md``. After writing, the checkpoint is
loaded back the way an audit would load it and its embeddings are compared with the source's on
the same seeded images; the largest difference is printed (and a mismatch is an error).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ..errors import UserError
from .common import HelpFormatter, add_victim_arguments, emit, victim_options

log = logging.getLogger(__name__)

EPILOG = """examples:
  encoder-audit convert torchvision:resnet50 --weights my_resnet50.pth --out ckpt/resnet50
  encoder-audit convert timm:convnext_tiny --weights model.safetensors --input-shape 3,224,224 --out ckpt/convnext
  encoder-audit convert python:my_models:build --weights state.pt --input-shape 3,96,96 --out ckpt/mine

  encoder-audit audit --victim ckpt/resnet50 --preset smoke      # the folder, or ckpt/resnet50/encoder.safetensors

A torchvision:/timm: checkpoint loads with no options. One of a python: module keeps needing its
code: load it with --victim python:MODULE:FACTORY --weights DIR/encoder.safetensors (the sidecar
supplies the input shape and normalization). TorchScript archives are not converted: their
architecture is code, which safetensors cannot hold; audit them as torchscript:FILE.
"""

TOLERANCE = 1e-4
"""Largest absolute embedding difference between the source and its converted checkpoint."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="write any victim spec as a safetensors checkpoint with its JSON sidecar",
        description="Load SPEC (torchvision:NAME / timm:NAME / python:MODULE:FACTORY with --weights, or a "
        "checkpoint) and write DIR/NAME.safetensors + DIR/NAME.json (docs/CHECKPOINTS.md); the result is loaded "
        "back and its embeddings checked against the source's.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("spec", help="the encoder: torchvision:NAME, timm:NAME, python:MODULE:FACTORY or a checkpoint")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write the checkpoint into")
    p.add_argument("--name", default="encoder", help="file name of the checkpoint (without .safetensors)")
    p.add_argument("--force", action="store_true", help="overwrite an existing checkpoint of that name")
    p.add_argument("--device", default="cpu", help="where to run the check: cpu, cuda, cuda:N or auto")
    add_victim_arguments(p)
    g = p.add_argument_group("output")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    g.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.set_defaults(func=run)


def convert(
    spec: str,
    out: Path,
    *,
    name: str = "encoder",
    force: bool = False,
    device: str = "cpu",
    options: dict[str, Any] | None = None,
) -> tuple[Path, float]:
    """Write ``spec`` as ``out/name.safetensors`` + ``.json``; returns the weights path and the check's
    largest embedding difference.

    Raises:
        UserError: a spec that cannot be converted, an existing checkpoint without ``force``, or a
            converted checkpoint whose embeddings differ from the source's.
    """
    import torch

    from ..models.checkpoint import save_encoder
    from ..victim import LocalEncoder, load_encoder

    options = dict(options or {})
    if spec.startswith(("http://", "https://")):
        raise UserError("a victim URL cannot be converted: its weights are on the server")
    if spec.startswith("torchscript:"):
        raise UserError(
            "a TorchScript archive cannot be converted: its architecture is TorchScript code, which a safetensors "
            f"checkpoint does not hold; audit it as it is (--victim {spec})"
        )
    if not name or "/" in name or name.startswith("."):
        raise UserError(f"--name must be a plain file name, got {name!r}")
    weights_path = out / f"{name}.safetensors"
    if not force and (weights_path.exists() or weights_path.with_suffix(".json").exists()):
        raise UserError(f"{weights_path} already exists (use --force to overwrite)")
    source = load_encoder(spec, device=device, autocast=None, **{k: v for k, v in options.items() if k != "autocast"})
    if not isinstance(source, LocalEncoder):
        raise UserError(f"{spec} is not a module with weights (it is {type(source).__name__}): nothing to convert")
    net = source.net
    meta = source.meta
    extra = {
        "source": meta.get("source", "checkpoint"),
        "spec": meta.get("spec", spec),
        "model_class": meta.get("model_class"),
        "feature_layer": meta.get("feature_layer"),
        "removed_head": meta.get("removed_head", []),
        "converted_from": {
            "weights": Path(str(meta["weights"])).name if meta.get("weights") else None,
            "weights_sha256": meta.get("weights_sha256") if meta.get("source") else None,
        },
    }
    if meta.get("source") is None:  # a checkpoint of this project: keep its training facts
        training, manifest = meta.get("training") or {}, meta.get("data_manifest_sha256")
    else:
        training, manifest = {}, None
    path = save_encoder(weights_path, net, training=training, data_manifest=manifest, extra=extra)
    # load it back the way an audit will, and compare on the same images
    if net.arch.startswith("python:"):
        back = load_encoder(str(meta["spec"]), device=device, weights=path)
    else:
        back = load_encoder(out if name == "encoder" else path, device=device)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(4, *source.input_shape, generator=gen)
    diff = float((source.embed(images) - back.embed(images)).abs().max())
    if not diff <= TOLERANCE:
        raise UserError(f"the converted checkpoint's embeddings differ from the source's by {diff:.3g}")
    log.info("wrote %s (%s, %d-d); embeddings match the source to %.1e", path, net.arch, net.feature_dim, diff)
    return path, diff


def run(args: argparse.Namespace) -> int:
    path, diff = convert(
        args.spec,
        args.out,
        name=args.name,
        force=args.force,
        device=args.device,
        options=victim_options(args),
    )
    sidecar = path.with_suffix(".json").name
    emit(f"wrote {path} and {sidecar}: embeddings of the checkpoint match {args.spec} (max |diff| {diff:.1e})")
    if args.spec.startswith("python:"):
        emit(f"load it with: --victim {args.spec.split('@')[0]} --weights {path}")
    else:
        emit(f"audit it with: encoder-audit audit --victim {args.out if args.name == 'encoder' else path}")
    return 0
