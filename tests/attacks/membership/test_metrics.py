"""Metrics against naive references; threshold choice on a synthetic score distribution."""

from __future__ import annotations

import numpy as np
import pytest

from encoder_audit.attacks.membership.metrics import best_threshold, evaluate_scores, plot_roc, tpr_at_fpr


def naive_tpr_at_fpr(s: np.ndarray, y: np.ndarray, fpr: float) -> float:
    best = 0.0
    for t in np.concatenate([np.unique(s), [np.inf]]):
        pred = s >= t
        f = (pred & (y == 0)).sum() / (y == 0).sum()
        if f <= fpr:
            best = max(best, (pred & (y == 1)).sum() / (y == 1).sum())
    return best


def naive_auc(s: np.ndarray, y: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    return float(((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg)))


def test_metrics_match_naive_references() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    s = rng.normal(size=400) + 0.8 * y
    s[:20] = np.round(s[:20], 1)  # some ties
    m = evaluate_scores(s, y, threshold=0.3)
    assert m["auc"] == pytest.approx(naive_auc(s, y))
    n_neg = int((y == 0).sum())
    for f, key in ((0.01, "tpr_at_1pct_fpr"), (0.001, "tpr_at_0.1pct_fpr")):
        if n_neg >= round(1 / f):
            assert m[key] == pytest.approx(naive_tpr_at_fpr(s, y, f))
        else:  # ~200 non-members cannot resolve 0.1% FPR: n/a, not TPR at FPR 0
            assert m[key] is None
    assert m["tpr_at_1pct_fpr"] is not None and m["tpr_at_0.1pct_fpr"] is None
    pred = s >= 0.3
    assert m["accuracy"] == pytest.approx((pred == (y == 1)).mean())
    assert m["precision"] == pytest.approx((pred & (y == 1)).sum() / pred.sum())
    assert m["recall"] == pytest.approx((pred & (y == 1)).sum() / (y == 1).sum())
    assert m["fpr_resolution"] == pytest.approx(1 / (y == 0).sum())


def test_perfect_and_inverted_scores() -> None:
    y = np.array([1, 1, 1, 0, 0, 0])
    s = np.array([3.0, 2.5, 2.0, 1.0, 0.5, 0.0])
    assert evaluate_scores(s, y)["auc"] == 1.0
    assert tpr_at_fpr(s, y, 0.0) == 1.0
    assert evaluate_scores(-s, y)["auc"] == 0.0
    assert tpr_at_fpr(-s, y, 0.0) == 0.0


def test_threshold_choice_on_synthetic_gaussians() -> None:
    """Equal-variance Gaussians N(0,1) vs N(2,1), equal priors: the accuracy-optimal threshold is 1."""
    rng = np.random.default_rng(1)
    s = np.concatenate([rng.normal(2.0, 1.0, 4000), rng.normal(0.0, 1.0, 4000)])
    y = np.concatenate([np.ones(4000), np.zeros(4000)])
    t = best_threshold(s, y)
    assert abs(t - 1.0) < 0.15
    acc = ((s >= t) == (y == 1)).mean()
    assert acc >= max(((s >= c) == (y == 1)).mean() for c in np.linspace(-2, 4, 601)) - 1e-12
    # shifting every score shifts the threshold
    assert best_threshold(s + 5, y) == pytest.approx(t + 5)


def test_threshold_of_separable_scores_lies_between_classes() -> None:
    t = best_threshold(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    assert 0.2 < t < 0.8


def test_bad_inputs() -> None:
    with pytest.raises(ValueError):
        evaluate_scores(np.array([0.1, 0.2]), np.array([1, 1]))
    with pytest.raises(ValueError):
        evaluate_scores(np.array([0.1, np.nan]), np.array([1, 0]))
    with pytest.raises(ValueError):
        evaluate_scores(np.array([0.1, 0.2]), np.array([1, 2]))


def test_roc_plot_is_written(tmp_path) -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(50), np.zeros(50)]
    path = plot_roc({"a": (rng.normal(size=100) + y, y)}, tmp_path / "roc.png", title="t")
    assert path.stat().st_size > 1000


def test_rank_auc_matches_naive_and_bootstrap_interval_covers() -> None:
    from encoder_audit.attacks.membership.metrics import auc_from_ranks, bootstrap_auc, min_nonmembers_for

    rng = np.random.default_rng(1)
    y = np.r_[np.ones(40), np.zeros(300)].astype(int)
    s = np.round(rng.normal(size=340) + 0.6 * y, 1)  # ties on purpose
    assert auc_from_ranks(s, y) == pytest.approx(naive_auc(s, y))
    assert min_nonmembers_for(0.01) == 100 and min_nonmembers_for(0.001) == 1000
    # coverage: the population AUC of N(0.6, 1) vs N(0, 1) is Phi(0.6 / sqrt 2) = 0.6643
    true_auc, hits = 0.6643, 0
    for i in range(100):
        r = np.random.default_rng(100 + i)
        si = np.r_[r.normal(0.6, 1, 40), r.normal(0, 1, 300)]
        lo, hi = bootstrap_auc(si, y, resamples=300, seed=i)
        hits += lo <= true_auc <= hi
    assert 85 <= hits <= 100  # a 95% interval; a too-narrow (or point) interval covers far less often
    lo, hi = bootstrap_auc(s, y, resamples=0)
    assert lo == hi == pytest.approx(auc_from_ranks(s, y))
