"""Stealing benchmark: every method at matched query budgets, one seed per process (append to JSONL).

    python benchmarks/stealing_sweep.py --victim /tmp/victim_steal/encoder.safetensors --seed 0 \
        --budgets 500 2500 --train-images 3000 --out docs/benchmarks/stealing_rows.jsonl

The victim is the quick-preset SimCLR cnn-small (`encoder-audit pretrain --preset quick`), trained on
a seeded 20,000-image subset of the Fashion-MNIST train split; the attacker's query pool is the other
40,000 train images (same distribution, disjoint). Downstream: Fashion-MNIST and digits.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

import torch

from encoder_audit.attacks.stealing.evaluate import StealEvalConfig
from encoder_audit.attacks.stealing.presets import STEALING_PRESETS
from encoder_audit.attacks.stealing.sweep import run_sweep
from encoder_audit.data import create_dataset
from encoder_audit.victim import load_encoder


def query_pool(victim_images: int = 20_000, victim_seed: int = 0):
    full = create_dataset("fashion-mnist", "train")
    used = torch.randperm(len(full), generator=torch.Generator().manual_seed(victim_seed))[:victim_images]
    mask = torch.ones(len(full), dtype=torch.bool)
    mask[used] = False
    return full.subset(torch.nonzero(mask).flatten())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--victim", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budgets", type=int, nargs="+", default=[500, 2500])
    ap.add_argument("--methods", nargs="+", default=["conventional", "stolenencoder", "contsteal", "rda"])
    ap.add_argument("--train-images", type=int, default=3000, help="surrogate training images per run")
    ap.add_argument("--contsteal-epochs", type=int, default=5)
    ap.add_argument("--eval-train", type=int, default=1000)
    ap.add_argument("--eval-test", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    preset = replace(STEALING_PRESETS["quick"], train_images=args.train_images, epochs=args.contsteal_epochs)
    victim = load_encoder(args.victim)
    eval_sets = {n: (create_dataset(n, "train"), create_dataset(n, "test")) for n in ("fashion-mnist", "digits")}
    ec = StealEvalConfig(max_train=args.eval_train, max_test=args.eval_test)

    def save(row: dict) -> None:
        with args.out.open("a") as f:
            f.write(
                json.dumps(
                    {**row, "preset": {"train_images": args.train_images, "contsteal_epochs": args.contsteal_epochs}}
                )
                + "\n"
            )

    run_sweep(
        victim,
        query_pool(),
        eval_sets,
        methods=args.methods,
        budgets=args.budgets,
        seeds=[args.seed],
        preset=preset,
        eval_config=ec,
        on_row=save,
    )


if __name__ == "__main__":
    main()
