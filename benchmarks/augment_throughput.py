"""Throughput of the batched view generators vs. torchvision's per-image transforms, in one run.

    python benchmarks/augment_throughput.py [--batch-size 256] [--rounds 5] [--threads 1]

For each recipe, images/s of one view of a (B, C, H, W) batch in [0, 1] (``create_views(name)(x, g)``),
on 1x28x28 (Fashion-MNIST size) and 3x32x32 (CIFAR size) random images. The reference is the SimCLR
chain applied image by image with torchvision's transforms on tensors (RandomResizedCrop,
RandomHorizontalFlip, ColorJitter p=0.8, RandomGrayscale p=0.2), which is what a DataLoader worker
would run per sample. Median of several rounds (the machine is shared and noisy). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from encoder_audit.augment import VIEWS, create_views


def _rate(fn, n: int, rounds: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    rates = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates)


def _torchvision_simclr(size: int):  # type: ignore[no-untyped-def]
    from torchvision import transforms as T

    return T.Compose(
        [
            T.RandomResizedCrop(size, scale=(0.08, 1.0), antialias=True),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    b = args.batch_size
    rows = []
    for c, s in [(1, 28), (3, 32)]:
        x = torch.rand(b, c, s, s, generator=torch.Generator().manual_seed(0))
        g = torch.Generator().manual_seed(1)
        for name in [n for n in VIEWS.names() if n != "none"]:
            views = create_views(name)
            rate = _rate(lambda views=views, x=x, g=g: views(x, g), b, args.rounds)
            rows.append({"recipe": name, "shape": f"{c}x{s}x{s}", "images_per_s": round(rate)})
        ref = _torchvision_simclr(s)
        small = x[: max(b // 4, 1)]
        rate = _rate(lambda ref=ref, small=small: [ref(img) for img in small], small.shape[0], args.rounds)
        rows.append(
            {"recipe": "torchvision per-image (simclr chain)", "shape": f"{c}x{s}x{s}", "images_per_s": round(rate)}
        )
    print(json.dumps({"batch_size": b, "threads": args.threads, "rounds": args.rounds, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
