"""The data-protection audit at quick scale: can a trainer still learn from UC-protected data?

:func:`run_protection_audit` protects a subset of the training data with Unlearnable Clusters (the given
surrogate), lets a fresh trainer learn from clean and from protected copies under two labelings (the
true labels and re-clustered pseudo-labels with a different number of classes), adds one countermeasure
row (the trainer blurs the images), and measures perceptibility on PNG-written files.

Verdict (risk *for the data owner* that the protected data is still learnable): with
``gap = clean - protected`` and ``room = clean - chance`` per labeling, ``low`` if every labeling loses
at least half its room (final accuracy), ``high`` if some labeling loses less than 15 %, else ``medium``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ...data.base import ImageDataset
from ...victim import Encoder
from .countermeasures import parse_countermeasure, train_with_countermeasure
from .evaluation import TrainerConfig, chance_level, evaluate_protection, make_labelings
from .perceptibility import perceptibility
from .uc import UCConfig, UnlearnableClusters

__all__ = ["AUDIT_PRESETS", "run_protection_audit"]

log = logging.getLogger(__name__)

# Quick: about 2 minutes on 2 idle CPU cores. Paper: the official UC settings and a longer trainer.
AUDIT_PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "train": 1000,
        "test": 1000,
        "uc": {"epochs": 40, "batch_size": 32, "lr": 5e-3, "ngf": 16, "n_blocks": 2, "train_on": "members"},
        "trainer": {"epochs": 6, "batch_size": 64},
        "countermeasure": "blur:sigma=1",
    },
    "paper": {
        "train": None,
        "test": None,
        "uc": {},
        "trainer": {"epochs": 90, "batch_size": 512, "optimizer": "sgd", "lr": 0.1},
        "countermeasure": "blur:sigma=1",
    },
}


def _subset(ds: ImageDataset, n: int | None, seed: int) -> ImageDataset:
    if n is None or n >= len(ds):
        return ds
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return ds.subset(idx)


def _figure(results: dict[str, dict[str, dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    labelings = list(next(iter(results.values())))
    width = 0.8 / len(results)
    for j, (name, res) in enumerate(results.items()):
        xs = [i + j * width for i in range(len(labelings))]
        ax.bar(xs, [res[lab]["final"] for lab in labelings], width, label=f"{name} (final)")
        ax.scatter(xs, [res[lab]["peak"] for lab in labelings], marker="_", s=200, color="black")
    ax.set_xticks([i + width * (len(results) - 1) / 2 for i in range(len(labelings))], labelings)
    ax.set_ylabel("clean test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("Trainer on clean vs UC-protected data (bar final, tick peak)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def run_protection_audit(
    train_data: ImageDataset,
    test_data: ImageDataset,
    out_dir: Path,
    *,
    surrogate: Encoder,
    preset: str = "quick",
    seed: int = 0,
) -> dict[str, Any]:
    """UC protection vs a fresh trainer under two labelings, one countermeasure, perceptibility.

    Args:
        train_data: labeled training images (the data owner's images; a subset is used at quick scale).
        test_data: labeled clean test images.
        out_dir: where the PNG figure is written.
        surrogate: the protector's encoder (must be differentiable: EncoderNet / LocalEncoder / CLIP tower).
        preset: ``quick`` (about 2 minutes on 2 CPU cores) or ``paper``.
        seed: seed of subsets, UC and the trainer.

    Returns:
        ``{"headline", "verdict", "tables", "figures", "costs", "config", "caveats"}`` (JSON-serialisable).
    """
    if preset not in AUDIT_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(AUDIT_PRESETS)}")
    if train_data.labels is None or test_data.labels is None:
        raise ValueError("the protection audit needs labeled train and test data")
    p = AUDIT_PRESETS[preset]
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    train = _subset(train_data, p["train"], seed)
    test = _subset(test_data, p["test"], seed + 1)
    uc_cfg = replace(UCConfig(seed=seed), **p["uc"])
    trainer = replace(TrainerConfig(seed=seed), **p["trainer"])

    protected = UnlearnableClusters(uc_cfg, surrogate=surrogate).protect(train)
    labelings = make_labelings(train, test, ("true", "pseudo"), config=trainer)
    results = {
        "clean": evaluate_protection(train, test, labelings, trainer),
        "UC": evaluate_protection(protected.dataset, test, labelings, trainer),
    }
    cm = parse_countermeasure(p["countermeasure"], channels=train.info.channels)
    cm_row = {
        name: train_with_countermeasure(ds, test, labelings[0], cm, trainer)
        for name, ds in (("clean", train), ("UC", protected.dataset))
    }
    percept = perceptibility(train, protected.dataset)

    rows, drops = [], []
    for lab in labelings:
        c, u = results["clean"][lab.name], results["UC"][lab.name]
        chance = chance_level(lab.test)
        room = max(c["final"] - chance, 1e-6)
        drops.append((c["final"] - u["final"]) / room)
        rows.append(
            [lab.name, lab.num_classes, c["final"], c["peak"], u["final"], u["peak"], round(chance, 3), lab.note]
        )
    verdict = "low" if min(drops) >= 0.5 else ("high" if min(drops) < 0.15 else "medium")
    figure = out_dir / "unlearnable_audit.png"
    _figure(results, figure)
    seconds = time.perf_counter() - t0
    variant = "paper" if uc_cfg.train_on == "members" else "official code"
    true_c, true_u = results["clean"]["true"]["final"], results["UC"]["true"]["final"]
    return {
        "headline": (
            f"Unlearnable Clusters (eps {uc_cfg.eps * 255:.0f}/255) cut a fresh trainer's clean test accuracy from "
            f"{true_c:.1%} to {true_u:.1%} with true labels and from {results['clean']['pseudo']['final']:.1%} to "
            f"{results['UC']['pseudo']['final']:.1%} with {labelings[1].num_classes}-class pseudo-labels."
        ),
        "verdict": verdict,
        "tables": [
            {
                "title": "Trainer clean test accuracy: clean vs UC-protected training data",
                "columns": [
                    "labeling",
                    "classes",
                    "clean final",
                    "clean peak",
                    "UC final",
                    "UC peak",
                    "chance",
                    "labeling note",
                ],
                "rows": rows,
                "note": "lower UC accuracy = better protection; peak = best epoch (an early-stopping trainer)",
            },
            {
                "title": f"Countermeasure: trainer applies {cm.name} (true labels)",
                "columns": ["training data", "final", "peak"],
                "rows": [[k, v["final"], v["peak"]] for k, v in cm_row.items()],
                "note": "a countermeasure that restores UC accuracy to near clean breaks the protection",
            },
            {
                "title": "Perceptibility of UC (measured on PNG-written files)",
                "columns": ["linf (x/255)", "l2 mean", "psnr dB", "ssim mean"],
                "rows": [[percept["linf_levels"], percept["l2_mean"], percept["psnr_db"], percept["ssim_mean"]]],
                "note": f"budget {uc_cfg.eps * 255:.0f}/255 L-inf",
            },
        ],
        "figures": [{"path": str(figure), "caption": "Clean test accuracy of a trainer on clean vs UC data"}],
        "costs": {
            "query_images": 0,
            "api_calls": 0,
            "wall_seconds": round(seconds, 1),
            "protection_seconds": round(protected.seconds, 1),
        },
        "config": {
            "preset": preset,
            "seed": seed,
            "train_images": len(train),
            "test_images": len(test),
            "uc": {k: v for k, v in protected.config.items()},
            "trainer": {k: getattr(trainer, k) for k in trainer.__dataclass_fields__},
            "countermeasure": cm.name,
            "surrogate": repr(surrogate),
        },
        "caveats": [
            f"UC generators trained on {uc_cfg.train_on} images ({variant} variant), "
            f"{uc_cfg.epochs} epochs (official: 50), reduced generator width for CPU.",
            "One seed, small subsets: differences of a few points are within run-to-run noise.",
            "The surrogate is used white-box by the protector (it is the protector's own model, not a victim).",
            *([cm.note] if cm.note else []),
        ],
    }
