"""Evaluate the membership benchmark: EncoderMI-V/S/T and every baseline, per trial and checkpoint.

Reads the encoders written by ``benchmarks/membership_train.py`` (trial k: target = model k, shadow =
model k+1 mod K, same recipe, disjoint i.i.d. data), writes ``results.json`` and the figures.

    python benchmarks/membership_eval.py --out runs/mi-bench --figures docs/figures
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
from encoder_audit.data import SplitManifest, create_dataset
from encoder_audit.evaluate import EvalConfig, evaluate_encoder
from encoder_audit.io import atomic_write_json
from encoder_audit.victim import load_encoder

PARAMS = {"encodermi-v": {"epochs": 150}, "encodermi-s": {"epochs": 100}}


def _snapshots(folder: Path) -> dict[int, Path]:
    return {int(p.stem[5:]): p for p in sorted(folder.glob("epoch*.safetensors"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--figures", type=Path, default=None)
    ap.add_argument("--kinds", default="overfit,generalizing")
    ap.add_argument("--max-eval", type=int, default=500)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = create_dataset("fashion-mnist", "train")
    test = create_dataset("fashion-mnist", "test")
    down_train = ds.subset(np.arange(0, 60000, 30))  # 2,000 images for kNN / linear probes
    manifest = SplitManifest.load(args.out / "splits.json")
    reference = manifest.select(ds, "reference")
    out: dict = {"kinds": {}}
    for kind in args.kinds.split(","):
        folders = sorted(p for p in args.out.glob(f"{kind}_*") if p.is_dir() and _snapshots(p))
        k_models = len(folders)
        if k_models < 2:
            print(f"{kind}: need at least 2 trained models, have {k_models}")
            continue
        trials = []
        for k in range(k_models):
            s = (k + 1) % k_models
            mem = manifest.select(ds, f"{kind}_members_{k}")
            non = manifest.select(ds, f"{kind}_nonmembers_{k}")
            if len(mem) > args.max_eval:
                mem = mem.subset(np.sort(np.random.default_rng(k).choice(len(mem), args.max_eval, replace=False)))
            s_mem = manifest.select(ds, f"{kind}_members_{s}")
            s_non = manifest.select(ds, f"{kind}_nonmembers_{s}")
            if len(s_mem) > len(s_non):
                s_mem = s_mem.subset(np.sort(np.random.default_rng(s).choice(len(s_mem), len(s_non), replace=False)))
            snaps_t, snaps_s = _snapshots(args.out / f"{kind}_{k}"), _snapshots(args.out / f"{kind}_{s}")
            rows = []
            for epoch in sorted(set(snaps_t) & set(snaps_s)):
                victim = load_encoder(snaps_t[epoch])
                shadow = Shadow(load_encoder(snaps_s[epoch]), s_mem, s_non, reference, seed=s)
                t0 = time.perf_counter()
                results, usage = run_attacks(victim, mem, non, shadow, DEFAULT_ATTACKS, attack_params=PARAMS, seed=k)
                wall = time.perf_counter() - t0
                down = evaluate_encoder(victim, down_train, test, EvalConfig(max_train=2000, max_test=1000))
                row = {
                    "epoch": epoch,
                    "knn": down["knn"],
                    "linear": down["linear"],
                    "metrics": {r.attack: r.metrics() for r in results},
                    "table": results_table(results),
                    "usage": {k2: v for k2, v in usage.items()},
                    "wall_seconds": wall,
                }
                for r in results:
                    row[f"{r.attack}/auc"] = row["metrics"][r.attack]["auc"]
                    row[f"{r.attack}/accuracy"] = row["metrics"][r.attack]["accuracy"]
                rows.append(row)
                print(
                    kind,
                    k,
                    epoch,
                    {r.attack: round(row[f"{r.attack}/auc"], 3) for r in results},
                    f"lin {down['linear']:.3f} knn {down['knn']:.3f}",
                    flush=True,
                )
                last = results
            save_scores(last, args.out / f"scores_{kind}_{k}.npz")
            if args.figures is not None and k == 0:
                plot_roc(
                    {r.attack: (r.scores, r.labels) for r in last},
                    args.figures / f"membership_roc_{kind}.png",
                    title=f"{kind} cnn-small SimCLR target, trial 0 ({len(mem)} members / {len(non)} non-members)",
                )
            # cost: n views + scoring for one fresh pass, per audited image
            victim = load_encoder(snaps_t[max(snaps_t)])
            t0 = time.perf_counter()
            VictimProbe(victim, mem, FeatureConfig()).views()
            per_img = (time.perf_counter() - t0) / len(mem)
            trials.append(
                {
                    "trial": k,
                    "shadow_model": s,
                    "rows": rows,
                    "query_seconds_per_image": per_img,
                    "members": len(mem),
                    "nonmembers": len(non),
                }
            )
            atomic_write_json(args.out / "results.json", {**out, "kinds": {**out["kinds"], kind: trials}})
        out["kinds"][kind] = trials
        if args.figures is not None and kind == "overfit":
            epochs = [r["epoch"] for r in trials[0]["rows"]]
            mean_rows = []
            for i, e in enumerate(epochs):
                keys = [key for key in trials[0]["rows"][i] if "/" in key] + ["knn", "linear"]
                means = {key: float(np.mean([t["rows"][i][key] for t in trials])) for key in keys}
                mean_rows.append({"epoch": e, **means})
            plot_tradeoff(
                mean_rows,
                args.figures / "membership_earlystop.png",
                title=f"early stopping, cnn-small SimCLR, mean of {len(trials)} trials",
            )
            out["earlystop_mean"] = mean_rows
    atomic_write_json(args.out / "results.json", out)
    print(json.dumps({"results": str(args.out / "results.json")}))


if __name__ == "__main__":
    main()
