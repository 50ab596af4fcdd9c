"""Countermeasure: early stopping. Attack AUC / accuracy vs. the encoder's downstream accuracy, per epoch.

EncoderMI (Liu et al., CCS 2021, "Countermeasures: preventing overfitting via early stopping"):
stopping pre-training earlier lowers EncoderMI's accuracy but also the accuracy of downstream
classifiers built on the encoder, a trade-off (the paper's Fig. 5). We train the target once and keep
snapshots at several epochs; the inferrer's shadow is trained with the same recipe and snapshotted at
the same epochs (it knows the training algorithm, so it can mirror the defender's stopping point).
Each snapshot gets the attack metrics and kNN / linear-probe accuracy on a labelled downstream task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...data.base import ImageDataset
from ...evaluate import EvalConfig, evaluate_encoder
from ...io import atomic_write
from ...runs import derive_seed
from ...victim import LocalEncoder
from .engine import run_attacks
from .features import FeatureConfig
from .shadow import ShadowConfig, train_shadow
from .targets import TargetRecipe, train_encoder

log = logging.getLogger(__name__)

__all__ = ["early_stopping_sweep", "plot_tradeoff"]


def early_stopping_sweep(
    members: ImageDataset,
    nonmembers: ImageDataset,
    shadow_data: ImageDataset,
    recipe: TargetRecipe,
    epochs: Sequence[int],
    downstream_train: ImageDataset,
    downstream_test: ImageDataset,
    *,
    attacks: Sequence[str] = ("encodermi-t", "encodermi-v"),
    features: FeatureConfig | None = None,
    attack_params: dict[str, dict[str, Any]] | None = None,
    reference: int = 0,
    eval_config: EvalConfig | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per checkpoint epoch: attack metrics and downstream kNN / linear accuracy.

    Args:
        members: the target's pre-training set (trained on here, with ``recipe``).
        nonmembers: same-distribution images it never sees.
        shadow_data: the inferrer's images for the mirrored shadow.
        recipe: target (and shadow) recipe; ``recipe.epochs`` must be ``max(epochs)``.
        epochs: checkpoint epochs.
        downstream_train / downstream_test: labelled task for kNN and linear probes.
    """
    epochs = sorted(set(int(e) for e in epochs))
    if not epochs or epochs[-1] != recipe.epochs:
        raise ValueError(f"the last checkpoint must be recipe.epochs={recipe.epochs}, got {epochs}")
    t0 = time.perf_counter()
    target_snaps = train_encoder(members, recipe, seed=derive_seed(seed, "target"), snapshots=epochs).snapshots
    t1 = time.perf_counter()
    _, shadow_snaps = train_shadow(
        shadow_data, ShadowConfig(recipe=recipe, reference=reference), seed=seed, snapshots=tuple(epochs)
    )
    log.info("early-stopping sweep: target %.0fs, shadow %.0fs", t1 - t0, time.perf_counter() - t1)
    ec = eval_config or EvalConfig(max_train=2000, max_test=1000)
    rows = []
    for e in epochs:
        victim = LocalEncoder(target_snaps[e][0])
        results, _ = run_attacks(
            victim,
            members,
            nonmembers,
            shadow_snaps[e],
            attacks,
            features=features,
            attack_params=attack_params,
            seed=seed,
        )
        down = evaluate_encoder(victim, downstream_train, downstream_test, ec)
        row: dict[str, Any] = {"epoch": e, "knn": down["knn"], "linear": down["linear"]}
        for r in results:
            m = r.metrics()
            row[f"{r.attack}/auc"] = m["auc"]
            row[f"{r.attack}/accuracy"] = m["accuracy"]
            row[f"{r.attack}/tpr_at_1pct_fpr"] = m["tpr_at_1pct_fpr"]
        rows.append(row)
        log.info("epoch %d: %s", e, row)
    return rows


def plot_tradeoff(
    rows: Sequence[dict[str, Any]], path: str | Path, *, attack: str = "encodermi-t", title: str = ""
) -> Path:
    """Attack AUC and accuracy (y) vs. downstream linear / kNN accuracy (x), one point per epoch."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 3.8), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    lin = [100 * r["linear"] for r in rows]
    knn = [100 * r["knn"] for r in rows]
    auc = [r[f"{attack}/auc"] for r in rows]
    acc = [r[f"{attack}/accuracy"] for r in rows]
    ax.plot(lin, auc, "o-", label=f"{attack} AUC vs linear acc.")
    ax.plot(lin, acc, "s--", label=f"{attack} accuracy vs linear acc.")
    ax.plot(knn, auc, "^:", label=f"{attack} AUC vs kNN acc.", alpha=0.7)
    for x, y, r in zip(lin, auc, rows, strict=True):
        ax.annotate(f"ep {r['epoch']}", (x, y), textcoords="offset points", xytext=(3, 4), fontsize=7)
    ax.axhline(0.5, color="k", lw=0.7, ls="--")
    ax.set_xlabel("downstream accuracy of the encoder (%)")
    ax.set_ylabel("membership attack AUC / accuracy")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    return path
