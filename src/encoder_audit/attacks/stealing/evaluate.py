"""How good is a stolen surrogate? Fidelity to the target and downstream utility, on held-out data.

* **Fidelity**, per downstream dataset (Dziedzic et al. ICML'22 ``similarity_metrics``):
  - ``cosine``: mean cosine between surrogate and target embeddings of held-out images (the target's
    output dimension-matched to the surrogate's exactly as during the attack), and ``cosine_centered``
    (each encoder's mean embedding subtracted first);
  - ``target_head_agreement`` (*coordinate fidelity*): a linear head trained on the *target's*
    features, applied unchanged to the *surrogate's* features of the test split: the share of test
    images where it predicts what it predicts on the target's features. It is high only when the
    surrogate reproduces the target's coordinates, not merely its geometry;
  - ``prediction_agreement`` (Cont-Steal's agreement, Sha et al. CVPR 2023): each encoder gets its
    own downstream linear probe (fitted on its own features of the training split); the share of test
    images where the two probes predict the same class.
* **Utility**: kNN and linear-probe accuracy on each downstream dataset for the surrogate, beside
  the target's own and a random-init encoder of the surrogate's architecture (a random CNN is already
  a fair feature extractor on small grayscale images, so only the gap above it is stolen).

**kNN and the probe bank.** A weighted kNN with k = 200 (the RDA monitor's, on 50,000-image banks)
on a 2,000-image bank votes with a tenth of the bank and behaves like a class-mean classifier, which
can flip rankings. ``knn`` therefore uses k = 1% of the bank (at least 5, at most 200: k = 20 on
2,000 images, k = 200 on 20,000 or more), and ``knn@20`` / ``knn@200`` are reported beside it; the
bank size is part of every result (``n_train``).

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

from ...data.base import ImageDataset, subsample
from ...evaluate import extract_features, fit_linear_probe, knn_accuracy
from ...evaluate.downstream import random_init_baseline
from ...victim import Encoder, WhiteBox
from .base import match_dim

log = logging.getLogger(__name__)

__all__ = ["FeatureCache", "StealEvalConfig", "evaluate_stealing", "fidelity", "scaled_k"]


def scaled_k(bank: int, fraction: float = 0.01, lo: int = 5, hi: int = 200) -> int:
    """kNN neighbours for a bank of ``bank`` images: ``fraction`` of it, clamped to [lo, hi] (and <= bank).

    >>> scaled_k(2_000), scaled_k(50_000), scaled_k(100)
    (20, 200, 5)
    """
    return max(1, min(bank, max(lo, min(hi, round(bank * fraction)))))


@dataclass(frozen=True)
class StealEvalConfig:
    """Attributes:
    max_train: images of each downstream training split used (the kNN bank, the probes).
    max_test: images of each test split used (fidelity, accuracies).
    knn_ks: fixed neighbour counts reported beside the bank-scaled one (20 and 200, the RDA monitor's).
    knn_fraction: the headline kNN's k as a fraction of the bank (1%, clamped to [5, 200]).
    knn_temperature: kNN vote temperature (0.1, the toolkit's default evaluation).
    dim_match: how the target's output is matched to the surrogate's dimension (as in the attack).
    seed: which images the caps keep.
    """

    max_train: int = 5_000
    max_test: int = 2_000
    knn_ks: tuple[int, ...] = (20, 200)
    knn_fraction: float = 0.01
    knn_temperature: float = 0.1
    dim_match: str = "pool"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_train < 10 or self.max_test < 2:
            raise ValueError("max_train must be >= 10 and max_test >= 2")
        if any(k < 1 for k in self.knn_ks) or self.knn_temperature <= 0:
            raise ValueError("knn_ks must be >= 1 and knn_temperature > 0")
        if not 0 < self.knn_fraction <= 1:
            raise ValueError(f"knn_fraction must be in (0, 1], got {self.knn_fraction}")

    def k_for(self, bank: int) -> int:
        """The headline kNN's k for a bank of ``bank`` images."""
        return scaled_k(bank, self.knn_fraction)


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

    Holds a reference to every cached encoder, so an ``id`` is never reused for another object; the
    random-init encoder of an architecture is built once (:meth:`random_init`), so a sweep's memory
    does not grow with its number of evaluations.
    """

    def __init__(self) -> None:
        self.cache: dict[tuple[int, str], Any] = {}
        self._alive: list[Any] = []
        self._random: dict[tuple[Any, ...], Encoder] = {}

    def random_init(self, arch: str, input_shape: tuple[int, int, int], **normalization: Any) -> Encoder:
        """The seed-0 random-init encoder of ``arch`` (built on first use, then reused)."""
        key = (
            arch,
            tuple(input_shape),
            tuple(sorted((k, tuple(round(float(x), 5) for x in v)) for k, v in normalization.items())),
        )
        if key not in self._random:
            self._random[key] = random_init_baseline(arch, input_shape, seed=0, **normalization)
        return self._random[key]

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
    """kNN at the bank-scaled k and at each fixed k, linear-probe accuracy and the probe's test predictions."""
    k = c.k_for(len(ftr))
    out: dict[str, Any] = {"knn": knn_accuracy(ftr, ytr, fte, yte, k=k, temperature=c.knn_temperature), "knn_k": k}
    for kk in c.knn_ks:  # named by the k asked for; a bank smaller than k votes with all of it
        k_used = min(kk, len(ftr))
        out[f"knn@{kk}"] = (
            out["knn"] if k_used == k else knn_accuracy(ftr, ytr, fte, yte, k=k_used, temperature=c.knn_temperature)
        )
    pred = fit_linear_probe(ftr, ytr, seed=c.seed).predict(fte)
    out["linear"] = float((pred == yte.numpy()).mean())
    out["_pred"] = pred
    return out


def _public(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if not k.startswith("_")}


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
            the surrogate is a :class:`~encoder_audit.victim.WhiteBox`; built once per ``cache``).
        cache: reuse features across calls (pass the same object when evaluating many surrogates).

    Returns:
        ``{dataset: {"surrogate": {knn, knn_k, knn@20, knn@200, linear}, "target": {...},
        "random_init": {...}, "cosine", "cosine_std", "cosine_centered", "target_head_agreement",
        "prediction_agreement", "n_train", "n_test"}, "mean": {...}}`` (``mean``: the unweighted mean
        over the datasets, named as such wherever it is shown).
    """
    c = config or StealEvalConfig()
    cache = cache if cache is not None else FeatureCache()
    if random_init is None and isinstance(surrogate, WhiteBox):
        net = surrogate.net
        random_init = cache.random_init(net.arch, net.input_shape, **net.normalization())
    out: dict[str, Any] = {}
    for name, (train, test) in eval_sets.items():
        if train.labels is None or test.labels is None:
            raise ValueError(f"evaluation set {name!r} needs labels")
        train, test = subsample(train, c.max_train, c.seed), subsample(test, c.max_test, c.seed + 1)
        assert train.labels is not None and test.labels is not None
        ytr, yte = train.labels, test.labels
        s_tr = cache.get(surrogate, train, f"{name}/train", keep=False)
        s_te = cache.get(surrogate, test, f"{name}/test", keep=False)
        t_tr, t_te = cache.get(target, train, f"{name}/train"), cache.get(target, test, f"{name}/test")
        mine = _utility(s_tr, ytr, s_te, yte, c)
        theirs = cache.memo(target, name, lambda a=t_tr, b=t_te, ya=ytr, yb=yte: _utility(a, ya, b, yb, c))
        row: dict[str, Any] = {"surrogate": _public(mine), "target": _public(theirs)}
        if random_init is not None:
            r_tr, r_te = cache.get(random_init, train, f"{name}/train"), cache.get(random_init, test, f"{name}/test")
            row["random_init"] = _public(
                cache.memo(random_init, name, lambda a=r_tr, b=r_te, ya=ytr, yb=yte: _utility(a, ya, b, yb, c))
            )
        row.update(fidelity(s_te, t_te, c.dim_match))
        row["prediction_agreement"] = float((mine["_pred"] == theirs["_pred"]).mean())
        # Target-head agreement: a head fitted on the target's (dimension-matched, L2-normalised) features, applied to
        # the
        # surrogate's. No per-feature standardisation: the target's near-constant coordinates would amplify
        # small surrogate errors without bound.
        d = s_tr.shape[1]
        head = _agreement_head(F.normalize(match_dim(t_tr, d, c.dim_match), dim=1), ytr, c.seed)
        t_pred = head.predict(F.normalize(match_dim(t_te, d, c.dim_match), dim=1).numpy())
        s_pred = head.predict(s_te.numpy())
        row["target_head_agreement"] = float((t_pred == s_pred).mean())
        row["n_train"], row["n_test"] = len(train), len(test)
        out[name] = row
    keys = ("cosine", "cosine_centered", "target_head_agreement", "prediction_agreement")
    mean: dict[str, float] = {k: sum(out[n][k] for n in eval_sets) / len(eval_sets) for k in keys}
    for who in ("surrogate", "target", "random_init"):
        for metric in ("knn", "linear"):
            vals = [out[n][who][metric] for n in eval_sets if who in out[n]]
            if vals:
                mean[f"{who}_{metric}"] = sum(vals) / len(vals)
    out["mean"] = mean
    return out
