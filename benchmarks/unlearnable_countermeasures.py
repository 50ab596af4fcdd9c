"""Protection x countermeasure table (trainer with true labels, clean test accuracy final and peak).

    python benchmarks/unlearnable_countermeasures.py --surrogate /tmp/surrogate_uc/encoder.safetensors \
        --out docs/benchmarks/unlearnable_countermeasures.json \
        [--methods clean uc em-c] [--countermeasures none jpeg:quality=10 blur:sigma=1 cutout mixup cutmix pgd-at]

Uses the same Fashion-MNIST subset, seeds and protection settings as ``unlearnable_label_agnostic.py``
and its cache of protected sets (crafting them if missing). ``grayscale`` is the identity on 1-channel
Fashion-MNIST and is left out by default.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from unlearnable_label_agnostic import load_data, protect_cached


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--surrogate", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/unlearnable_cache"))
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--methods", nargs="+", default=["clean", "uc", "em-c"])
    ap.add_argument(
        "--countermeasures",
        nargs="+",
        default=["jpeg:quality=10", "blur:sigma=1", "cutout", "mixup", "cutmix", "pgd-at"],
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--wait", action="store_true", help="wait for the other benchmark to cache a protection")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("encoder_audit.train.loop").setLevel(logging.WARNING)

    from encoder_audit.attacks.unlearnable.countermeasures import parse_countermeasure, train_with_countermeasure
    from encoder_audit.attacks.unlearnable.evaluation import TrainerConfig, make_labelings
    from encoder_audit.io import atomic_write_json
    from encoder_audit.victim import load_encoder

    args.cache.mkdir(parents=True, exist_ok=True)
    train, test = load_data(args.train, args.test, args.seed)
    surrogate = load_encoder(args.surrogate)
    cfg = TrainerConfig(epochs=args.epochs, batch_size=100, seed=args.seed)
    (labeling,) = make_labelings(train, test, ["true"], config=cfg)
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results["config"] = {"train": args.train, "test": args.test, "seed": args.seed, "trainer": vars(cfg)}
    table = results.setdefault("table", {})
    for cm_spec in args.countermeasures:
        cm = parse_countermeasure(cm_spec, channels=train.info.channels)
        for name in args.methods:
            if cm.name in table.get(name, {}):
                continue
            while args.wait and name != "clean" and not (args.cache / f"{name}-s{args.seed}.json").is_file():
                time.sleep(20)
            ds = train if name == "clean" else protect_cached(name, train, surrogate, None, args.cache, args.seed)[0]
            t0 = time.perf_counter()
            r = train_with_countermeasure(ds, test, labeling, cm, cfg)
            table.setdefault(name, {})[cm.name] = r
            atomic_write_json(args.out, results)
            logging.info(
                "%s + %s: final %.3f peak %.3f (%.0fs)", name, cm.name, r["final"], r["peak"], time.perf_counter() - t0
            )


if __name__ == "__main__":
    main()
