"""Label-agnostic protection table: clean / random / LSP / EM / TAP / UC (/ UC-CLIP) x trainer labelings.

    python benchmarks/unlearnable_label_agnostic.py --surrogate /tmp/surrogate_uc/encoder.safetensors \
        --out docs/benchmarks/unlearnable_results.json [--train 1000 --test 1000 --seed 0] \
        [--methods clean random lsp lsp-agn em-c em-c-agn em-s tap tap-agn uc] [--labelings true coarse pseudo]
        [--ssl-methods clean uc em-s lsp] [--clip CLIP_CHECKPOINT]

Fashion-MNIST, a seeded subset of ``--train`` training and ``--test`` test images. Each protection is crafted
once (its wall time recorded), its perceptibility measured on PNG-written files, and the protected set is
cached as safetensors in ``--cache`` for ``unlearnable_countermeasures.py``. A fresh cnn-small trainer
(``encoder_audit.train`` supervised objective) is trained on every protected set under every labeling;
the clean test accuracy after every epoch is recorded (final and peak).

``-agn`` methods are crafted in label-agnostic mode: with K-means pseudo-labels (K = 10) of the surrogate
instead of the true labels. All L-inf methods use eps = 16/255 (the UC default; EM/TAP papers use 8/255).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

EPS = 16 / 255
UC_QUICK = {"epochs": 40, "batch_size": 32, "lr": 5e-3, "ngf": 16, "n_blocks": 2, "train_on": "members"}

METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "random": ("random", {"eps": EPS}),
    "lsp": ("lsp", {}),
    "lsp-agn": ("lsp", {"label_source": "clusters"}),
    "em-s": ("em", {"mode": "sample", "eps": EPS, "step_size": 2 / 255, "pgd_steps": 3, "max_rounds": 5}),
    "em-c": (
        "em",
        {"mode": "class", "eps": EPS, "step_size": 2 / 255, "pgd_steps": 1, "max_rounds": 10, "stop_error": 0.1},
    ),
    "em-c-agn": (
        "em",
        {
            "mode": "class",
            "eps": EPS,
            "step_size": 2 / 255,
            "pgd_steps": 1,
            "max_rounds": 10,
            "stop_error": 0.1,
            "label_source": "clusters",
        },
    ),
    "tap": ("tap", {"eps": EPS, "steps": 10, "shadow_epochs": 4}),
    "tap-agn": ("tap", {"eps": EPS, "steps": 10, "shadow_epochs": 4, "label_source": "clusters"}),
    "uc": ("uc", UC_QUICK),
    "uc-all": ("uc", {**UC_QUICK, "train_on": "all", "epochs": 2}),
    "uc-clip": ("uc", {**UC_QUICK, "epochs": 15}),
}


def load_data(n_train: int, n_test: int, seed: int) -> tuple[Any, Any]:
    from encoder_audit.data import create_dataset

    full = create_dataset("fashion-mnist", "train")
    test = create_dataset("fashion-mnist", "test")
    g = torch.Generator().manual_seed(seed)
    tr = full.subset(torch.randperm(len(full), generator=g)[:n_train].sort().values)
    te = test.subset(torch.randperm(len(test), generator=g)[:n_test].sort().values)
    return tr, te


def protect_cached(name: str, train: Any, surrogate: Any, clip: Any, cache: Path, seed: int) -> tuple[Any, dict]:
    """Protected dataset for ``name`` (from the cache if present) and its record."""
    from safetensors.torch import load_file, save_file

    from encoder_audit.attacks.unlearnable import create_protection
    from encoder_audit.attacks.unlearnable.perceptibility import perceptibility
    from encoder_audit.data.base import ImageDataset
    from encoder_audit.io import atomic_write, atomic_write_json

    f, meta_f = cache / f"{name}-s{seed}.safetensors", cache / f"{name}-s{seed}.json"
    if f.is_file() and meta_f.is_file():
        images = load_file(str(f))["images"]
        return ImageDataset(images, train.labels, train.info, train.split, train.indices), json.loads(
            meta_f.read_text()
        )
    method, cfg = METHODS[name]
    sur = clip if name == "uc-clip" else surrogate
    prot = create_protection(method, {**cfg, "seed": seed}, surrogate=sur).protect(train)
    record = prot.summary()
    record["perceptibility"] = perceptibility(train, prot.dataset)
    if prot.groups is not None:
        from encoder_audit.attacks.unlearnable.clustering import agreement, purity

        record["group_label_ami"] = round(agreement(prot.groups, train.labels), 3)
        record["group_label_purity"] = round(purity(prot.groups, train.labels), 4)
    atomic_write(f, lambda tmp: save_file({"images": prot.dataset.images.contiguous()}, str(tmp)))
    atomic_write_json(meta_f, record)
    return prot.dataset, record


# The two parts of the published table: every protection under every labeling (SSL for clean and UC),
# and the label-based baselines crafted with surrogate pseudo-labels, scored with the true labels.
PRESETS = {
    "main": (
        ["clean", "random", "lsp", "em-c", "tap", "uc", "uc-clip"],
        ["true", "coarse", "pseudo"],
        ["clean", "uc"],
    ),
    "agnostic": (["lsp-agn", "em-c-agn", "tap-agn"], ["true"], []),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--surrogate", type=Path, required=True)
    ap.add_argument("--clip", type=Path, default=None, help="CLIP checkpoint for uc-clip")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/unlearnable_cache"))
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument(
        "--methods",
        nargs="+",
        default=["clean", "uc", "em-c", "random", "lsp", "em-s", "tap", "lsp-agn", "em-c-agn", "tap-agn"],
    )
    ap.add_argument("--labelings", nargs="+", default=["true", "coarse", "pseudo"])
    ap.add_argument("--ssl-methods", nargs="*", default=["clean", "uc", "em-c", "lsp"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="methods / labelings / SSL methods of one part of the table (overrides those three options)",
    )
    args = ap.parse_args()
    if args.preset is not None:
        args.methods, args.labelings, args.ssl_methods = PRESETS[args.preset]
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("encoder_audit.train.loop").setLevel(logging.WARNING)

    from encoder_audit.attacks.unlearnable.evaluation import TrainerConfig, evaluate_protection, make_labelings
    from encoder_audit.io import atomic_write_json
    from encoder_audit.victim import load_encoder

    args.cache.mkdir(parents=True, exist_ok=True)
    train, test = load_data(args.train, args.test, args.seed)
    surrogate = load_encoder(args.surrogate)
    clip = None
    if args.clip is not None:
        from encoder_audit.models.clip import load_clip

        clip = load_clip(args.clip)[0].image_encoder()
    cfg = TrainerConfig(epochs=args.epochs, ssl_epochs=args.epochs, batch_size=100, ssl_batch_size=100, seed=args.seed)
    labelings = make_labelings(train, test, [*args.labelings, "ssl"], config=cfg)
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results.setdefault("config", {})
    results["config"].update(
        {
            "train": args.train,
            "test": args.test,
            "seed": args.seed,
            "trainer": vars(cfg),
            "labelings": {lab.name: [lab.num_classes, lab.note] for lab in labelings},
        }
    )
    results.setdefault("methods", {})
    for name in args.methods:
        t0 = time.perf_counter()
        if name == "clean":
            ds, record = train, {"seconds": 0.0}
        else:
            ds, record = protect_cached(name, train, surrogate, clip, args.cache, args.seed)
        wanted = [lab for lab in labelings if lab.name != "ssl" or name in args.ssl_methods]
        entry = results["methods"].setdefault(name, {"trainer": {}})
        entry["protection"] = record
        for lab in wanted:
            if lab.name not in entry["trainer"]:
                entry["trainer"].update(evaluate_protection(ds, test, [lab], cfg))
                atomic_write_json(args.out, results)
        atomic_write_json(args.out, results)
        logging.info(
            "%s done in %.0fs: %s",
            name,
            time.perf_counter() - t0,
            {k: (v["final"], v["peak"]) for k, v in entry["trainer"].items()},
        )


if __name__ == "__main__":
    main()
