"""Defenses with their sweeps on one poisoned CPU-scale CLIP-style model (Fashion-MNIST).

Trains a model with k targeted poisons per trial and m backdoor poisons (replacing clean pairs), then

* scores every training pair with the kNN-density filter (and, with ``--similarity``, a reference
  model trained on the trusted pairs) and reports precision / recall over removal fractions, the
  true poisoned fraction included, retraining without the flagged pairs at the true poisoned fraction;
* fine-tunes with CleanCLIP on trusted clean pairs at a constant learning rate and measures the
  attacks and clean zero-shot accuracy after each listed epoch.

    python benchmarks/poisoning_defenses.py --k 8 --m 100 --train-size 500 --epochs 30 --seed 0 --out def_s0.json
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
from encoder_audit.data import create_dataset, subsample
from encoder_audit.data.captions import make_paired
from encoder_audit.runs import derive_seed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--m", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-size", type=int, default=500)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--mode", choices=["replace", "add"], default="replace")
    p.add_argument("--trusted", type=int, default=500, help="clean pairs the defender owns (disjoint)")
    p.add_argument("--fractions", default="0.02,0.05,0.1,0.2,0.3,0.4", help="filter removal fractions")
    p.add_argument("--cleanclip-epochs", default="1,3,10,20", help="CleanCLIP epochs at which to measure")
    p.add_argument("--cleanclip-lr", type=float, default=5e-4)
    p.add_argument("--similarity", action="store_true", help="also run the reference-model similarity filter")
    p.add_argument("--no-retrain", action="store_true", help="score the filters without retraining")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = ClipExperimentConfig(train_size=a.train_size, epochs=a.epochs, mode=a.mode)
    train, test = create_dataset("fashion-mnist", "train"), create_dataset("fashion-mnist", "test")
    clean = clean_pairs(train, cfg)
    used = set(clean.images.indices.tolist())
    rest = train.subset(sorted(set(range(len(train))) - used))
    trusted = make_paired(subsample(rest, a.trusted, derive_seed(a.seed, "trusted")), seed=a.seed + 1)
    run = run_poisoned_clip(clean, test, targeted_poisons=a.k, backdoor_poisons=a.m, config=cfg, seed=a.seed)
    defenses = ("filter-density", *(("filter-similarity",) if a.similarity else ()), "cleanclip")
    out = run_defenses(
        run,
        test,
        trusted,
        config=cfg,
        defenses=defenses,
        filter_fractions=tuple(float(v) for v in a.fractions.split(",")),
        retrain_fractions=() if a.no_retrain else (0.0,),
        cleanclip_epochs=tuple(int(v) for v in a.cleanclip_epochs.split(",")),
        cleanclip_lr=a.cleanclip_lr,
        seed=a.seed,
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(
        json.dumps({"args": vars(a) | {"out": str(a.out)}, "poisoned": run.metrics, **out}, indent=1, default=str)
    )


if __name__ == "__main__":
    main()
