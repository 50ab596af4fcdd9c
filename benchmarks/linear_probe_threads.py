"""Linear-probe fit time with the BLAS thread pool at its default vs. limited to one thread.

    python benchmarks/linear_probe_threads.py [--train 1000] [--repeats 3]

Features of a random-init cnn-small on Fashion-MNIST; both settings fit the same probe in the same
process, alternating, so the ratio is measured under the same load. Prints one JSON line per repeat
and the median ratio (default / single-threaded).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_info, threadpool_limits

from encoder_audit.data import create_dataset, subsample
from encoder_audit.evaluate import extract_features, random_init_baseline


def _fit(x: np.ndarray, y: np.ndarray) -> float:
    t = time.perf_counter()
    make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=0)).fit(x, y)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    ds = subsample(create_dataset("fashion-mnist", "train"), args.train, seed=0)
    x = extract_features(random_init_baseline("cnn-small", (1, 28, 28), seed=0), ds).numpy()
    y = ds.labels.numpy()
    blas = [(i["internal_api"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]
    ratios = []
    for r in range(args.repeats):
        default = _fit(x, y)
        with threadpool_limits(limits=1, user_api="blas"):
            single = _fit(x, y)
        ratios.append(default / single)
        print(json.dumps({"repeat": r, "default_s": round(default, 3), "single_s": round(single, 3), "blas": blas}))
    print(json.dumps({"median_ratio_default_over_single": round(statistics.median(ratios), 2), "train": args.train}))


if __name__ == "__main__":
    main()
