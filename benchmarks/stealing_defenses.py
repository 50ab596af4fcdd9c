"""Stealing vs. output defenses: RDA (and optionally a baseline) against the defended victim, beside
each defense's cost to honest users (downstream accuracy of the defended embeddings, drift from clean).

    python benchmarks/stealing_defenses.py --victim /tmp/victim_steal/encoder.safetensors --budget 2500 \
        --defenses none noise:sigma=0.5 round:decimals=1 topk:k=8 --out docs/benchmarks/stealing_defense_rows.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

import torch
from stealing_sweep import query_pool

from encoder_audit.attacks.stealing.audit import defense_cost
from encoder_audit.attacks.stealing.evaluate import FeatureCache, StealEvalConfig
from encoder_audit.attacks.stealing.presets import STEALING_PRESETS
from encoder_audit.attacks.stealing.sweep import plan_attack, run_point
from encoder_audit.data import create_dataset
from encoder_audit.defenses import DefendedEncoder, parse_defense_spec
from encoder_audit.victim import load_encoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--victim", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=int, default=2500)
    ap.add_argument("--methods", nargs="+", default=["rda"])
    ap.add_argument("--defenses", nargs="+", default=["none", "noise:sigma=0.5", "round:decimals=1", "topk:k=8"])
    ap.add_argument("--train-images", type=int, default=3000)
    ap.add_argument("--eval-train", type=int, default=1000)
    ap.add_argument("--eval-test", type=int, default=500)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    preset = replace(STEALING_PRESETS["quick"], train_images=args.train_images, epochs=5)
    victim = load_encoder(args.victim)
    eval_sets = {n: (create_dataset(n, "train"), create_dataset(n, "test")) for n in ("fashion-mnist", "digits")}
    ec = StealEvalConfig(max_train=args.eval_train, max_test=args.eval_test)
    cache = FeatureCache()
    pool = query_pool()
    for spec in args.defenses:
        defended = victim if spec == "none" else DefendedEncoder(victim, [parse_defense_spec(spec)])
        cost = defense_cost(victim, defended, *eval_sets["fashion-mnist"], ec)
        for method in args.methods:
            point = plan_attack(method, args.budget, preset, seed=args.seed)
            row = run_point(
                point, defended, pool, eval_sets, seed=args.seed, eval_config=ec, cache=cache, target=victim
            )
            row.pop("_result")
            row.update({"defense": spec, "cost": cost})
            logging.info("%s %s: %s", spec, method, {k: v for k, v in row.items() if "mean/" in k or k == "cost"})
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
