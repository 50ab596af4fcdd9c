"""Evaluate the membership benchmark: EncoderMI-V/S/T and every baseline, per trial and checkpoint.

Reads the encoders written by ``benchmarks/membership_train.py`` (trial k: target = model k, shadow =
model k+1 mod K, same recipe, disjoint i.i.d. data). Every attack runs at the last checkpoint; earlier
checkpoints (the early-stopping sweep) run EncoderMI-T, EncoderMI-V and the two-view baseline.

    python benchmarks/membership_eval.py --dir runs/mi-bench --kind overfit --trial 0   # one process per trial
    python benchmarks/membership_eval.py --dir runs/mi-bench --merge --figures docs/figures   # [--merge FILE ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from encoder_audit.attacks.membership import Shadow, save_scores
from encoder_audit.attacks.membership.audit import DEFAULT_ATTACKS, results_table, run_attacks
from encoder_audit.attacks.membership.earlystop import plot_tradeoff
from encoder_audit.attacks.membership.features import FeatureConfig, VictimProbe
from encoder_audit.attacks.membership.metrics import plot_roc
from encoder_audit.attacks.membership.targets import RECIPES
from encoder_audit.data import SplitManifest, create_dataset
from encoder_audit.evaluate import EvalConfig, evaluate_encoder
from encoder_audit.io import atomic_write_json
from encoder_audit.victim import load_encoder

PARAMS = {"encodermi-v": {"epochs": 150}, "encodermi-s": {"epochs": 100}}
SWEEP_ATTACKS = ("encodermi-t", "encodermi-v", "two-view")


def _snapshots(folder: Path) -> dict[int, Path]:
    return {int(p.stem[5:]): p for p in sorted(folder.glob("epoch*.safetensors"))}


def run_trial(
    out: Path, kind: str, k: int, max_eval: int, epochs: list[int] | None, full_at: int | None, dest: Path | None
) -> None:
    ds = create_dataset("fashion-mnist", "train")
    test = create_dataset("fashion-mnist", "test")
    down_train = ds.subset(np.arange(0, 60000, 30))  # 2,000 images for kNN / linear probes
    manifest = SplitManifest.load(out / "splits.json")
    reference = manifest.select(ds, "reference")
    folders = sorted(p for p in out.glob(f"{kind}_*") if p.is_dir())
    s = (k + 1) % len(folders)
    mem = manifest.select(ds, f"{kind}_members_{k}")
    non = manifest.select(ds, f"{kind}_nonmembers_{k}")
    if len(mem) > max_eval:
        mem = mem.subset(np.sort(np.random.default_rng(k).choice(len(mem), max_eval, replace=False)))
    s_mem = manifest.select(ds, f"{kind}_members_{s}")
    s_non = manifest.select(ds, f"{kind}_nonmembers_{s}")
    if len(s_mem) > len(s_non):
        s_mem = s_mem.subset(np.sort(np.random.default_rng(s).choice(len(s_mem), len(s_non), replace=False)))
    snaps_t, snaps_s = _snapshots(out / f"{kind}_{k}"), _snapshots(out / f"{kind}_{s}")
    available = sorted(set(snaps_t) & set(snaps_s))
    todo = [e for e in (epochs or available) if e in available]
    final = full_at or RECIPES[kind].epochs
    rows = []
    for epoch in todo:
        victim = load_encoder(snaps_t[epoch])
        shadow = Shadow(load_encoder(snaps_s[epoch]), s_mem, s_non, reference, seed=s)
        attacks = DEFAULT_ATTACKS if epoch == final else SWEEP_ATTACKS
        t0 = time.perf_counter()
        results, usage = run_attacks(victim, mem, non, shadow, attacks, attack_params=PARAMS, seed=k)
        wall = time.perf_counter() - t0
        down = evaluate_encoder(victim, down_train, test, EvalConfig(max_train=2000, max_test=1000))
        row = {
            "epoch": epoch,
            "knn": down["knn"],
            "linear": down["linear"],
            "metrics": {r.attack: r.metrics() for r in results},
            "table": results_table(results),
            "usage": usage,
            "wall_seconds": wall,
        }
        rows.append(row)
        print(kind, k, epoch, {r.attack: round(row["metrics"][r.attack]["auc"], 3) for r in results}, flush=True)
        if epoch == final:
            save_scores(results, out / f"scores_{kind}_{k}.npz")
    victim = load_encoder(snaps_t[max(todo)])
    t0 = time.perf_counter()
    VictimProbe(victim, mem, FeatureConfig()).views()  # 10 views of every member, fresh
    per_img = (time.perf_counter() - t0) / len(mem)
    atomic_write_json(
        dest or out / f"eval_{kind}_{k}_{min(todo)}.json",
        {
            "kind": kind,
            "trial": k,
            "shadow_model": s,
            "rows": rows,
            "query_seconds_per_image": per_img,
            "members": len(mem),
            "nonmembers": len(non),
            "final_epoch": max(todo),
        },
    )


def merge(out: Path, figures: Path | None, files: list[Path] | None = None) -> None:
    ds = create_dataset("fashion-mnist", "train")
    summary: dict = {}
    for kind in ("overfit", "generalizing"):
        by_trial: dict[int, dict] = {}
        parts = [json.loads(p.read_text()) for p in (files or sorted(out.glob("**/eval_*.json")))]
        for part in (q for q in parts if q["kind"] == kind):
            t = by_trial.setdefault(part["trial"], {**part, "rows": []})
            t["rows"] += part["rows"]
            if part["final_epoch"] >= t["final_epoch"]:
                t.update({k2: v for k2, v in part.items() if k2 != "rows"})
        trials = [by_trial[k] for k in sorted(by_trial)]
        for t in trials:
            t["rows"].sort(key=lambda r: r["epoch"])
        if not trials:
            continue
        last = max(t["rows"][-1]["epoch"] for t in trials)
        trials = [t for t in trials if t["rows"][-1]["epoch"] == last]  # only complete trials
        final = [t["rows"][-1] for t in trials]
        attacks = list(final[0]["metrics"])
        table = {}
        for a in attacks:
            ms = [f["metrics"][a] for f in final]
            table[a] = {
                key: (float(np.mean([m[key] for m in ms])), float(np.std([m[key] for m in ms])))
                for key in ("accuracy", "precision", "recall", "auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr")
            }
        summary[kind] = {
            "trials": len(trials),
            "final_epoch": [t["final_epoch"] for t in trials],
            "members": trials[0]["members"],
            "nonmembers": trials[0]["nonmembers"],
            "table": table,
            "linear": [f["linear"] for f in final],
            "knn": [f["knn"] for f in final],
            "query_images": [f["usage"]["query_images"] for f in final],
            "query_seconds_per_image": [t["query_seconds_per_image"] for t in trials],
            "timing": [f["usage"]["timing"] for f in final],
        }
        if figures is not None and kind == "overfit":
            z = np.load(out / f"scores_{kind}_{trials[0]['trial']}.npz")
            curves = {a: (z[f"{a}/scores"], z["labels"]) for a in attacks}
            plot_roc(
                curves,
                figures / "membership_roc.png",
                title=f"overfit cnn-small SimCLR target, trial 0 ({trials[0]['members']} members)",
            )
            by_epoch = [{r["epoch"]: r for r in t["rows"]} for t in trials]
            epochs = sorted(set.union(*(set(b) for b in by_epoch)))
            mean_rows = []
            for e in epochs:
                rs = [b[e] for b in by_epoch if e in b]
                row = {"epoch": e, "trials": len(rs)}
                for key in ("knn", "linear"):
                    row[key] = float(np.mean([r[key] for r in rs]))
                for a in SWEEP_ATTACKS:
                    for m in ("auc", "accuracy", "tpr_at_1pct_fpr"):
                        row[f"{a}/{m}"] = float(np.mean([r["metrics"][a][m] for r in rs]))
                mean_rows.append(row)
            plot_tradeoff(
                mean_rows,
                figures / "membership_earlystop.png",
                title=f"early stopping: cnn-small SimCLR, {trials[0]['members']} members, mean of {len(trials)} trials",
            )
            summary["earlystop"] = mean_rows
    del ds
    atomic_write_json(out / "summary.json", summary)
    print(markdown(summary))


def markdown(summary: dict) -> str:
    """The benchmark's tables: attacks per target kind, downstream accuracy, costs, early stopping."""
    lines: list[str] = []
    for kind in ("overfit", "generalizing"):
        if kind not in summary:
            continue
        sm = summary[kind]
        lines += [
            f"### {kind}: {sm['trials']} trial(s), checkpoint epoch {sm['final_epoch']}, "
            f"{sm['members']} members / {sm['nonmembers']} non-members each",
            "",
            "| attack | accuracy % | precision % | recall % | AUC | TPR@1%FPR % | TPR@0.1%FPR % |",
            "|---|---|---|---|---|---|---|",
        ]
        for attack, t in sm["table"].items():
            cells = []
            for key in ("accuracy", "precision", "recall", "auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr"):
                m, sd = t[key]
                cells.append(f"{m:.3f} ± {sd:.3f}" if key == "auc" else f"{100 * m:.1f} ± {100 * sd:.1f}")
            lines.append(f"| {attack} | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"Downstream accuracy of the targets: linear {', '.join(f'{v:.1%}' for v in sm['linear'])}; "
            f"kNN {', '.join(f'{v:.1%}' for v in sm['knn'])}. Query images per trial: {sm['query_images']}; "
            f"seconds to query 10 views of one image: {', '.join(f'{v:.4f}' for v in sm['query_seconds_per_image'])}.",
            "",
        ]
    if "earlystop" in summary:
        lines += [
            "### Early stopping (overfit recipe, mean over trials)",
            "",
            "| epoch | trials | kNN % | linear % | EncoderMI-T AUC | EncoderMI-V AUC | two-view AUC "
            "| EncoderMI-T acc % |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in summary["earlystop"]:
            lines.append(
                f"| {r['epoch']} | {r['trials']} | {100 * r['knn']:.1f} | {100 * r['linear']:.1f} | "
                f"{r['encodermi-t/auc']:.3f} | {r['encodermi-v/auc']:.3f} | {r['two-view/auc']:.3f} | "
                f"{100 * r['encodermi-t/accuracy']:.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("runs/mi-bench"), help="splits and models of the benchmark")
    ap.add_argument("--out", type=Path, default=None, help="this trial's JSON (default DIR/eval_KIND_TRIAL_EPOCH.json)")
    ap.add_argument("--kind", default="overfit")
    ap.add_argument("--trial", type=int, default=0)
    ap.add_argument("--epochs", default=None, help="comma-separated checkpoints (default: all available)")
    ap.add_argument("--max-eval", type=int, default=500)
    ap.add_argument("--full-at", type=int, default=None, help="checkpoint that runs every attack (default: last)")
    ap.add_argument("--merge", nargs="*", type=Path, default=None, help="merge trials (these JSONs, or all in DIR)")
    ap.add_argument("--figures", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.merge is not None:
        merge(args.dir, args.figures, args.merge or None)
    else:
        epochs = [int(e) for e in args.epochs.split(",")] if args.epochs else None
        run_trial(args.dir, args.kind, args.trial, args.max_eval, epochs, args.full_at, args.out)


if __name__ == "__main__":
    main()
