"""SimCLR training throughput of an encoder vs. its raw forward+backward throughput, in one run.

    python benchmarks/train_throughput.py [--encoder cnn-small] [--batch-size 256] [--steps 20]

SimCLR encodes two views per image, so a step at batch B runs the encoder on 2B images. The raw
figure is forward+backward of the bare encoder on the same 2B images (no augmentation, head, loss or
optimizer); the ratio of the two (view-images/s) measures everything the training step adds.
Target: >= 0.85 for cnn-small at batch 256 on 2 CPU cores. Both are timed alternately, several
rounds, and the median ratio is reported, because the machine is noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from encoder_audit.data import create_dataset
from encoder_audit.models import create_encoder
from encoder_audit.train import SimCLR


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", default="cnn-small")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10, help="steps per timing round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = create_dataset("fashion-mnist", "train")
    b = args.batch_size
    net = create_encoder(args.encoder, 1, 28, mean=ds.info.mean, std=ds.info.std)
    objective = SimCLR(net)
    opt = torch.optim.Adam([p for p in objective.parameters() if p.requires_grad], lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    batches = [ds.float_images(torch.arange(i * b, (i + 1) * b)) for i in range(args.steps)]

    def raw_round() -> float:
        t = time.perf_counter()
        for x in batches:
            both = torch.cat([x, x])
            net.zero_grad(set_to_none=True)
            net(both).sum().backward()
        return 2 * b * args.steps / (time.perf_counter() - t)

    def train_round() -> float:
        t = time.perf_counter()
        for x in batches:
            loss = objective(x, None, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return 2 * b * args.steps / (time.perf_counter() - t)

    objective.train()
    raw_round(), train_round()  # warm-up
    raws, trains = [], []
    for _ in range(args.rounds):
        raws.append(raw_round())
        trains.append(train_round())
    ratios = [t / r for t, r in zip(trains, raws)]
    print(
        json.dumps(
            {
                "encoder": args.encoder,
                "batch_size": b,
                "threads": args.threads,
                "raw_fwd_bwd_images_per_s": round(statistics.median(raws), 1),
                "simclr_view_images_per_s": round(statistics.median(trains), 1),
                "simclr_images_per_s": round(statistics.median(trains) / 2, 1),
                "ratio_median": round(statistics.median(ratios), 3),
                "ratios": [round(r, 3) for r in ratios],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
