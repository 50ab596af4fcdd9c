"""BadEncoder on a SimCLR-trained cnn-small (Fashion-MNIST): CA / BA / ASR of an unsuspecting user's linear probe.

encoder-audit pretrain --preset quick --max-images 5000 --epochs 4 --no-eval --out runs/victim
python benchmarks/poisoning_badencoder.py --victim runs/victim/encoder.safetensors --out bad.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from encoder_audit.attacks.poisoning.badencoder import (
    BadEncoder,
    BadEncoderConfig,
    evaluate_badencoder,
    reference_images,
)
from encoder_audit.data import create_dataset
from encoder_audit.models import load_encoder_net


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--victim", required=True)
    p.add_argument("--shadow-size", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--target-label", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    net, _ = load_encoder_net(a.victim)
    train, test = create_dataset("fashion-mnist", "train"), create_dataset("fashion-mnist", "test")
    cfg = BadEncoderConfig(
        target_label=a.target_label, shadow_size=a.shadow_size, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr
    )
    refs, _ = reference_images(train, a.target_label, cfg.references, seed=a.seed)
    t0 = time.perf_counter()
    attack = BadEncoder(cfg)
    bad = attack.attack(net, train, refs, seed=a.seed, progress=False)
    metrics = evaluate_badencoder(net, bad, train, test, cfg.trigger, a.target_label, max_train=3000, max_test=1000)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(a).items()},
                "metrics": metrics,
                "history": attack.history,
                "seconds": round(time.perf_counter() - t0, 1),
            },
            indent=1,
        )
    )
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
