"""Query-budget sweep: every method at matched numbers of query images sent to the victim.

A budget B is what the victim is charged (query images). Each method turns it into a query set size:
Conventional and StolenEncoder use N = B clean images, RDA N = B / P images (P views each), Cont-Steal
N = B / epochs images (fresh views every epoch). Query sets are seeded random subsets of the
attacker's pool, drawn per seed. One plot shows accuracy and fidelity against B, seeds as error bars.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.base import ImageDataset
from ...io import atomic_write
from ...runs import derive_seed
from ...victim import Encoder
from . import create_attack
from .base import StealingAttack
from .evaluate import FeatureCache, StealEvalConfig, evaluate_stealing
from .presets import STEALING_PRESETS, StealingPreset, epochs_for

log = logging.getLogger(__name__)

__all__ = ["SweepPoint", "plan_attack", "plot_sweep", "run_point", "run_sweep", "summarize"]


@dataclass(frozen=True)
class SweepPoint:
    """One planned run: ``method`` with ``n`` query images for ``budget`` victim images."""

    method: str
    budget: int
    n: int
    attack: StealingAttack


def plan_attack(
    method: str, budget: int, preset: str | StealingPreset = "quick", *, seed: int = 0, **overrides: Any
) -> SweepPoint:
    """The attack and query-set size that spend at most ``budget`` query images.

    Raises:
        ValueError: the budget buys fewer than 2 query images for this method.
    """
    p = STEALING_PRESETS[preset] if isinstance(preset, str) else preset
    opts: dict[str, Any] = {"surrogate": p.surrogate, "seed": seed, **p.options.get(method, {}), **overrides}
    probe = create_attack(method, **{**opts, "epochs": p.epochs})
    per_image = probe.expected_queries(1)
    n = budget // per_image
    if n < 2:
        raise ValueError(f"a budget of {budget} buys {n} query images for {method} ({per_image} per image)")
    if "epochs" not in overrides:
        opts["epochs"] = epochs_for(p, method, n, probe.views_per_image())
    return SweepPoint(method, budget, n, create_attack(method, **opts))


def _subset(pool: ImageDataset, n: int, seed: int) -> ImageDataset:
    if n > len(pool):
        raise ValueError(f"the query pool has {len(pool)} images; {n} were asked for")
    g = torch.Generator().manual_seed(derive_seed(seed, "query-subset"))
    return pool.subset(torch.randperm(len(pool), generator=g)[:n].sort().values)


def run_point(
    point: SweepPoint,
    victim: Encoder,
    pool: ImageDataset,
    eval_sets: dict[str, tuple[ImageDataset, ImageDataset]],
    *,
    seed: int,
    eval_config: StealEvalConfig,
    cache: FeatureCache,
    target: Encoder | None = None,
    random_init: Encoder | None = None,
    progress: bool | None = False,
) -> dict[str, Any]:
    """Run one attack and evaluate it; a flat JSON-serialisable row.

    ``victim`` is what the attacker queries (possibly defended); ``target`` the undefended encoder
    the surrogate is compared with (default: ``victim``).
    """
    queries = _subset(pool, point.n, seed)
    t0 = time.perf_counter()
    result = point.attack.extract(victim, queries, budget=point.budget, progress=progress)
    wall = time.perf_counter() - t0
    ev = evaluate_stealing(
        result.encoder(), target or victim, eval_sets, eval_config, random_init=random_init, cache=cache
    )
    row: dict[str, Any] = {
        "method": point.method,
        "budget": point.budget,
        "seed": seed,
        "n": point.n,
        "epochs": point.attack.config.epochs,
        "query_images": result.usage["query_images"],
        "api_calls": result.usage["api_calls"],
        "wall_seconds": round(wall, 2),
        "train_seconds": round(result.train_seconds, 2),
        "query_seconds": round(result.query_seconds, 2),
        "train_images": result.train_images,
        "images_per_second": round(result.images_per_second, 1),
        "final_loss": result.history[-1]["loss"] if result.history else None,
    }
    for name in eval_sets:
        d = ev[name]
        row[f"{name}/knn"] = d["surrogate"]["knn"]
        row[f"{name}/linear"] = d["surrogate"]["linear"]
        row[f"{name}/cosine"] = d["cosine"]
        row[f"{name}/cosine_centered"] = d["cosine_centered"]
        row[f"{name}/agreement"] = d["agreement"]
        for who in ("target", "random_init"):
            if who in d:
                row[f"{name}/{who}_knn"] = d[who]["knn"]
                row[f"{name}/{who}_linear"] = d[who]["linear"]
    row["mean/cosine"] = ev["mean"]["cosine"]
    row["mean/cosine_centered"] = ev["mean"]["cosine_centered"]
    row["mean/agreement"] = ev["mean"]["agreement"]
    row["_result"] = result  # removed before serialisation; lets callers save the surrogate
    return row


def run_sweep(
    victim: Encoder,
    pool: ImageDataset,
    eval_sets: dict[str, tuple[ImageDataset, ImageDataset]],
    *,
    methods: Sequence[str] = ("conventional", "stolenencoder", "contsteal", "rda"),
    budgets: Sequence[int] = (500, 5_000),
    seeds: Sequence[int] = (0, 1, 2),
    preset: str | StealingPreset = "quick",
    eval_config: StealEvalConfig | None = None,
    on_row: Any = None,
    progress: bool | None = False,
) -> list[dict[str, Any]]:
    """Every method x budget x seed; rows as :func:`run_point` (without the ``_result`` key).

    ``on_row(row)`` is called after each run (e.g. to append it to a JSONL file).
    """
    p = STEALING_PRESETS[preset] if isinstance(preset, str) else preset
    ec = eval_config or StealEvalConfig(max_train=p.eval_max_train, max_test=p.eval_max_test)
    cache = FeatureCache()
    rows = []
    for budget in budgets:
        for method in methods:
            for seed in seeds:
                try:
                    point = plan_attack(method, budget, preset, seed=seed)
                except ValueError as exc:
                    log.warning("skipping %s at budget %d: %s", method, budget, exc)
                    continue
                row = run_point(
                    point, victim, pool, eval_sets, seed=seed, eval_config=ec, cache=cache, progress=progress
                )
                row.pop("_result", None)
                log.info(
                    "%s B=%d seed=%d N=%d: %s",
                    method,
                    budget,
                    seed,
                    point.n,
                    {k: row[k] for k in row if "/" in k and "mean" in k},
                )
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    return rows


def summarize(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Mean and std over seeds per (method, budget) for ``keys``."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["budget"]), []).append(r)
    out = []
    for (method, budget), rs in groups.items():
        entry: dict[str, Any] = {
            "method": method,
            "budget": budget,
            "seeds": len(rs),
            "n": rs[0]["n"],
            "epochs": rs[0]["epochs"],
        }
        for k in keys:
            vals = np.array([r[k] for r in rs if r.get(k) is not None], dtype=float)
            entry[k] = float(vals.mean()) if len(vals) else None
            entry[k + "_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        out.append(entry)
    return sorted(out, key=lambda e: (e["budget"], e["method"]))


def plot_sweep(rows: Sequence[dict[str, Any]], path: str | Path, *, dataset: str, title: str = "") -> Path:
    """Accuracy (kNN) and fidelity (centred cosine) vs. query images, mean +- std over seeds."""
    from matplotlib.figure import Figure

    summary = summarize(
        rows, [f"{dataset}/knn", "mean/cosine_centered", f"{dataset}/target_knn", f"{dataset}/random_init_knn"]
    )
    fig = Figure(figsize=(9, 3.6), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    for method in sorted({e["method"] for e in summary}):
        es = sorted((e for e in summary if e["method"] == method), key=lambda e: e["budget"])
        x = [e["budget"] for e in es]
        ax1.errorbar(
            x,
            [e[f"{dataset}/knn"] for e in es],
            yerr=[e[f"{dataset}/knn_std"] for e in es],
            marker="o",
            capsize=3,
            label=method,
        )
        ax2.errorbar(
            x,
            [e["mean/cosine_centered"] for e in es],
            yerr=[e["mean/cosine_centered_std"] for e in es],
            marker="o",
            capsize=3,
            label=method,
        )
    tk = [e[f"{dataset}/target_knn"] for e in summary if e.get(f"{dataset}/target_knn") is not None]
    rk = [e[f"{dataset}/random_init_knn"] for e in summary if e.get(f"{dataset}/random_init_knn") is not None]
    if tk:
        ax1.axhline(tk[0], color="k", ls="--", lw=1, label="target")
    if rk:
        ax1.axhline(rk[0], color="gray", ls=":", lw=1, label="random init")
    for ax, ylabel in ((ax1, f"kNN accuracy ({dataset})"), (ax2, "fidelity: centred cosine (mean of eval sets)")):
        ax.set_xscale("log")
        ax.set_xlabel("query images sent to the victim")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
