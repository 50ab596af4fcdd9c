"""Stealing speed: each attack's surrogate-training images/s vs the encoder's raw training throughput.

Both are measured in the same process with the same thread count, interleaved, so the ratio is
meaningful on a noisy machine. Raw throughput = forward + backward + Adam step of the surrogate
architecture on random batches of the attack's batch size (no augmentation, no loss beyond a mean).
An attack's images/s counts surrogate forward passes (views included) during its training loop,
excluding the victim queries, which are timed separately.

    python benchmarks/stealing_speed.py --victim runs/victim-quick/encoder.safetensors --out speed.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from stealing_common import QUICK_COMMON, QUICK_OPTIONS, query_pool

from encoder_audit.attacks.stealing.compare import draw_queries
from encoder_audit.attacks.stealing.compute import ComputeRule, plan_run
from encoder_audit.models import create_encoder
from encoder_audit.victim import load_encoder


def raw_throughput(arch: str, batch: int, steps: int = 20) -> float:
    """Images/s of forward + backward + Adam on ``arch`` (1x28x28 inputs)."""
    net = create_encoder(arch, in_channels=1, image_size=28)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.rand(batch, 1, 28, 28)
    for _ in range(3):  # warm-up
        opt.zero_grad()
        net(x).mean().backward()
        opt.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--victim", required=True)
    ap.add_argument("--budget", type=int, default=2500)
    ap.add_argument("--methods", nargs="+", default=["conventional", "stolenencoder", "contsteal", "rda"])
    ap.add_argument("--forward-passes", type=int, default=4000, help="surrogate forward passes per attack (equal)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rule = ComputeRule("forward_passes", args.forward_passes)
    victim = load_encoder(args.victim)
    pool = query_pool()
    rows = []
    for method in args.methods:
        options = {**QUICK_COMMON, **QUICK_OPTIONS.get(method, {})}
        arm, budget = "images", args.budget
        try:
            point = plan_run(method, arm=arm, level=args.budget, rule=rule, options=options)
        except ValueError as exc:
            # Cont-Steal queries the victim at every step, so the forward passes do not fit the budget:
            # time its training loop at N = budget / 10 images without a budget (throughput only).
            arm, budget = "equal_n", None
            print(json.dumps({"method": method, "note": f"{exc}; timed at N = {args.budget // 10}, unbudgeted"}))
            point = plan_run(method, arm=arm, level=args.budget // 10, rule=rule, options=options)
        queries = draw_queries(pool, point.n, 0)
        raw_before = raw_throughput(QUICK_COMMON["surrogate"], point.attack.config.batch_size)
        t0 = time.perf_counter()
        result = point.attack.extract(victim, queries, budget=budget)
        wall = time.perf_counter() - t0
        raw_after = raw_throughput(QUICK_COMMON["surrogate"], point.attack.config.batch_size)
        raw = statistics.mean([raw_before, raw_after])
        row = {
            "method": method,
            "arm": arm,
            "budget": budget,
            "n": point.n,
            "steps": result.steps,
            "epochs": round(result.steps / -(-point.n // point.attack.config.batch_size), 2),
            "batch_size": point.attack.config.batch_size,
            "wall_seconds": round(wall, 2),
            "query_seconds": round(result.query_seconds, 2),
            "train_seconds": round(result.train_seconds, 2),
            "train_images": result.train_images,
            "images_per_second": round(result.images_per_second, 1),
            "raw_images_per_second": round(raw, 1),
            "ratio": round(result.images_per_second / raw, 3),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=1))
    print("\n| method | N unique | epochs | batch | wall s | victim query s | train img/s | raw img/s | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['method']} | {r['n']:,} | {r['epochs']} | {r['batch_size']} | {r['wall_seconds']:.1f} | "
            f"{r['query_seconds']:.1f} | {r['images_per_second']:.0f} | {r['raw_images_per_second']:.0f} | "
            f"{r['ratio']:.2f} |"
        )


if __name__ == "__main__":
    main()
