"""Unlearnable Clusters whose clusters carry structure: surrogate, K rule, purity, and a trainer with power.

One step per call, each bounded (minutes on one core) and cached under ``--cache``, so a suite can run
them one at a time::

    python benchmarks/unlearnable_structure.py --step surrogate                      # train + K sweep
    python benchmarks/unlearnable_structure.py --step craft --seed S                 # UC on 5,000 images
    python benchmarks/unlearnable_structure.py --step train --seed S --protection uc --labeling true

Setting (Fashion-MNIST, one seeded permutation of the 60,000 training images):

- **surrogate**: a supervised ``cnn-small`` trained on 20,000 labelled images (``perm[5000:25000]``),
  8 epochs, Adam 2e-3, batch 128: the paper's cross-dataset setting (its surrogate is a supervised
  ImageNet ResNet-50 trained on other labelled data than the images it protects);
- **K rule**: K-means K in {10, 20, 50, 100} on 5,000 held-out labelled images (``perm[40000:45000]``),
  the K with the highest AMI (:func:`encoder_audit.attacks.unlearnable.clustering.choose_k`); ``--k``
  crafts another K (``uc-kK``) for the K ablation;
- **protected images**: 5,000 per seed, disjoint from the surrogate's and the held-out images
  (seed 0: ``perm[:5000]``; seeds 1-3: ``perm[25000 + 5000 (s-1) : 25000 + 5000 s]``; seeds 4-6:
  ``perm[45000 + 5000 (s-4) : 45000 + 5000 (s-3)]``);
- **UC**: eps 16/255 L-inf, the chosen K, generators trained on cluster members (the paper's variant),
  20 epochs, batch 32, Adam 5e-3, ngf 16, 2 residual blocks, seed s; ``uc-oracle`` uses the classes as
  clusters; ``random`` is uniform noise at the same budget;
- **trainer**: a fresh ``cnn-small`` (crop + flip), Adam 2e-3 cosine, batch 128, ``--epochs`` epochs,
  seed s, scored on the first 2,000 clean test images after every epoch.

``--step train`` prints one JSON line and writes it to ``--out``; ``--step report`` turns those files
into the tables of docs/benchmarks/unlearnable.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from encoder_audit.report.aggregate import summarize

EPS = 16 / 255
K_CANDIDATES = (10, 20, 50, 100)
UC = {"epochs": 20, "batch_size": 32, "lr": 5e-3, "ngf": 16, "n_blocks": 2, "train_on": "members", "kmeans_init": 2}


def _splits() -> tuple[Any, Any, torch.Tensor]:
    from encoder_audit.data import create_dataset

    full = create_dataset("fashion-mnist", "train")
    test = create_dataset("fashion-mnist", "test")
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(0))
    return full, test.subset(torch.arange(2000)), perm


def _protected(full: Any, perm: torch.Tensor, seed: int) -> Any:
    if not 0 <= seed <= 6:
        raise ValueError("seeds 0-6 only (disjoint from the surrogate's and the held-out images)")
    if seed == 0:
        rows = perm[:5000]
    elif seed <= 3:
        rows = perm[25000 + 5000 * (seed - 1) : 25000 + 5000 * seed]
    else:  # after the held-out perm[40000:45000]
        rows = perm[45000 + 5000 * (seed - 4) : 45000 + 5000 * (seed - 3)]
    return full.subset(rows.sort().values)


def _surrogate(full: Any, perm: torch.Tensor, cache: Path) -> Any:
    from encoder_audit.models.base import create_encoder
    from encoder_audit.train import TrainConfig, create_objective, fit
    from encoder_audit.train.supervised import SupervisedConfig
    from encoder_audit.victim import LocalEncoder

    s = full.subset(perm[5000:25000].sort().values)
    torch.manual_seed(0)
    net = create_encoder("cnn-small", in_channels=1, image_size=28, mean=s.info.mean, std=s.info.std)
    path = cache / "surrogate.pt"
    if path.is_file():
        net.load_state_dict(torch.load(path, weights_only=True))
    else:
        t0 = time.perf_counter()
        obj = create_objective("supervised", net, SupervisedConfig(num_classes=10))
        fit(obj, s, TrainConfig(epochs=8, batch_size=128, lr=2e-3, seed=0, checkpoint_every=0, device="cpu"))
        torch.save(net.state_dict(), path)
        (cache / "surrogate.json").write_text(json.dumps({"train_seconds": round(time.perf_counter() - t0, 1)}))
    net.eval()
    return LocalEncoder(net)


def step_surrogate(cache: Path) -> dict[str, Any]:
    from encoder_audit.attacks.unlearnable.clustering import choose_k, embed_dataset, sweep_k

    full, _, perm = _splits()
    enc = _surrogate(full, perm, cache)
    held = full.subset(perm[40000:45000].sort().values)
    sweep = sweep_k(embed_dataset(enc, held), held.labels, K_CANDIDATES, seed=0, n_init=2)
    out = {
        "sweep": [{"k": c.k, "purity": c.purity, "ami": c.ami} for c in sweep],
        "chosen_k": choose_k(sweep, 0.01),
        **json.loads((cache / "surrogate.json").read_text()),
    }
    (cache / "k_choice.json").write_text(json.dumps(out, indent=1))
    return out


def step_craft(cache: Path, seed: int, only: list[str] | None = None, k: int | None = None) -> dict[str, Any]:
    from encoder_audit.attacks.unlearnable import create_protection
    from encoder_audit.attacks.unlearnable.clustering import agreement, purity
    from encoder_audit.attacks.unlearnable.perceptibility import perceptibility
    from encoder_audit.data.base import ImageDataset

    full, _, perm = _splits()
    enc = _surrogate(full, perm, cache)
    uc_name = "uc" if k is None else f"uc-k{k}"  # --k overrides the rule's K (the K ablation)
    k = k or json.loads((cache / "k_choice.json").read_text())["chosen_k"]
    train = _protected(full, perm, seed)
    records = {}
    for name, cfg, sur in (
        (uc_name, {**UC, "clusters": k, "seed": seed}, enc),
        ("uc-oracle", {**UC, "clusters": 10, "seed": seed, "cluster_source": "labels"}, enc),
        ("random", {"eps": EPS, "seed": seed}, None),
    ):
        f, meta = cache / f"{name}-s{seed}.pt", cache / f"{name}-s{seed}.json"
        if (only and name.split("-k")[0] not in only) or (f.is_file() and meta.is_file()):
            continue
        method = "random" if name == "random" else "uc"
        if f.is_file():  # images crafted earlier without their record: describe them again (deterministic)
            images, seconds = torch.load(f, weights_only=True), None
            groups, check = _describe_uc(enc, train, images, cfg) if method == "uc" else (None, {})
        else:
            prot = create_protection(method, cfg, surrogate=sur).protect(train)
            images, seconds, groups = prot.dataset.images, round(prot.seconds, 1), prot.groups
            check = {k_: prot.meta[k_] for k_ in ("target_success", "stay_own") if k_ in prot.meta}
            torch.save(images, f)
        pc = perceptibility(train, ImageDataset(images, train.labels, train.info))
        rec: dict[str, Any] = {"craft_seconds": seconds, "linf": pc["linf_levels"], "psnr": pc["psnr_db"]}
        if groups is not None:
            rec |= {
                "clusters": int(groups.max()) + 1,
                "purity": purity(groups, train.labels),
                "ami": agreement(groups, train.labels),
                **check,
            }
        meta.write_text(json.dumps(rec, indent=1))
        records[name] = rec
    return records


def _describe_uc(enc: Any, train: Any, images: torch.Tensor, cfg: dict[str, Any]) -> tuple[Any, dict[str, float]]:
    """The clusters UC used (its seeded K-means, recomputed) and the surrogate-space check of ``images``."""
    from encoder_audit.attacks.unlearnable import UCConfig
    from encoder_audit.attacks.unlearnable.clustering import cluster_features, embed_dataset
    from encoder_audit.attacks.unlearnable.uc import UCFit, surrogate_space_check
    from encoder_audit.runs import derive_seed

    c = UCConfig(**cfg)
    if c.cluster_source == "labels":
        groups = train.labels.clone()
        feats = embed_dataset(enc, train)
        centers = torch.stack([feats[groups == i].mean(0) for i in range(c.clusters)])
        from encoder_audit.attacks.unlearnable.clustering import Clustering

        clustering = Clustering(groups, centers, 0.0)
    else:
        feats = embed_dataset(enc, train)
        clustering = cluster_features(feats, c.clusters, seed=derive_seed(c.seed, "kmeans"), n_init=c.kmeans_init)
    fit = UCFit(torch.zeros(c.clusters, 1, 1, 1), clustering, c.targets(), c.eps, c.norm)
    return clustering.assignment, surrogate_space_check(enc, images, train.info, fit)


def step_train(
    cache: Path, seed: int, protection: str, labeling: str, epochs: int, countermeasure: str = "none"
) -> dict[str, Any]:
    from encoder_audit.attacks.unlearnable.countermeasures import parse_countermeasure, train_with_countermeasure
    from encoder_audit.attacks.unlearnable.evaluation import (
        TrainerConfig,
        chance_level,
        make_labelings,
        train_classifier,
        train_ssl_probe,
    )
    from encoder_audit.data.base import ImageDataset

    full, test, perm = _splits()
    train = _protected(full, perm, seed)
    if protection == "clean":
        ds = train
    else:
        images = torch.load(cache / f"{protection}-s{seed}.pt", weights_only=True)
        ds = ImageDataset(images, train.labels, train.info, train.split, train.indices)
    lab = make_labelings(train, test, (labeling,))[0]
    cfg = TrainerConfig(epochs=epochs, batch_size=128, seed=seed, ssl_epochs=epochs)
    if labeling == "ssl":  # SimCLR on the protected images, then a linear probe with the true labels
        if countermeasure != "none":
            raise ValueError("countermeasures apply to the supervised trainer, not to --labeling ssl")
        r = train_ssl_probe(ds, test, cfg).to_dict()
    elif countermeasure == "none":
        assert lab.train is not None
        r = train_classifier(ds, lab.train, test, lab.test, lab.num_classes, cfg).to_dict()
    else:
        assert lab.train is not None
        cm = parse_countermeasure(countermeasure, channels=train.info.channels)
        r = train_with_countermeasure(ds, test, lab, cm, cfg)
    return {
        "seed": seed,
        "protection": protection,
        "labeling": labeling,
        "countermeasure": countermeasure,
        "classes": lab.num_classes,
        "chance": chance_level(lab.test),
        "final": r["final"],
        "peak": r["peak"],
        "history": r["history"],
        "seconds": r["seconds"],
        "epochs": epochs,
    }


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    s = summarize(values)
    return f"{100 * s.mean:.1f} ± {100 * (s.std or 0.0):.1f}"


def step_report(files: list[Path], cache: Path) -> str:
    every = [json.loads(f.read_text()) for f in files if f.is_file()]
    rows = [r for r in every if r.get("countermeasure", "none") == "none"]
    cms = [r for r in every if r.get("countermeasure", "none") != "none"]
    labelings = [lab for lab in ("true", "coarse", "pseudo", "fine", "ssl") if any(r["labeling"] == lab for r in rows)]
    known = ["clean", "random", "uc", "uc-oracle"]
    known += sorted({r["protection"] for r in rows} - set(known))
    protections = [p for p in known if any(r["protection"] == p for r in rows)]
    lines = ["| training set | seeds | " + " | ".join(labelings) + " |", "|---|---|" + "---|" * len(labelings)]
    for p in protections:
        cells, seeds = [], set()
        for lab in labelings:
            vals = [r["final"] for r in rows if r["protection"] == p and r["labeling"] == lab]
            peaks = [r["peak"] for r in rows if r["protection"] == p and r["labeling"] == lab]
            seeds |= {r["seed"] for r in rows if r["protection"] == p and r["labeling"] == lab}
            cells.append(f"{_mean_std(vals)} ({100 * statistics.mean(peaks):.1f})" if vals else "–")
        lines.append(f"| {p} | {len(seeds)} | " + " | ".join(cells) + " |")
    drops = ["", "| training set | labeling | seeds | clean - protected, points (mean ± std) |", "|---|---|---|---|"]
    for p in protections:
        if p == "clean":
            continue
        for lab in labelings:
            diffs = []
            for sd in sorted({r["seed"] for r in rows}):
                c = [
                    r["final"] for r in rows if r["protection"] == "clean" and r["labeling"] == lab and r["seed"] == sd
                ]
                u = [r["final"] for r in rows if r["protection"] == p and r["labeling"] == lab and r["seed"] == sd]
                if c and u:
                    diffs.append(c[0] - u[0])
            if diffs:
                drops.append(f"| {p} | {lab} | {len(diffs)} | {_mean_std(diffs)} |")
    crafted = ["", "| seed | protection | K | purity | AMI | reach target | stay own | craft s |", "|---" * 8 + "|"]
    for f in sorted(cache.glob("*-s*.json")):
        rec = json.loads(f.read_text())
        if "purity" in rec:
            name, seed = f.stem.rsplit("-s", 1)
            crafted.append(
                f"| {seed} | {name} | {rec['clusters']} | {100 * rec['purity']:.1f}% | {rec['ami']:.3f} | "
                f"{100 * rec['target_success']:.1f}% | {100 * rec['stay_own']:.1f}% | "
                + ("–" if rec["craft_seconds"] is None else f"{rec['craft_seconds']:.0f}")
                + " |"
            )
    counter = []
    if cms:
        counter = [
            "",
            "| countermeasure | labeling | seeds | clean trainer | UC trainer | clean - UC, points | clean cost, points"
            " |",
            "|---|---|---|---|---|---|---|",
        ]
        for cm in sorted({r["countermeasure"] for r in cms}):
            for lab in labelings:
                seeds = sorted({r["seed"] for r in cms if r["countermeasure"] == cm and r["labeling"] == lab})
                pick = {
                    (r["protection"], r["seed"]): r["final"]
                    for r in cms
                    if r["countermeasure"] == cm and r["labeling"] == lab
                }
                base = {(r["seed"]): r["final"] for r in rows if r["protection"] == "clean" and r["labeling"] == lab}
                both = [sd for sd in seeds if ("clean", sd) in pick and ("uc-k10", sd) in pick]
                if not both:
                    continue
                c = [pick[("clean", sd)] for sd in both]
                u = [pick[("uc-k10", sd)] for sd in both]
                cost = [base[sd] - pick[("clean", sd)] for sd in both if sd in base]
                counter.append(
                    f"| {cm} | {lab} | {len(both)} | {_mean_std(c)} | {_mean_std(u)} | "
                    f"{_mean_std([a - b for a, b in zip(c, u)])} | {_mean_std(cost) if cost else '–'} |"
                )
    return "\n".join(lines + drops + crafted + counter)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--step", choices=["surrogate", "craft", "train", "report"], required=True)
    ap.add_argument("--cache", type=Path, default=Path("runs/unlearnable-structure"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--protection", default="uc", help="clean, uc, uc-oracle, random or uc-kK (a K ablation)")
    ap.add_argument("--k", type=int, default=None, help="craft: K instead of the rule's (saved as uc-kK)")
    ap.add_argument("--labeling", choices=["true", "coarse", "pseudo", "fine", "ssl"], default="true")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument(
        "--countermeasure", default="none", help="train: the trainer's countermeasure (jpeg:quality=10, mixup, ...)"
    )
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--results", type=Path, nargs="*", default=[])
    ap.add_argument("--only", nargs="*", default=None, help="craft only these protections (uc, uc-oracle, random)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("encoder_audit.train.loop").setLevel(logging.WARNING)
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.step == "surrogate":
        out: Any = step_surrogate(args.cache)
    elif args.step == "craft":
        out = step_craft(args.cache, args.seed, args.only, args.k)
    elif args.step == "train":
        out = step_train(args.cache, args.seed, args.protection, args.labeling, args.epochs, args.countermeasure)
    else:
        files = [f for p in args.results for f in (sorted(p.rglob("*.json")) if p.is_dir() else [p])]
        print(step_report(files, args.cache))
        return
    text = json.dumps(out)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
