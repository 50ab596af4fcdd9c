"""Membership-inference metrics: the EncoderMI table and the ROC-based numbers the field now asks for.

EncoderMI (Liu et al., CCS 2021) reports accuracy, precision and recall at one operating point.
Carlini et al., "Membership Inference Attacks From First Principles" (IEEE S&P 2022) argue that an
attack must be judged by its true-positive rate at a low false-positive rate and by the full ROC curve
on log-log axes; we report both. Members are the positive class (label 1), higher scores mean "more
likely a member", and a sample is predicted a member when ``score >= threshold``.

TPR at a target FPR is read off the empirical ROC at the largest FPR not above the target. With
``m`` non-members the smallest non-zero FPR is ``1/m``: below it the number says only whether any
member scores above every non-member (``fpr_resolution`` is reported beside it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from ...io import atomic_write

__all__ = ["best_threshold", "evaluate_scores", "plot_roc", "roc_points", "tpr_at_fpr"]


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).astype(np.int64).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length ({s.size} vs {y.size})")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    if set(np.unique(y).tolist()) - {0, 1}:
        raise ValueError("labels must be 0 (non-member) or 1 (member)")
    return s, y


def roc_points(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` of the empirical ROC (members positive)."""
    s, y = _check(scores, labels)
    return roc_curve(y, s, drop_intermediate=False)


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float) -> float:
    """Highest TPR among thresholds whose FPR is at most ``fpr``.

    >>> tpr_at_fpr(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0]), 0.0)
    1.0
    """
    f, t, _ = roc_points(scores, labels)
    ok = f <= fpr + 1e-12
    return float(t[ok].max()) if ok.any() else 0.0


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold maximising accuracy ``score >= t`` on labelled (shadow) data.

    Candidates are midpoints between consecutive distinct scores (plus both ends), so the rule
    does not depend on a grid; ties in accuracy go to the middle of the best run of candidates.

    >>> best_threshold(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    0.5
    """
    s, y = _check(scores, labels)
    if s.size == 0:
        raise ValueError("need at least one score to choose a threshold")
    u = np.unique(s)
    cands = np.concatenate([[u[0] - 1e-6], (u[:-1] + u[1:]) / 2, [u[-1] + 1e-6]])
    order = np.argsort(s)
    s_sorted, y_sorted = s[order], y[order]
    # members predicted positive: those with score >= t; non-members negative: score < t
    below = np.searchsorted(s_sorted, cands, side="left")  # samples with score < t
    neg_below = np.concatenate([[0], np.cumsum(1 - y_sorted)])[below]
    pos_above = y.sum() - np.concatenate([[0], np.cumsum(y_sorted)])[below]
    acc = (neg_below + pos_above) / s.size
    best = np.flatnonzero(acc >= acc.max() - 1e-12)
    return float(cands[best[len(best) // 2]])


def evaluate_scores(scores: np.ndarray, labels: np.ndarray, threshold: float | None = None) -> dict[str, Any]:
    """Accuracy, precision, recall (at ``threshold``), AUC, TPR at 1% / 0.1% FPR, balanced advantage.

    Args:
        scores: per-sample membership scores (higher = member).
        labels: 1 for members, 0 for non-members.
        threshold: decision threshold chosen *without* the evaluation labels (e.g. on the shadow);
            None leaves the operating-point metrics out.
    """
    s, y = _check(scores, labels)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("need both members and non-members to evaluate")
    f, t, _ = roc_curve(y, s, drop_intermediate=False)
    out: dict[str, Any] = {
        "auc": float(roc_auc_score(y, s)),
        "tpr_at_1pct_fpr": tpr_at_fpr(s, y, 0.01),
        "tpr_at_0.1pct_fpr": tpr_at_fpr(s, y, 0.001),
        "advantage": float(np.max(t - f)),
        "members": n_pos,
        "nonmembers": n_neg,
        "fpr_resolution": 1.0 / n_neg,
    }
    if threshold is not None:
        pred = s >= threshold
        tp = int((pred & (y == 1)).sum())
        fp = int((pred & (y == 0)).sum())
        out.update(
            {
                "threshold": float(threshold),
                "accuracy": float((pred == (y == 1)).mean()),
                "precision": tp / (tp + fp) if tp + fp else 0.0,
                "recall": tp / n_pos,
                "fpr": fp / n_neg,
            }
        )
    return out


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, *, title: str = "") -> Path:
    """ROC curves on log-log axes (Carlini et al. 2022, Fig. 1 style) as a PNG, with the chance line.

    Args:
        curves: name -> (scores, labels).
        path: output PNG.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.8, 4.2), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    floor = 1.0
    for name, (scores, labels) in curves.items():
        f, t, _ = roc_points(scores, labels)
        auc = roc_auc_score(np.asarray(labels).astype(int), np.asarray(scores, dtype=float))
        n_neg = int((np.asarray(labels) == 0).sum())
        floor = min(floor, 0.5 / max(n_neg, 1))
        ax.plot(np.maximum(f, floor), np.maximum(t, floor), label=f"{name} (AUC {auc:.2f})", lw=1.3)
    grid = np.logspace(np.log10(floor), 0, 50)
    ax.plot(grid, grid, "k--", lw=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(floor, 1.05)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6.5, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    return path
