"""Cost of each server-side defense to honest users: kNN / linear-probe accuracy on Fashion-MNIST of
the defended embeddings (``encoder_audit.defenses.cost.defense_cost``), and B4B's coverage for an
honest user versus a user querying a broad distribution.

    python benchmarks/service_defense_cost.py --checkpoint /tmp/victim/encoder.safetensors
"""

from __future__ import annotations

import argparse
import json

import torch

from encoder_audit.data import create_dataset
from encoder_audit.defenses import create_defense
from encoder_audit.defenses.cost import defense_cost
from encoder_audit.evaluate import EvalConfig, extract_features
from encoder_audit.victim import load_encoder

DEFAULT = [
    "noise:sigma=0.1",
    "noise:sigma=0.5",
    "round:decimals=2",
    "round:decimals=1",
    "topk:k=32",
    "topk:k=8",
    "b4b",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--max-train", type=int, default=5000)
    p.add_argument("--max-test", type=int, default=2000)
    p.add_argument("--defense", action="append", default=None)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    enc = load_encoder(args.checkpoint)
    train, test = create_dataset("fashion-mnist", "train"), create_dataset("fashion-mnist", "test")
    cfg = EvalConfig(max_train=args.max_train, max_test=args.max_test)
    out = defense_cost(enc, args.defense or DEFAULT, train, test, cfg)
    # B4B coverage: the honest user above embedded max_train + max_test Fashion-MNIST images; compare with
    # a user sending the same number of uniform-noise images and of mixed-dataset images.
    b4b = create_defense("b4b")
    n = args.max_train + args.max_test
    g = torch.Generator().manual_seed(1)
    honest = extract_features(enc, train.subset(torch.randperm(len(train), generator=g)[:n]))
    noise_imgs = torch.rand(n, 1, 28, 28, generator=g)
    broad = torch.cat([enc.embed(noise_imgs[i : i + 1000]) for i in range(0, n, 1000)])
    for user, feats in (("fashion-mnist user", honest), ("uniform-noise user", broad)):
        for i in range(0, n, 500):
            b4b(feats[i : i + 500], torch.zeros(1), user=user)
    out["b4b_accounts"] = b4b.accounts()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
