"""Membership benchmark: EncoderMI-V/S/T and every baseline on leaking and generalising targets, h vs z, early stopping.

One i.i.d. manifest over the Fashion-MNIST training split holds, per seed k, ``members_k`` (32 for the
leaking recipes, 2,000 for ``generalizing``), ``nonmembers_k`` (500) and a shared labelled ``reference``
part. Per seed k:

* the ``overfit`` target (no head, 1,000 epochs) is trained on ``members_k`` with snapshots for the
  early-stopping curve (EncoderMI-T AUC and kNN / linear accuracy per snapshot);
* its shadow is the ``overfit`` target of seed k+1 (same recipe, disjoint images: a cross-trained
  shadow, EncoderMI's all-knowledge setting), fitted on its 32 members vs 32 of its non-members;
* every attack scores the target's 32 members against its 500 non-members (3 draws of 10 views);
* the ``generalizing`` target (2,000 members, 3 epochs) is attacked with the same shadow;
* with ``--heads``, the ``overfit-mlp`` target (SimCLR MLP head) is attacked on h and on z;
* with ``--knowledge``, EncoderMI-V/S/T on the ``overfit`` target with a shadow for each of the paper's 8
  knowledge settings (Liu et al., 2021, Sec. 5.1): pre-training data known (the next seed's Fashion-MNIST
  members) or not (32 members of scikit-learn ``digits``, another dataset), architecture known
  (``cnn-small``) or not (``vgg11-small``, the VGG-11 layout at CPU size), algorithm known (SimCLR,
  T 0.2) or not (MoCo with its own defaults); the shadow otherwise follows the target's recipe (32
  members, 1,000 epochs, no head). EncoderMI-T's AUC does not depend on the shadow (it only sets
  the threshold), so the settings move its balanced accuracy, not its AUC.

    OMP_NUM_THREADS=1 python benchmarks/membership_bench.py --dir runs/mi-bench --seeds 0 1 2 --heads
    OMP_NUM_THREADS=1 python benchmarks/membership_bench.py --dir runs/mi-bench --seeds 0 1 2 --knowledge
    python benchmarks/membership_bench.py --report --rows runs/mi-bench/rows.jsonl

Rows are appended to ``<dir>/rows.jsonl`` (or ``--out``) as they are measured (a re-run skips finished
rows); ``--report`` prints the markdown tables of docs/benchmarks/membership.md from them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encoder_audit.attacks.membership import KNOWLEDGE_SETTINGS, Knowledge, Shadow, shadow_recipe
from encoder_audit.attacks.membership.engine import run_attacks
from encoder_audit.attacks.membership.features import FeatureConfig
from encoder_audit.attacks.membership.metrics import evaluate_scores
from encoder_audit.attacks.membership.targets import RECIPES, Trained, head_encoder, train_encoder
from encoder_audit.audit.membership_config import DEFAULT_ATTACKS
from encoder_audit.data import create_dataset, make_splits
from encoder_audit.evaluate import EvalConfig, evaluate_encoder
from encoder_audit.report.aggregate import summarize
from encoder_audit.runs import derive_seed
from encoder_audit.victim import LocalEncoder

SNAPSHOTS = (100, 250, 500, 750, 1000)
PARAMS = {"encodermi-v": {"epochs": 150}, "encodermi-s": {"epochs": 100}}
ENCODERMI = ("encodermi-v", "encodermi-s", "encodermi-t")


def _splits(full: Any, seeds: list[int], seed_all: int = 0) -> dict[str, Any]:
    sizes: dict[str, int] = {"reference": 300}
    for k in range(max(seeds) + 2):  # every seed up to the last shadow's: one seed alone draws the same parts
        sizes |= {f"members_{k}": 32, f"nonmembers_{k}": 500, f"gen_{k}": 2000}
    m = make_splits(full, sizes, seed=seed_all)
    return {k: m.select(full, k) for k in m.parts}


def _done(path: Path) -> set[tuple[str, int]]:
    if not path.is_file():
        return set()
    return {(r["kind"], r["seed"]) for r in map(json.loads, path.read_text().splitlines())}


def _metrics(results: list[Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for r in results:
        m = evaluate_scores(r.scores, r.labels, r.threshold, bootstrap=1000, seed=0)
        draws = [evaluate_scores(s, r.labels)["auc"] for s in r.per_draw]
        m["auc_draw_std"] = float(np.std(draws, ddof=1)) if len(draws) > 1 else None
        out[r.attack] = m
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("runs/mi-bench"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--heads", action="store_true", help="also the overfit-mlp target on h and z")
    ap.add_argument(
        "--knowledge", action="store_true", help="only the 8 knowledge settings (EncoderMI-V/S/T, overfit target)"
    )
    ap.add_argument("--out", type=Path, default=None, help="rows file (default DIR/rows.jsonl)")
    ap.add_argument("--seed", type=int, default=None, help="one seed (a suite cell); overrides --seeds")
    ap.add_argument("--report", action="store_true", help="print the tables from --rows files and exit")
    ap.add_argument("--rows", type=Path, nargs="*", default=[], help="rows files for --report")
    ap.add_argument("--figure", type=Path, default=None, help="with --report: the early-stopping plot (PNG)")
    args = ap.parse_args()
    if args.report:
        rows = [
            json.loads(x) for p in (args.rows or [args.dir / "rows.jsonl"]) for x in p.read_text().splitlines() if x
        ]
        report(rows)
        if args.figure is not None:
            plot_early_stopping(rows, args.figure)
        return
    if args.seed is not None:
        args.seeds = [args.seed]
    args.dir.mkdir(parents=True, exist_ok=True)
    rows_path = args.out or args.dir / "rows.jsonl"
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    full = create_dataset("fashion-mnist", "train")
    test = create_dataset("fashion-mnist", "test")
    parts = _splits(full, args.seeds)
    feats = FeatureConfig(n_views=10, views="simclr")
    ev = EvalConfig(max_train=2000, max_test=1000)
    cache: dict[tuple[str, int], Trained] = {}

    def trained(kind: str, k: int) -> Trained:
        if (kind, k) not in cache:
            data = parts[f"gen_{k}"] if kind == "generalizing" else parts[f"members_{k}"]
            snaps = SNAPSHOTS if kind == "overfit" else ()
            t0 = time.perf_counter()
            cache[(kind, k)] = train_encoder(data, RECIPES[kind], seed=derive_seed(k, kind), snapshots=snaps)
            print(f"trained {kind} {k} in {time.perf_counter() - t0:.0f} s", flush=True)
        return cache[(kind, k)]

    def shadow(k: int) -> Shadow:
        s = trained("overfit", k + 1)
        return Shadow(
            LocalEncoder(s.net),
            parts[f"members_{k + 1}"],
            parts[f"nonmembers_{k + 1}"].subset(range(32)),
            parts["reference"],
            recipe=RECIPES["overfit"],
            seed=k,
        )

    digits = create_dataset("digits", "train")

    def knowledge_shadow(k: int, kn: Knowledge) -> Shadow:
        """The shadow of seed ``k``'s target for one knowledge setting (all-known: the main benchmark's)."""
        if kn == Knowledge():
            return shadow(k)
        recipe = shadow_recipe(RECIPES["overfit"], kn)
        if kn.data:
            mem, non = parts[f"members_{k + 1}"], parts[f"nonmembers_{k + 1}"].subset(range(32))
            ref = parts["reference"]
        else:
            m = make_splits(digits, {"members": 32, "nonmembers": 32, "reference": 300}, seed=derive_seed(k, "digits"))
            mem, non, ref = (m.select(digits, p) for p in ("members", "nonmembers", "reference"))
        t0 = time.perf_counter()
        net = train_encoder(mem, recipe, seed=derive_seed(k + 1, "overfit")).net
        print(f"trained shadow {kn.label} ({recipe.arch}/{recipe.method}) {k} in {time.perf_counter() - t0:.0f} s")
        return Shadow(LocalEncoder(net), mem, non, ref, recipe=recipe, seed=k)

    if args.knowledge:
        for k in args.seeds:
            for kn in KNOWLEDGE_SETTINGS[::-1]:  # all-known first
                kind = f"knowledge:{kn.label}"
                if (kind, k) in _done(rows_path):
                    continue
                t0 = time.perf_counter()
                res, usage = run_attacks(
                    LocalEncoder(trained("overfit", k).net),
                    parts[f"members_{k}"],
                    parts[f"nonmembers_{k}"],
                    knowledge_shadow(k, kn),
                    ENCODERMI,
                    features=feats,
                    attack_params=PARAMS,
                    draws=3,
                    seed=k,
                )
                row = {"kind": kind, "seed": k, "members": 32, "nonmembers": 500, "h": _metrics(res)}
                row |= {"usage": {"query_images": usage["query_images"]}, "seconds": round(time.perf_counter() - t0, 1)}
                with open(rows_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps({"kind": kind, "seed": k, **{a: row["h"][a]["auc"] for a in ENCODERMI}}), flush=True)
        return

    def attack(victim: Any, members: Any, k: int) -> tuple[dict[str, Any], dict[str, Any]]:
        res, usage = run_attacks(
            victim,
            members,
            parts[f"nonmembers_{k}"],
            shadow(k),
            DEFAULT_ATTACKS,
            features=feats,
            attack_params=PARAMS,
            draws=3,
            seed=k,
        )
        return _metrics(res), {"query_images": usage["query_images"]}

    kinds = ["overfit", "generalizing"] + (["overfit-mlp"] if args.heads else [])
    for kind in kinds:
        for k in args.seeds:
            if (kind, k) in _done(rows_path):
                continue
            t0 = time.perf_counter()
            target = trained(kind, k)
            members = parts[f"gen_{k}"] if kind == "generalizing" else parts[f"members_{k}"]
            members = members.subset(range(min(len(members), 500)))
            row: dict[str, Any] = {"kind": kind, "seed": k, "members": len(members), "nonmembers": 500}
            row["h"], row["usage"] = attack(LocalEncoder(target.net), members, k)
            if kind == "overfit-mlp":
                row["z"], _ = attack(LocalEncoder(head_encoder(target.net, target.head)), members, k)
            if kind == "overfit":
                row["early_stopping"] = []
                for e, (net, _) in sorted(target.snapshots.items()):
                    v = LocalEncoder(net)
                    res, _ = run_attacks(
                        v,
                        members,
                        parts[f"nonmembers_{k}"],
                        shadow(k),
                        ("encodermi-t",),
                        features=feats,
                        draws=3,
                        seed=k,
                    )
                    down = evaluate_encoder(v, test.subset(range(0, 2000)), test.subset(range(5000, 6000)), ev)
                    row["early_stopping"].append(
                        {
                            "epoch": e,
                            "auc": evaluate_scores(res[0].scores, res[0].labels)["auc"],
                            "knn": down["knn"],
                            "linear": down["linear"],
                        }
                    )
            row["seconds"] = round(time.perf_counter() - t0, 1)
            with open(rows_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps({"kind": kind, "seed": k, "encodermi-t": row["h"]["encodermi-t"]["auc"]}), flush=True)


def _ms(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    s = summarize(values)
    return f"{s.mean:.3f} ± {s.std or 0.0:.3f}"


def plot_early_stopping(rows: list[dict[str, Any]], path: Path) -> None:
    """EncoderMI-T AUC and kNN / linear accuracy vs epoch (mean and std over seeds), one plot."""
    from matplotlib.figure import Figure

    es = [r["early_stopping"] for r in rows if r["kind"] == "overfit" and r.get("early_stopping")]
    if not es:
        return
    epochs = [p["epoch"] for p in es[0]]
    fig = Figure(figsize=(5.2, 3.6), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    for key, label, style in (
        ("auc", "EncoderMI-T AUC", "o-"),
        ("knn", "kNN accuracy", "s--"),
        ("linear", "linear accuracy", "^:"),
    ):
        vals = np.array([[p[key] for p in run] for run in es])
        mean, sd = vals.mean(0), vals.std(0, ddof=1) if len(vals) > 1 else np.zeros(len(epochs))
        ax.errorbar(epochs, mean, yerr=sd, fmt=style, capsize=3, label=label)
    ax.axhline(0.5, color="k", lw=0.7, ls="--")
    ax.set_xlabel("pre-training epoch (32 members, no head)")
    ax.set_ylabel("AUC / accuracy")
    ax.set_title(f"Early stopping on the leaking recipe ({len(es)} seeds)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def report(rows: list[dict[str, Any]]) -> None:
    for kind in ("overfit", "generalizing", "overfit-mlp"):
        sel = [r for r in rows if r["kind"] == kind]
        if not sel:
            continue
        print(f"\n### {kind} ({len(sel)} seeds: {', '.join(str(r['seed']) for r in sel)})\n")
        outs = ["h", "z"] if kind == "overfit-mlp" else ["h"]
        for out in outs:
            print(f"\noutput {out}\n")
            print("| attack | bal. acc. | precision | recall | AUC | AUC 95% CI (per seed) | TPR@1%FPR |")
            print("|---|---|---|---|---|---|---|")
            for a in DEFAULT_ATTACKS:
                ms = [r[out][a] for r in sel if a in r[out]]
                ci = "; ".join(f"[{m['auc_lo']:.2f}, {m['auc_hi']:.2f}]" for m in ms)
                print(
                    f"| {a} | {_ms([m['balanced_accuracy'] for m in ms])} | {_ms([m['precision'] for m in ms])} | "
                    f"{_ms([m['recall'] for m in ms])} | {_ms([m['auc'] for m in ms])} | {ci} | "
                    f"{_ms([m['tpr_at_1pct_fpr'] for m in ms])} |"
                )
    know = [r for r in rows if r["kind"].startswith("knowledge:")]
    if know:
        print("\n### knowledge settings (overfit target; shadow data / architecture / algorithm known + or not -)\n")
        print(
            "| setting | seeds | "
            + " | ".join(f"{a} AUC" for a in ENCODERMI)
            + " | "
            + " | ".join(f"{a} bal. acc." for a in ENCODERMI)
            + " |"
        )
        print("|---|---|" + "---|" * (2 * len(ENCODERMI)))
        for kn in KNOWLEDGE_SETTINGS[::-1]:
            sel = [r for r in know if r["kind"] == f"knowledge:{kn.label}"]
            if sel:
                cells = [_ms([r["h"][a]["auc"] for r in sel]) for a in ENCODERMI]
                cells += [_ms([r["h"][a]["balanced_accuracy"] for r in sel]) for a in ENCODERMI]
                print(f"| {kn.label} | {len(sel)} | " + " | ".join(cells) + " |")
    es = [r for r in rows if r["kind"] == "overfit" and r.get("early_stopping")]
    if es:
        print("\n### early stopping (overfit recipe, EncoderMI-T)\n")
        print("| epoch | AUC | kNN acc. | linear acc. |")
        print("|---|---|---|---|")
        for i, point in enumerate(es[0]["early_stopping"]):
            pts = [r["early_stopping"][i] for r in es]
            print(
                f"| {point['epoch']} | {_ms([p['auc'] for p in pts])} | {_ms([p['knn'] for p in pts])} | "
                f"{_ms([p['linear'] for p in pts])} |"
            )


if __name__ == "__main__":
    main()
