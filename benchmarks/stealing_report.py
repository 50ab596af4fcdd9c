# ruff: noqa: E501
"""Tables (Markdown) and the budget plot from the JSONL rows of stealing_sweep.py / stealing_defenses.py.

    python benchmarks/stealing_report.py --rows /tmp/steal_bench/rows_s*.jsonl \
        --defense-rows /tmp/steal_bench/defense_rows.jsonl --figure docs/figures/stealing_budget.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from encoder_audit.attacks.stealing.sweep import plot_sweep, summarize


def _load(paths: list[Path]) -> list[dict]:
    rows = []
    for p in paths:
        if p.is_file():
            rows += [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    return rows


def pm(e: dict, k: str, pct: bool = False) -> str:
    if e.get(k) is None:
        return "-"
    f = 100.0 if pct else 1.0
    return f"{e[k] * f:.1f} ± {e[k + '_std'] * f:.1f}" if pct else f"{e[k]:.3f} ± {e[k + '_std']:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=Path, nargs="+", required=True)
    ap.add_argument("--defense-rows", type=Path, default=None)
    ap.add_argument("--figure", type=Path, default=None)
    args = ap.parse_args()
    rows = _load(args.rows)
    keys = [
        "fashion-mnist/knn", "fashion-mnist/linear", "digits/knn", "digits/linear", "mean/cosine", "mean/cosine_centered",
        "mean/agreement", "query_images", "api_calls", "wall_seconds", "train_seconds", "images_per_second",
        "fashion-mnist/target_knn", "fashion-mnist/random_init_knn", "digits/target_knn", "digits/random_init_knn",
        "fashion-mnist/target_linear", "fashion-mnist/random_init_linear", "digits/target_linear", "digits/random_init_linear",
    ]  # fmt: skip
    s = summarize(rows, keys)
    print(
        "| budget (images charged) | method | N unique | epochs | API calls | seeds | kNN F-MNIST % | linear F-MNIST % | "
        "kNN digits % | fidelity cos | fidelity centred cos | head agreement | wall s | train img/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for e in s:
        print(f"| {e['budget']:,} | {e['method']} | {e['n']:,} | {e['epochs']} | {e['api_calls']:.0f} | {e['seeds']} | "
              f"{pm(e, 'fashion-mnist/knn', True)} | {pm(e, 'fashion-mnist/linear', True)} | {pm(e, 'digits/knn', True)} | "
              f"{pm(e, 'mean/cosine')} | {pm(e, 'mean/cosine_centered')} | {pm(e, 'mean/agreement')} | "
              f"{e['wall_seconds']:.0f} | {e['images_per_second']:.0f} |")  # fmt: skip
    if s:
        e = s[0]
        print(f"\nTarget: kNN F-MNIST {e['fashion-mnist/target_knn']:.1%}, linear {e['fashion-mnist/target_linear']:.1%}; "
              f"digits kNN {e['digits/target_knn']:.1%}, linear {e['digits/target_linear']:.1%}. Random-init cnn-small: "
              f"kNN F-MNIST {e['fashion-mnist/random_init_knn']:.1%}, linear {e['fashion-mnist/random_init_linear']:.1%}; "
              f"digits kNN {e['digits/random_init_knn']:.1%}, linear {e['digits/random_init_linear']:.1%}.")  # fmt: skip
    if args.defense_rows is not None:
        drows = _load([args.defense_rows])
        print(
            "\n| defense | method | honest kNN F-MNIST % | honest linear % | honest cos to clean | stolen kNN F-MNIST % | "
            "stolen fidelity centred cos | stolen agreement |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for r in drows:
            c = r["cost"]
            print(f"| {r['defense']} | {r['method']} | {c['knn_defended']:.1%} | {c['linear_defended']:.1%} | "
                  f"{c['cosine_to_clean']:.3f} | {r['fashion-mnist/knn']:.1%} | {r['mean/cosine_centered']:.3f} | "
                  f"{r['mean/agreement']:.3f} |")  # fmt: skip
    if args.figure is not None and rows:
        plot_sweep(
            rows,
            args.figure,
            dataset="fashion-mnist",
            title="quick victim (SimCLR cnn-small, F-MNIST), mean ± std over seeds",
        )
        print(f"\nfigure: {args.figure}")


if __name__ == "__main__":
    main()
