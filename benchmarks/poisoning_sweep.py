"""Poison-count sweep on Fashion-MNIST: targeted success and backdoor ASR / z-score vs number of poisons.

Every level (k targeted poisons per trial, m backdoor poisons) trains one CPU-scale CLIP-style model
(see ``ClipExperimentConfig``); levels of one seed share the clean pairs, training seed, trials and trigger.

    python benchmarks/poisoning_sweep.py --seeds 0 --out docs/benchmarks/poisoning_sweep_seed0.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from encoder_audit.attacks.poisoning.experiment import ClipExperimentConfig, run_sweep
from encoder_audit.data import create_dataset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--levels", default="0:0,2:25,8:50,32:100,64:200", help="k:m pairs")
    p.add_argument("--train-size", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--mode", choices=["replace", "add"], default="replace", help="poisons replace pairs or are added")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--manifests", type=Path, default=None, help="folder for per-run manifests")
    a = p.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    levels = [tuple(int(v) for v in lv.split(":")) for lv in a.levels.split(",")]
    cfg = ClipExperimentConfig(train_size=a.train_size, epochs=a.epochs, mode=a.mode)
    train, test = create_dataset("fashion-mnist", "train"), create_dataset("fashion-mnist", "test")
    rows = []
    for seed in a.seeds:
        rows += run_sweep(train, test, levels=levels, seeds=[seed], config=cfg, out_dir=a.manifests)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(
            json.dumps(
                {"config": {"levels": levels, "train_size": a.train_size, "epochs": a.epochs}, "rows": rows}, indent=1
            )
        )


if __name__ == "__main__":
    main()
