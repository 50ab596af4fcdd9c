"""Train the CPU-scale CLIP-style dual encoder used as the UC-CLIP surrogate.

    python benchmarks/unlearnable_clip_surrogate.py --out /tmp/clip_uc/clip.safetensors [--images 5000 --epochs 3]

Image-caption pairs are Fashion-MNIST training images (a seeded subset that excludes the benchmark's
protected subset) with captions generated from their class names (``data.captions.make_paired``), so this
surrogate's embedding space is organised by the class semantics, as real CLIP's is by language.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--exclude-train", type=int, default=1000, help="size of the benchmark subset to exclude")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO)

    from encoder_audit.data import create_dataset
    from encoder_audit.data.captions import make_paired
    from encoder_audit.models.clip import save_clip
    from encoder_audit.train import TrainConfig
    from encoder_audit.train.clip import train_clip

    full = create_dataset("fashion-mnist", "train")
    g = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(len(full), generator=g)  # same draw as the benchmark's subset
    pool = perm[args.exclude_train :]
    idx = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(1))[: args.images]].sort().values
    paired = make_paired(full.subset(idx), seed=args.seed)
    t0 = time.perf_counter()
    model, _ = train_clip(
        paired,
        train=TrainConfig(epochs=args.epochs, batch_size=128, lr=2e-3, seed=args.seed, checkpoint_every=0),
        progress=False,
    )
    save_clip(args.out, model, training={"images": args.images, "epochs": args.epochs})
    logging.info("CLIP surrogate trained in %.0fs -> %s", time.perf_counter() - t0, args.out)


if __name__ == "__main__":
    main()
