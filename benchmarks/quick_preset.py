"""Time and accuracy of the quick pre-training preset vs. a random-init encoder.

    python benchmarks/quick_preset.py [--seeds 0 1 2] [--method simclr]

Runs `encoder-audit pretrain --preset quick` (SimCLR cnn-small on 20k Fashion-MNIST images) for each
seed and reports wall time of training, of training + evaluation, and kNN / linear-probe accuracy of
the trained and the random-init encoder (10k probe-training images, full 10k test set).
Target: training in <= 3 minutes on 2 cores, kNN at least 4 points above random init.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from encoder_audit.report.aggregate import summarize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--method", default="simclr")
    args = ap.parse_args()
    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            t = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "encoder_audit",
                    "pretrain",
                    "--preset",
                    "quick",
                    "--method",
                    args.method,
                    "--seed",
                    str(seed),
                    "--out",
                    str(out),
                    "--no-progress",
                    "-q",
                ],
                check=True,
            )
            total = time.perf_counter() - t
            res = json.loads((out / "results.json").read_text())
            ev = res["evaluation"]["fashion-mnist"]
            rows.append(
                {
                    "seed": seed,
                    "train_s": res["train"]["seconds"],
                    "total_s": round(total, 1),
                    "knn": ev["encoder"]["knn"],
                    "linear": ev["encoder"]["linear"],
                    "random_knn": ev["random_init"]["knn"],
                    "random_linear": ev["random_init"]["linear"],
                }
            )
            print(json.dumps(rows[-1]), flush=True)

    def ms(key: str, scale: float = 1.0) -> str:
        s = summarize([r[key] * scale for r in rows])
        return f"{s.mean:.1f} ± {s.std or 0.0:.1f}"

    print("\n| method | train s | train+eval s | kNN % | linear % | random kNN % | random linear % |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.method} | {ms('train_s')} | {ms('total_s')} | {ms('knn', 100)} | {ms('linear', 100)} | "
        f"{ms('random_knn', 100)} | {ms('random_linear', 100)} |"
    )


if __name__ == "__main__":
    main()
