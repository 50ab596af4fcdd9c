"""How much RDA's P prototype views carry beyond one query on a 1-channel victim (auditor-side statistics).

    python benchmarks/stealing_protoviews.py --victim runs/victim-quick/encoder.safetensors \
        --out docs/benchmarks/data/stealing/protoviews.json

For each view recipe, crop scale and P in {1, 3, 10}: the median / mean norm of the prototypes (1 = all
P views answered the same direction) and their cosine to the victim's embedding of the clean image,
on the first ``--images`` Fashion-MNIST test images. No surrogate is trained.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from encoder_audit.attacks.stealing.rda import prototype_statistics
from encoder_audit.data import create_dataset
from encoder_audit.victim import load_encoder

SETTINGS = [
    ("rda-prototype", None),
    ("rda-prototype", (0.75, 0.75)),
    ("rda-prototype", (0.5, 0.5)),
    ("rda-gray-prototype", None),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--victim", required=True)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    victim = load_encoder(args.victim)
    x = create_dataset("fashion-mnist", "test").float_images(torch.arange(args.images))
    rows = []
    for recipe, crop in SETTINGS:
        for p in (1, 3, 10):
            stats = prototype_statistics(victim, x, p, recipe, crop=crop, seed=0)
            rows.append({"recipe": recipe, "crop": list(crop) if crop else None, "P": p, **stats})
            print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"images": args.images, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
