"""How much of the embedding space different users cover under the B4B-style defense, and the noise
they get: an honest Fashion-MNIST user, a user sending SimCLR-augmented views of the same images,
a user of another natural dataset (digits), procedural gratings (synthetic) and uniform noise.

    python benchmarks/service_b4b_coverage.py --checkpoint /tmp/victim/encoder.safetensors --queries 7000
"""

from __future__ import annotations

import argparse
import json

import torch

from encoder_audit.augment import create_views
from encoder_audit.data import create_dataset
from encoder_audit.defenses import create_defense
from encoder_audit.victim import load_encoder


def take(ds, n: int, g: torch.Generator) -> torch.Tensor:
    idx = torch.randint(len(ds), (n,), generator=g) if n > len(ds) else torch.randperm(len(ds), generator=g)[:n]
    return ds.float_images(idx)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--queries", type=int, default=7000)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    enc = load_encoder(args.checkpoint)
    g = torch.Generator().manual_seed(0)
    n = args.queries
    fm = create_dataset("fashion-mnist", "train")
    views = create_views("simclr", size=28)
    users = {
        "fashion-mnist images": take(fm, n, g),
        "fashion-mnist, SimCLR views": views(take(fm, n, g), g),
        "digits (repeats)": take(create_dataset("digits", "train"), n, g),
        "synthetic gratings": take(create_dataset("synthetic", "train", n=n), n, g),
        "uniform noise": torch.rand(n, 1, 28, 28, generator=g),
    }
    b4b = create_defense("b4b")
    for user, x in users.items():
        for i in range(0, n, 500):
            b4b(enc.embed(x[i : i + 500]), x[i : i + 500], user=user)
    print(json.dumps({"queries": n, "accounts": b4b.accounts()}, indent=2))


if __name__ == "__main__":
    main()
