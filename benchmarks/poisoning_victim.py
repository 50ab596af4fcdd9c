"""Train the audit's ``quick`` default victim (SimCLR cnn-small on a seed's member split) for the BadEncoder runs.

python benchmarks/poisoning_victim.py --seed 0 --out runs/poisoning-victim-s0

The victim is the one ``encoder-audit audit --preset quick`` trains for seed S: the same member split
(:func:`encoder_audit.audit.plan.prepare_data`) and the same recipe (``default_victim``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from encoder_audit.audit.config import preset_config
from encoder_audit.audit.plan import prepare_data
from encoder_audit.runs import RunDir, derive_seed, seed_everything
from encoder_audit.train import TrainConfig, pretrain


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="quick")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    cfg = preset_config(a.preset)
    data = prepare_data(cfg.data, seed=a.seed)
    c = cfg.default_victim
    seed = derive_seed(a.seed, "victim") % (2**31)
    seed_everything(seed)
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pretrain(
        data.members,
        method=c.method,
        encoder=c.encoder,
        train=TrainConfig(epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, seed=seed, checkpoint_every=0),
        run=RunDir(a.out),
        progress=False,
    )
    print(f"victim trained in {time.perf_counter() - t0:.0f} s: {a.out / 'encoder.safetensors'}")


if __name__ == "__main__":
    main()
