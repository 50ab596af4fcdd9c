"""Membership-inference metrics: the EncoderMI table and the ROC-based numbers the field now asks for.

EncoderMI (Liu et al., CCS 2021) reports accuracy, precision and recall at one operating point.
Carlini et al., "Membership Inference Attacks From First Principles" (IEEE S&P 2022) argue that an
attack must be judged by its true-positive rate at a low false-positive rate and by the full ROC curve
on log-log axes; we report both. Members are the positive class (label 1), higher scores mean "more
likely a member", and a sample is predicted a member when ``score >= threshold``.

TPR at a target FPR is read off the empirical ROC at the largest FPR not above the target. With
``m`` non-members the smallest non-zero FPR is ``1/m``: below it the number says only whether any
member scores above every non-member, so :func:`evaluate_scores` reports it as None ("n/a") unless
``m >= 1 / fpr`` (:func:`min_nonmembers_for`).

The AUC comes with a stratified bootstrap 95% interval (:func:`bootstrap_auc`: members and
non-members are resampled separately, so every resample keeps both classes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from ...io import atomic_write

__all__ = [
    "auc_from_ranks",
    "best_threshold",
    "bootstrap_auc",
    "evaluate_scores",
    "min_nonmembers_for",
    "plot_roc",
    "roc_points",
    "tpr_at_fpr",
]

FPR_LEVELS = {"tpr_at_1pct_fpr": 0.01, "tpr_at_0.1pct_fpr": 0.001}


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


def min_nonmembers_for(fpr: float) -> int:
    """Non-members needed before TPR at ``fpr`` means more than TPR at FPR 0 (``ceil(1 / fpr)``).

    >>> min_nonmembers_for(0.01), min_nonmembers_for(0.001)
    (100, 1000)
    """
    return int(np.ceil(1.0 / fpr - 1e-9))


def auc_from_ranks(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count one half): P(member score > non-member score).

    >>> auc_from_ranks(np.array([0.9, 0.5, 0.5, 0.1]), np.array([1, 1, 0, 0]))
    0.875
    """
    from scipy.stats import rankdata

    s, y = _check(scores, labels)
    n1, n0 = int(y.sum()), int((1 - y).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError("need both members and non-members for an AUC")
    r = rankdata(s)
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def bootstrap_auc(
    scores: np.ndarray, labels: np.ndarray, *, resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of the AUC over stratified bootstrap resamples (members and non-members apart).

    Returns:
        ``(lo, hi)``; ``(auc, auc)`` when ``resamples`` is 0.
    """
    from scipy.stats import rankdata

    s, y = _check(scores, labels)
    if resamples <= 0:
        a = auc_from_ranks(s, y)
        return a, a
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("need both members and non-members for an AUC")
    rng = np.random.default_rng(seed)
    p = pos[rng.integers(0, len(pos), size=(resamples, len(pos)))]
    n = neg[rng.integers(0, len(neg), size=(resamples, len(neg)))]
    both = np.concatenate([p, n], axis=1)
    ranks = rankdata(both, axis=1)
    n1, n0 = len(pos), len(neg)
    aucs = (ranks[:, :n1].sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)
    tail = (1 - level) / 2
    return float(np.quantile(aucs, tail)), float(np.quantile(aucs, 1 - tail))


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


def evaluate_scores(
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float | None = None,
    *,
    bootstrap: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy, precision, recall (at ``threshold``), AUC (with a bootstrap interval), TPR at 1% / 0.1% FPR.

    TPR at an FPR the non-member count cannot resolve (fewer than ``1 / fpr`` non-members) is None.

    Args:
        scores: per-sample membership scores (higher = member).
        labels: 1 for members, 0 for non-members.
        threshold: decision threshold chosen *without* the evaluation labels (e.g. on the shadow);
            None leaves the operating-point metrics out.
        bootstrap: resamples of the AUC's 95% interval (``auc_lo`` / ``auc_hi``; 0: none).
        seed: seed of the resamples.
    """
    s, y = _check(scores, labels)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("need both members and non-members to evaluate")
    f, t, _ = roc_curve(y, s, drop_intermediate=False)
    out: dict[str, Any] = {
        "auc": float(roc_auc_score(y, s)),
        "advantage": float(np.max(t - f)),
        "members": n_pos,
        "nonmembers": n_neg,
        "fpr_resolution": 1.0 / n_neg,
    }
    for name, level in FPR_LEVELS.items():
        out[name] = tpr_at_fpr(s, y, level) if n_neg >= min_nonmembers_for(level) else None
    if bootstrap:
        out["auc_lo"], out["auc_hi"] = bootstrap_auc(s, y, resamples=bootstrap, seed=seed)
    if threshold is not None:
        pred = s >= threshold
        tp = int((pred & (y == 1)).sum())
        fp = int((pred & (y == 0)).sum())
        out.update(
            {
                "threshold": float(threshold),
                "accuracy": float((pred == (y == 1)).mean()),
                "balanced_accuracy": 0.5 * (tp / n_pos + 1 - fp / n_neg),
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
