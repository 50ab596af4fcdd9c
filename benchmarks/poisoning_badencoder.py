"""BadEncoder on the quick audit victim (SimCLR cnn-small, Fashion-MNIST): CA / BA / ASR of a user's probe.

python benchmarks/poisoning_victim.py --seed 0 --out runs/poisoning-victim-s0
python benchmarks/poisoning_badencoder.py --victim runs/poisoning-victim-s0/encoder.safetensors --seed 0 --out bad.json

``--save DIR`` also writes the backdoored encoder there with the project's checkpoint writer (for
detectors such as ``benchmarks/poisoning_decree.py``); the sidecar records the attack and its metrics.

The shadow set and references come from the audit's shadow split of ``--split-seed`` (what the audit
stage uses); the user's probe is trained on ``--max-train`` Fashion-MNIST training images and tested on
``--max-test`` test images, on L2-normalised features (the official protocol) and on raw features.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import torch

from encoder_audit.attacks.poisoning.badencoder import BadEncoderConfig, run_badencoder
from encoder_audit.audit.config import preset_config
from encoder_audit.audit.plan import prepare_data
from encoder_audit.models import load_encoder_net
from encoder_audit.models.checkpoint import save_encoder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--victim", required=True)
    p.add_argument("--shadow-size", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--references", type=int, default=1)
    p.add_argument("--reference-crop", action="store_true", help="also crop the reference views (not official)")
    p.add_argument("--reference-choice", choices=["separable", "typical", "random"], default="separable")
    p.add_argument("--target-label", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split-seed", type=int, default=0, help="audit seed whose shadow split is used")
    p.add_argument("--max-train", type=int, default=3000)
    p.add_argument("--max-test", type=int, default=1000)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--save", type=Path, default=None, help="also write the backdoored encoder to this folder")
    a = p.parse_args()
    torch.set_num_threads(1)
    net, _ = load_encoder_net(a.victim)
    data = prepare_data(preset_config("quick").data, seed=a.split_seed)
    cfg = BadEncoderConfig(
        target_label=a.target_label,
        references=a.references,
        shadow_size=a.shadow_size,
        epochs=a.epochs,
        batch_size=a.batch_size,
        lr=a.lr,
        optimizer=a.optimizer,
        reference_crop=a.reference_crop,
        reference_choice=a.reference_choice,
    )
    run = run_badencoder(
        net, data.shadow, data.train, data.test, cfg, seed=a.seed, max_train=a.max_train, max_test=a.max_test
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(a).items()},
                "metrics": run.metrics,
                "history": run.history,
                "steps": run.steps,
                "seconds": round(run.seconds, 1),
            },
            indent=1,
        )
    )
    if a.save is not None:
        a.save.mkdir(parents=True, exist_ok=True)
        save_encoder(
            a.save / "encoder.safetensors",
            run.backdoored,
            training={"attack": "badencoder", "victim": str(a.victim), "seed": a.seed, "config": asdict(cfg)},
            extra={"badencoder": {"metrics": run.metrics, "reference_rows": run.reference_rows}},
        )
    print(json.dumps({**run.metrics, "steps": run.steps, "seconds": round(run.seconds, 1)}))


if __name__ == "__main__":
    main()
