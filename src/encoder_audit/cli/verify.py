"""``encoder-audit watermark`` (embed an ownership watermark) and ``encoder-audit verify`` (test a suspect)."""

from __future__ import annotations

import argparse
from typing import Any

from .common import HelpFormatter, add_common, emit, progress

VERIFY_EPILOG = """examples:
  encoder-audit verify --suspect runs/…-steal/surrogate.safetensors --watermark owner.key.json
  encoder-audit verify --suspect http://127.0.0.1:8000 --api-key $KEY --watermark owner.key.json --images 300

Exit status 0 either way; the verdict is printed and written to results.json (p < --alpha: watermark present).
"""

WATERMARK_EPILOG = """examples:
  encoder-audit watermark --encoder runs/…-pretrain/encoder.safetensors --out runs/wm
  # -> runs/wm/encoder.safetensors (watermarked) and runs/wm/watermark.key.json (keep it secret)
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="test a suspect encoder for the owner's watermark (p-value)",
        description="Query a suspect encoder with clean and trigger-stamped images and test whether the trigger moves "
        "its embeddings towards the key's secret direction more than towards random directions (exact permutation "
        "p-value).",
        epilog=VERIFY_EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("--suspect", required=True, help="encoder checkpoint or http(s):// URL")
    p.add_argument("--api-key", default=None, help="API key for a URL suspect (default: $ENCODER_AUDIT_API_KEY)")
    p.add_argument("--watermark", required=True, help="watermark key file (JSON) written by `encoder-audit watermark`")
    p.add_argument("--data", default="fashion-mnist", help="dataset of the verification images")
    p.add_argument("--split", default="test", help="split of the verification images")
    p.add_argument("--images", type=int, default=500, help="verification images (each sent clean and triggered)")
    p.add_argument("--null-directions", type=int, default=999, help="random directions of the null distribution")
    p.add_argument("--alpha", type=float, default=0.01, help="decision level")
    add_common(p)
    p.set_defaults(func=run_verify)

    w = sub.add_parser(
        "watermark",
        help="embed an ownership watermark (secret trigger -> secret direction) into an encoder",
        description="Fine-tune a copy of an encoder so that a secret trigger patch maps images to a secret embedding "
        "direction while clean embeddings stay put (BadEncoder used as a watermark); writes the watermarked "
        "checkpoint and the key file.",
        epilog=WATERMARK_EPILOG,
        formatter_class=HelpFormatter,
    )
    w.add_argument("--encoder", required=True, help="encoder checkpoint to watermark")
    w.add_argument("--data", default="fashion-mnist", help="owner's images for the fine-tuning")
    w.add_argument("--max-images", type=int, default=5_000, help="fine-tuning images")
    w.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs")
    w.add_argument("--lam", type=float, default=1.0, help="weight of the keep-clean-embeddings term")
    add_common(w)
    w.set_defaults(func=run_watermark)


def run_verify(args: argparse.Namespace) -> int:
    import torch

    from ..data import create_dataset
    from ..defenses.watermark import WatermarkKey, verify_watermark
    from ..runs import RunDir
    from ..victim import QueryCounter
    from .steal import open_victim

    if args.images < 2:
        raise ValueError(f"--images must be >= 2, got {args.images}")
    key = WatermarkKey.load(args.watermark)
    suspect = QueryCounter(open_victim(args.suspect, args.api_key))
    ds = create_dataset(args.data, args.split, root=args.data_root, download=args.download)
    g = torch.Generator().manual_seed(args.seed)
    idx = torch.randperm(len(ds), generator=g)[: args.images].sort().values
    verdict = verify_watermark(
        suspect, key, ds.float_images(idx), null_directions=args.null_directions, alpha=args.alpha
    )
    run_dir = RunDir.create("verify", args.runs_dir, out=args.out)
    results: dict[str, Any] = {"watermark": verdict.to_dict(), "usage": suspect.usage(), "suspect": args.suspect}
    run_dir.save_results(results, kind="verify")
    word = "PRESENT" if verdict.detected else "not detected"
    emit(
        f"watermark {word}: p = {verdict.p_value:.4f} (alpha {verdict.alpha}), z = {verdict.z:.1f}, "
        f"shift towards key {verdict.statistic:.4f} vs. random {verdict.null_mean:.4f} +- {verdict.null_std:.4f}; "
        f"{suspect.images} images queried; results: {run_dir.file('results.json')}"
    )
    return 0


def run_watermark(args: argparse.Namespace) -> int:
    import torch

    from ..data import create_dataset
    from ..defenses.watermark import WatermarkConfig, embed_watermark, new_watermark_key
    from ..models.checkpoint import load_encoder_net, save_encoder
    from ..runs import RunDir, seed_everything

    seed_everything(args.seed)
    net, meta = load_encoder_net(args.encoder)
    ds = create_dataset(args.data, "train", root=args.data_root, download=args.download)
    if args.max_images and args.max_images < len(ds):
        g = torch.Generator().manual_seed(args.seed)
        ds = ds.subset(torch.randperm(len(ds), generator=g)[: args.max_images].sort().values)
    key = new_watermark_key(net.input_shape, net.feature_dim)
    wm = embed_watermark(
        net, key, ds, WatermarkConfig(epochs=args.epochs, lam=args.lam), seed=args.seed, progress=progress(args)
    )
    run_dir = RunDir.create("watermark", args.runs_dir, out=args.out)
    ckpt = save_encoder(
        run_dir.file("encoder.safetensors"),
        wm,
        training={"watermarked_from": str(args.encoder), **meta.get("training", {})},
    )
    key_path = key.save(run_dir.file("watermark.key.json"))
    emit(f"watermarked encoder: {ckpt}\nkey (keep it secret): {key_path}")
    return 0
