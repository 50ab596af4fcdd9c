"""What a server-side defense costs honest users: downstream accuracy of the defended embeddings.

An honest user embeds a labelled training set and a test set through the (defended) API and trains a
kNN or linear classifier on the answers. :func:`defense_cost` runs exactly that with
:mod:`encoder_audit.evaluate` for the undefended encoder and for each defense, and reports the drop,
beside the mean cosine similarity between defended and clean test embeddings (fidelity).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..data.base import ImageDataset, subsample
from ..evaluate import EvalConfig, extract_features, knn_accuracy, linear_probe_accuracy
from ..victim import Encoder
from .output import DefendedEncoder, OutputDefense, parse_defense_spec

log = logging.getLogger(__name__)

DefenseLike = str | OutputDefense | Sequence[str | OutputDefense]




def _label(d: DefenseLike) -> str:
    if isinstance(d, str):
        return d
    if isinstance(d, (list, tuple)):
        return " + ".join(_label(x) for x in d)
    return str(getattr(d, "name", type(d).__name__))


def _build(d: DefenseLike) -> list[OutputDefense]:
    items = list(d) if isinstance(d, (list, tuple)) else [d]
    return [parse_defense_spec(x) if isinstance(x, str) else x for x in items]  # type: ignore[misc]


def defense_cost(
    encoder: Encoder,
    defenses: Sequence[DefenseLike],
    train_ds: ImageDataset,
    test_ds: ImageDataset,
    config: EvalConfig | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Downstream kNN / linear-probe accuracy of honest users under each defense.

    Args:
        encoder: the undefended victim.
        defenses: each a spec (``"noise:sigma=0.1"``, built fresh, so stateful defenses such as
            ``b4b`` start from zero), a defense object, or a list of them (a chain).
        train_ds, test_ds: labelled downstream data (e.g. fashion-mnist train/test).
        config: kNN settings and the caps on train/test images (``EvalConfig``).

    Returns:
        ``{"clean": {"knn", "linear"}, "rows": [{"defense", "knn", "linear", "knn_drop", "linear_drop",
        "cosine", "seconds"}], "n_train", "n_test"}``; drops are clean minus defended, in accuracy points
        (fractions).
    """
    c = config or EvalConfig()
    if train_ds.labels is None or test_ds.labels is None:
        raise ValueError("defense_cost needs labelled train and test sets")
    train, test = subsample(train_ds, c.max_train, c.seed), subsample(test_ds, c.max_test, c.seed + 1)
    ytr, yte = train.labels, test.labels
    assert ytr is not None and yte is not None

    def score(enc: Encoder) -> tuple[dict[str, float], torch.Tensor]:
        ftr, fte = extract_features(enc, train), extract_features(enc, test)
        knn = knn_accuracy(ftr, ytr, fte, yte, k=c.knn_k, temperature=c.knn_temperature)
        lin = linear_probe_accuracy(ftr, ytr, fte, yte, seed=c.seed)
        return {"knn": knn, "linear": lin}, fte

    t0 = time.perf_counter()
    clean, clean_test = score(encoder)
    rows: list[dict[str, Any]] = [{"defense": "none", **clean, "knn_drop": 0.0, "linear_drop": 0.0, "cosine": 1.0,
             "seconds": round(time.perf_counter() - t0, 2)}]  # fmt: skip
    for d in defenses:
        t0 = time.perf_counter()
        acc, fte = score(DefendedEncoder(encoder, _build(d)))
        cosine = float(F.cosine_similarity(fte, clean_test, dim=1).nan_to_num(0.0).mean())
        label = _label(d)
        row: dict[str, Any] = {
            "defense": label,
            **acc,
            "knn_drop": clean["knn"] - acc["knn"],
            "linear_drop": clean["linear"] - acc["linear"],
            "cosine": cosine,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        log.info("defense %s: knn %.4f linear %.4f cosine %.4f", label, acc["knn"], acc["linear"], cosine)
        if progress is not None:
            progress(label)
        rows.append(row)
    return {"clean": clean, "rows": rows, "n_train": len(train), "n_test": len(test)}
