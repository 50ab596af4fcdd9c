"""Train the membership benchmark's encoders (one per process), keeping snapshots for early stopping.

Splits: one i.i.d. manifest over the Fashion-MNIST training split (``make_splits``) with, per model k,
``members_k`` / ``nonmembers_k`` parts, plus a shared ``reference`` part. Model k trained on
``members_k`` is a target in trial k and the *shadow* of trial k-1 (same recipe, disjoint data): the
all-knowledge EncoderMI setting, at one training run per trial.

    python benchmarks/membership_train.py --make-splits --dir runs/mi-bench
    python benchmarks/membership_train.py --dir runs/mi-bench --kind overfit --index 0   # (and 1, 2 in parallel)
    python benchmarks/membership_train.py --dir runs/mi-bench --kind generalizing --index 0

``--out FILE`` (optional) receives a copy of the run's ``train.json`` (the suite runner's per-cell output).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from encoder_audit.attacks.membership.targets import RECIPES, train_encoder
from encoder_audit.data import SplitManifest, create_dataset, make_splits
from encoder_audit.io import atomic_write_json
from encoder_audit.models import save_encoder

SNAPSHOTS = {"overfit": (100, 250, 500, 1000, 2000), "generalizing": (1, 2, 3)}
N_MODELS = {"overfit": 3, "generalizing": 3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("runs/mi-bench"), help="splits and models of the benchmark")
    ap.add_argument("--out", type=Path, default=None, help="copy of train.json / splits receipt")
    ap.add_argument("--make-splits", action="store_true")
    ap.add_argument("--kind", choices=sorted(SNAPSHOTS), default="overfit")
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = create_dataset("fashion-mnist", "train")
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.make_splits:
        sizes: dict[str, int] = {}
        for kind, n in N_MODELS.items():
            r = RECIPES[kind]
            for k in range(n):
                sizes[f"{kind}_members_{k}"] = r.members
                sizes[f"{kind}_nonmembers_{k}"] = min(r.members, 500)
        sizes["reference"] = 300
        make_splits(ds, sizes, seed=2026).save(args.dir / "splits.json")
        print(f"splits: {args.dir / 'splits.json'} ({sum(sizes.values())} images)")
        if args.out is not None:
            atomic_write_json(args.out, {"splits": str(args.dir / "splits.json"), "sizes": sizes})
        return
    manifest = SplitManifest.load(args.dir / "splits.json")
    members = manifest.select(ds, f"{args.kind}_members_{args.index}")
    spec = RECIPES[args.kind]
    t0 = time.perf_counter()
    folder = args.dir / f"{args.kind}_{args.index}"
    folder.mkdir(exist_ok=True)

    def on_snapshot(epoch: int, net: torch.nn.Module) -> None:
        save_encoder(folder / f"epoch{epoch:04d}.safetensors", net, training={"recipe": spec.__dict__, "epoch": epoch})
        print(f"{args.kind} {args.index}: epoch {epoch} at {time.perf_counter() - t0:.0f}s", flush=True)

    train_encoder(members, spec, seed=1000 + args.index, snapshots=SNAPSHOTS[args.kind], on_snapshot=on_snapshot)
    receipt = {
        "seconds": time.perf_counter() - t0,
        "recipe": spec.__dict__,
        "snapshots": list(SNAPSHOTS[args.kind]),
        "members": len(members),
    }
    atomic_write_json(folder / "train.json", receipt)
    if args.out is not None:
        atomic_write_json(args.out, receipt)
    print(json.dumps({"done": str(folder), "seconds": round(time.perf_counter() - t0)}))


if __name__ == "__main__":
    main()
