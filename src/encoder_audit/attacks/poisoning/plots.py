"""Figures of poison-count sweeps (matplotlib, Agg backend, object-oriented API)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["aggregate", "plot_backdoor", "plot_targeted"]


def aggregate(rows: list[dict[str, Any]], count_key: str, metrics: list[str]) -> list[dict[str, Any]]:
    """Mean and sample std over seeds of ``metrics`` per value of ``count_key`` (sorted by count)."""
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[int(r[count_key])].append(r)
    out = []
    for count in sorted(groups):
        g = groups[count]
        rec: dict[str, Any] = {
            count_key: count,
            "seeds": len(g),
            "train_pairs": int(np.mean([r["train_pairs"] for r in g])),
        }
        for m in metrics:
            vals = np.array([float(r[m]) for r in g if m in r])
            rec[m] = float(vals.mean()) if len(vals) else float("nan")
            rec[m + "_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        out.append(rec)
    return out


def _figure() -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 3.4), dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


def _xpos(counts: list[int]) -> np.ndarray:
    # zero cannot sit on a log axis: plot it at half the smallest positive count
    pos = [c for c in counts if c > 0]
    floor = (min(pos) / 2) if pos else 0.5
    return np.array([c if c > 0 else floor for c in counts], dtype=float)


def _count_axes(counts: list[int], xlabel: str) -> tuple[Any, Any, np.ndarray]:
    """A figure whose x axis is the poison count on a log scale (0 drawn at half the smallest count)."""
    x = _xpos(counts)
    fig, ax = _figure()
    ax.set_xscale("log")
    ax.set_xticks(x)
    ax.minorticks_off()
    ax.set_xticklabels([str(c) for c in counts])
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel(xlabel)
    return fig, ax, x


def _finish(fig: Any, axes: tuple[Any, Any], title: str, path: Path, fontsize: int) -> Path:
    ax, ax2 = axes
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=fontsize)
    ax2.legend(loc="center left", fontsize=fontsize)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def plot_targeted(rows: list[dict[str, Any]], path: Path) -> Path:
    """Targeted success rate (and mean rank of y') vs poisons per target."""
    agg = aggregate(rows, "targeted_poisons_per_target", ["targeted_success", "targeted_mean_rank"])
    counts = [a["targeted_poisons_per_target"] for a in agg]
    fig, ax, x = _count_axes(counts, "poisons per target (k)")
    ax.errorbar(
        x,
        [a["targeted_success"] for a in agg],
        yerr=[a["targeted_success_std"] for a in agg],
        marker="o",
        capsize=3,
        label="success (y' top-1)",
    )
    ax.set_ylabel("success rate")
    ax2 = ax.twinx()
    ax2.plot(x, [a["targeted_mean_rank"] for a in agg], "s--", color="tab:gray", label="mean rank of y'")
    ax2.set_ylabel("mean rank of y' (1 = top)")
    n, seeds = (agg[0]["train_pairs"], agg[0]["seeds"]) if agg else (0, 0)
    return _finish(fig, (ax, ax2), f"Targeted poisoning, ~{n} pairs, {seeds} seed(s)", path, fontsize=8)


def plot_backdoor(rows: list[dict[str, Any]], path: Path) -> Path:
    """Backdoor ASR, no-trigger baseline and clean zero-shot accuracy (left) and z-score (right) vs poisons."""
    agg = aggregate(
        rows,
        "backdoor_poisons",
        ["backdoor_asr", "backdoor_baseline_target_rate", "clean_zeroshot_top1", "backdoor_zscore"],
    )
    counts = [a["backdoor_poisons"] for a in agg]
    fig, ax, x = _count_axes(counts, "backdoor poisons (m)")
    for key, label, style in (
        ("backdoor_asr", "ASR (triggered, non-target)", "o-"),
        ("backdoor_baseline_target_rate", "no-trigger rate into y'", "v:"),
        ("clean_zeroshot_top1", "clean zero-shot acc.", "^-"),
    ):
        ax.errorbar(x, [a[key] for a in agg], yerr=[a[key + "_std"] for a in agg], fmt=style, capsize=3, label=label)
    ax2 = ax.twinx()
    ax2.plot(x, [a["backdoor_zscore"] for a in agg], "s--", color="tab:red", label="z-score (std form)")
    ax2.set_ylabel("backdoor z-score", color="tab:red")
    n, seeds = (agg[0]["train_pairs"], agg[0]["seeds"]) if agg else (0, 0)
    return _finish(fig, (ax, ax2), f"Patch backdoor, ~{n} pairs, {seeds} seed(s)", path, fontsize=7)
