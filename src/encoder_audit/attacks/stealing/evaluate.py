"""How good is a stolen surrogate? Fidelity to the target and downstream utility, on held-out data.

* **Fidelity** (Dziedzic et al. ICML'22 ``similarity_metrics``; Cont-Steal's "agreement"):
  - ``cosine``: mean cosine between surrogate and target embeddings of held-out images (the target's
    output dimension-matched to the surrogate's exactly as during the attack);
  - ``agreement``: a linear head trained on the *target's* features of a downstream training split,
    applied unchanged to the *surrogate's* features of the test split: the share of test images where
    it predicts what it predicts on the target's features.
* **Utility**: kNN and linear-probe accuracy on each downstream dataset for the surrogate, beside
  the target's own and a random-init encoder of the surrogate's architecture (a random CNN is already
  a fair feature extractor on small grayscale images, so only the gap above it is stolen).

Nothing here selects a model: the surrogate evaluated is the one the attack ended with, and probes
are fitted on training splits only. The owner-side evaluation queries the target directly (it is
the auditor's measurement, not the attacker's, so it is not charged to the attack's budget).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ...data.base import ImageDataset
from ...evaluate import extract_features, fit_linear_probe, knn_accuracy
from ...evaluate.downstream import random_init_baseline
from ...victim import Encoder
from .base import match_dim

log = logging.getLogger(__name__)

__all__ = ["FeatureCache", "StealEvalConfig", "evaluate_stealing", "fidelity"]


@dataclass(frozen=True)
class StealEvalConfig:
    """Attributes:
    max_train: images of each downstream training split used (probes, agreement head).
    max_test: images of each test split used (fidelity, accuracies).
    knn_k: neighbours of the weighted kNN (200, the RDA monitor's).
    knn_temperature: kNN vote temperature (0.1, the toolkit's default evaluation).
    dim_match: how the target's output is matched to the surrogate's dimension (as in the attack).
    seed: which images the caps keep.
    """

    max_train: int = 5_000
    max_test: int = 2_000
    knn_k: int = 200
    knn_temperature: float = 0.1
    dim_match: str = "pool"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_train < 10 or self.max_test < 2:
            raise ValueError("max_train must be >= 10 and max_test >= 2")
        if self.knn_k < 1 or self.knn_temperature <= 0:
            raise ValueError("knn_k must be >= 1 and knn_temperature > 0")


def _cap(ds: ImageDataset, n: int, seed: int) -> ImageDataset:
    if len(ds) <= n:
        return ds
    g = torch.Generator().manual_seed(seed)
    return ds.subset(torch.randperm(len(ds), generator=g)[:n].sort().values)


def fidelity(
    surrogate_features: torch.Tensor, target_features: torch.Tensor, dim_match: str = "pool"
) -> dict[str, float]:
    """Per-sample cosine between surrogate and (dimension-matched) target features.

    ``cosine`` is the plain metric of the stealing papers. Post-ReLU features are non-negative, so any
    two encoders' outputs already have a large plain cosine; ``cosine_centered`` first subtracts each
    encoder's mean feature over the evaluated images, so a surrogate that only learned the mean
    direction scores about 0 on it.

    Returns:
        ``{"cosine": mean, "cosine_std": std, "cosine_centered": mean}``.
    """
    t = match_dim(target_features, surrogate_features.shape[1], dim_match)
    s = surrogate_features
    cos = F.cosine_similarity(s, t, dim=1)
    centered = F.cosine_similarity(s - s.mean(dim=0), t - t.mean(dim=0), dim=1)
    return {
        "cosine": float(cos.mean()),
        "cosine_std": float(cos.std()) if len(cos) > 1 else 0.0,
        "cosine_centered": float(centered.mean()),
    }


class FeatureCache:
    """Features and scores of the encoders shared by many evaluations (target, random init).

    Holds a reference to every cached encoder, so an ``id`` is never reused for another object.
    """

    def __init__(self) -> None:
        self.cache: dict[tuple[int, str], Any] = {}
        self._alive: list[Any] = []

    def get(self, encoder: Encoder, ds: ImageDataset, key: str, *, keep: bool = True) -> torch.Tensor:
        k = (id(encoder), key)
        if k in self.cache:
            return self.cache[k]
        feats = F.normalize(extract_features(encoder, ds).float(), dim=1)
        if keep:
            self._alive.append(encoder)
            self.cache[k] = feats
        return feats

    def memo(self, encoder: Encoder, key: str, fn: Any) -> Any:
        k = (id(encoder), "memo:" + key)
        if k not in self.cache:
            self._alive.append(encoder)
            self.cache[k] = fn()
        return self.cache[k]


def _utility(ftr: torch.Tensor, ytr: torch.Tensor, fte: torch.Tensor, yte: torch.Tensor, c: StealEvalConfig) -> dict:
    knn = knn_accuracy(ftr, ytr, fte, yte, k=c.knn_k, temperature=c.knn_temperature)
    lin = fit_linear_probe(ftr, ytr, seed=c.seed).accuracy(fte, yte)
    return {"knn": knn, "linear": lin}


def _agreement_head(features: torch.Tensor, labels: torch.Tensor, seed: int) -> Any:
    """Multinomial logistic regression on unit-norm features, without standardisation (C = 10)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    head = LogisticRegression(C=10.0, max_iter=1000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        head.fit(features.numpy(), labels.numpy())
    return head


def evaluate_stealing(
    surrogate: Encoder,
    target: Encoder,
    eval_sets: dict[str, tuple[ImageDataset, ImageDataset]],
    config: StealEvalConfig | None = None,
    *,
    random_init: Encoder | None = None,
    cache: FeatureCache | None = None,
) -> dict[str, Any]:
    """Fidelity and utility of ``surrogate`` against ``target`` on each ``{name: (train, test)}`` pair.

    Args:
        surrogate: the stolen encoder.
        target: the victim, queried directly by the auditor (not through the attack's counter).
        eval_sets: labelled downstream train/test pairs (the test half is only used for reporting).
        config: sizes and kNN settings.
        random_init: the random-init encoder row (default: the surrogate's architecture, seed 0, if
            ``surrogate`` exposes ``.net``).
        cache: reuse features across calls (pass the same object when evaluating many surrogates).

    Returns:
        ``{dataset: {"surrogate": {knn, linear}, "target": {...}, "random_init": {...}, "cosine",
        "cosine_std", "agreement"}, "mean": {...}}``.
    """
    c = config or StealEvalConfig()
    cache = cache if cache is not None else FeatureCache()
    if random_init is None and hasattr(surrogate, "net"):
        net = surrogate.net  # type: ignore[attr-defined]
        random_init = random_init_baseline(net.arch, net.input_shape, seed=0, **net.normalization())
    out: dict[str, Any] = {}
    for name, (train, test) in eval_sets.items():
        if train.labels is None or test.labels is None:
            raise ValueError(f"evaluation set {name!r} needs labels")
        train, test = _cap(train, c.max_train, c.seed), _cap(test, c.max_test, c.seed + 1)
        ytr, yte = train.labels, test.labels
        s_tr = cache.get(surrogate, train, f"{name}/train", keep=False)
        s_te = cache.get(surrogate, test, f"{name}/test", keep=False)
        t_tr, t_te = cache.get(target, train, f"{name}/train"), cache.get(target, test, f"{name}/test")
        row: dict[str, Any] = {"surrogate": _utility(s_tr, ytr, s_te, yte, c)}
        row["target"] = cache.memo(target, name, lambda a=t_tr, b=t_te, ya=ytr, yb=yte: _utility(a, ya, b, yb, c))
        if random_init is not None:
            r_tr, r_te = cache.get(random_init, train, f"{name}/train"), cache.get(random_init, test, f"{name}/test")
            row["random_init"] = cache.memo(
                random_init, name, lambda a=r_tr, b=r_te, ya=ytr, yb=yte: _utility(a, ya, b, yb, c)
            )
        row.update(fidelity(s_te, t_te, c.dim_match))
        # Agreement: a head fitted on the target's (dimension-matched, L2-normalised) features, applied to the
        # surrogate's. No per-feature standardisation: the target's near-constant coordinates would amplify
        # small surrogate errors without bound.
        d = s_tr.shape[1]
        head = _agreement_head(F.normalize(match_dim(t_tr, d, c.dim_match), dim=1), ytr, c.seed)
        t_pred = head.predict(F.normalize(match_dim(t_te, d, c.dim_match), dim=1).numpy())
        s_pred = head.predict(s_te.numpy())
        row["agreement"] = float((t_pred == s_pred).mean())
        row["n_train"], row["n_test"] = len(train), len(test)
        out[name] = row
    keys = ("cosine", "cosine_centered", "agreement")
    mean: dict[str, float] = {k: sum(out[n][k] for n in eval_sets) / len(eval_sets) for k in keys}
    for who in ("surrogate", "target", "random_init"):
        for metric in ("knn", "linear"):
            vals = [out[n][who][metric] for n in eval_sets if who in out[n]]
            if vals:
                mean[f"{who}_{metric}"] = sum(vals) / len(vals)
    out["mean"] = mean
    return out
