"""Defenses before/after on one poisoned CPU-scale CLIP-style model (Fashion-MNIST).

Trains a model with k targeted poisons per trial and m backdoor poisons, then applies CleanCLIP
fine-tuning on trusted clean pairs and two filter-and-retrain defenses (reference-model similarity,
kNN density), reporting attack success and clean accuracy before and after, and detector AUROC.

    python benchmarks/poisoning_defenses.py --k 16 --m 100 --out docs/benchmarks/poisoning_defenses.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from encoder_audit.attacks.poisoning.experiment import (
    ClipExperimentConfig,
    clean_pairs,
    run_defenses,
    run_poisoned_clip,
)
from encoder_audit.data import create_dataset
from encoder_audit.data.captions import make_paired


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--m", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-size", type=int, default=1500)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--trusted", type=int, default=500, help="clean pairs the defender owns (disjoint)")
    p.add_argument("--remove-fraction", type=float, default=0.1)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = ClipExperimentConfig(train_size=a.train_size, epochs=a.epochs)
    train, test = create_dataset("fashion-mnist", "train"), create_dataset("fashion-mnist", "test")
    clean = clean_pairs(train, cfg)
    used = set(clean.images.indices.tolist())
    g = torch.Generator().manual_seed(12345)
    rest = [i for i in torch.randperm(len(train), generator=g).tolist() if i not in used][: a.trusted]
    trusted = make_paired(train.subset(sorted(rest)), seed=1)
    run = run_poisoned_clip(clean, test, targeted_poisons=a.k, backdoor_poisons=a.m, config=cfg, seed=a.seed)
    rows = run_defenses(run, test, trusted, config=cfg, remove_fraction=a.remove_fraction, seed=a.seed)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(
        json.dumps(
            {"args": vars(a) | {"out": str(a.out)}, "poisoned": run.metrics, "defenses": rows}, indent=1, default=str
        )
    )


if __name__ == "__main__":
    main()
