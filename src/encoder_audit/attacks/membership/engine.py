"""Fit several membership attacks on one shadow and score one victim's members and non-members.

Queries are shared: each image is sent once per view per draw (``features.n_views`` views,
``draws`` independent draws of them) and once clean, whatever the number of attacks. The scores of
the draws are averaged (``MIAScores.scores``) and kept apart (``MIAScores.per_draw``) so the spread
across view seeds can be reported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...data.base import ImageDataset
from ...runs import derive_seed
from ...victim import Encoder
from ..base import metered, query_usage
from ..registry import attack_class
from .base import MembershipAttack, MIAScores
from .features import FeatureConfig, VictimProbe
from .shadow import Shadow

log = logging.getLogger(__name__)

__all__ = ["FittedAttacks", "fit_attacks", "run_attacks", "score_attacks"]


@dataclass
class FittedAttacks:
    """Attacks fitted on one shadow, with their fit times (seconds)."""

    attacks: list[MembershipAttack]
    fit_seconds: dict[str, float]


def fit_attacks(
    shadow: Shadow,
    attacks: Sequence[str],
    *,
    features: FeatureConfig | None = None,
    attack_params: dict[str, dict[str, Any]] | None = None,
    seed: int = 0,
) -> FittedAttacks:
    """Build each attack (view settings from ``features`` for those that use views) and fit it on ``shadow``."""
    from . import create_attack

    features = features or FeatureConfig()
    out: list[MembershipAttack] = []
    seconds: dict[str, float] = {}
    for name in attacks:
        cls = attack_class("membership", name)
        params = dict((attack_params or {}).get(name, {}))
        if cls.uses_views:
            fields = getattr(cls.config_class, "__dataclass_fields__", {})
            for key in ("views", "similarity", "n_views"):
                if key in fields:
                    params.setdefault(key, getattr(features, key))
        attack = create_attack(name, seed=derive_seed(seed, name), **params)
        t0 = time.perf_counter()
        attack.fit(shadow)
        seconds[name] = round(time.perf_counter() - t0, 3)
        out.append(attack)
    return FittedAttacks(out, seconds)


def score_attacks(
    fitted: FittedAttacks,
    victim: Encoder,
    pairs: Mapping[str, tuple[ImageDataset, ImageDataset]],
    *,
    features: FeatureConfig | None = None,
    draws: int = 1,
    seed: int = 0,
    progress: bool | None = False,
) -> tuple[dict[str, list[MIAScores]], dict[str, Any]]:
    """Score each ``(members, nonmembers)`` pair of ``victim`` (members label 1) with every fitted attack.

    A dataset object that appears in several pairs is queried once (per draw) and shared.

    Returns:
        ``({pair name: scores per attack}, usage)``; usage has ``query_images``, ``api_calls`` and
        ``score_seconds`` per attack.
    """
    if draws < 1:
        raise ValueError("draws must be >= 1")
    features = features or FeatureConfig()
    counter = metered(victim)
    before = counter.usage()
    cache: dict[tuple[int, int], VictimProbe] = {}

    def probe(ds: ImageDataset, d: int) -> VictimProbe:
        key = (id(ds), d)
        if key not in cache:
            tag = len({k[0] for k in cache})
            cache[key] = VictimProbe(counter, ds, features, seed=derive_seed(seed, "set", tag, d), progress=progress)
        return cache[key]

    out: dict[str, list[MIAScores]] = {name: [] for name in pairs}
    timing: dict[str, float] = {}
    for attack in fitted.attacks:
        t0 = time.perf_counter()
        # attacks that query no views (clean embedding, norm, pixels) give the same score every draw
        n = draws if attack.uses_views else 1
        for name, (ds_in, ds_out) in pairs.items():
            runs = [attack.infer(probes=(probe(ds_in, d), probe(ds_out, d))) for d in range(n)]
            per_draw = [r.scores for r in runs]
            out[name].append(
                MIAScores(
                    attack.name,
                    np.mean(per_draw, axis=0),
                    runs[0].labels,
                    runs[0].threshold,
                    runs[0].queries_per_image * n,
                    sum(r.seconds for r in runs),
                    extra={"source": attack.source},
                    per_draw=per_draw if n > 1 else [],
                )
            )
        timing[attack.name] = round(time.perf_counter() - t0, 3)
    usage = query_usage(counter, before=before)
    usage["score_seconds"] = timing
    return out, usage


def run_attacks(
    victim: Encoder,
    members: ImageDataset,
    nonmembers: ImageDataset,
    shadow: Shadow,
    attacks: Sequence[str],
    *,
    features: FeatureConfig | None = None,
    attack_params: dict[str, dict[str, Any]] | None = None,
    draws: int = 1,
    seed: int = 0,
    progress: bool | None = False,
) -> tuple[list[MIAScores], dict[str, Any]]:
    """:func:`fit_attacks` on ``shadow`` then :func:`score_attacks` on ``victim``.

    Returns:
        ``(scores per attack, usage)``; usage also has ``fit_seconds`` per attack.
    """
    fitted = fit_attacks(shadow, attacks, features=features, attack_params=attack_params, seed=seed)
    results, usage = score_attacks(
        fitted, victim, {"eval": (members, nonmembers)}, features=features, draws=draws, seed=seed, progress=progress
    )
    usage["fit_seconds"] = fitted.fit_seconds
    for r in results["eval"]:
        log.info("%s: AUC %.3f", r.attack, r.metrics()["auc"])
    return results["eval"], usage
