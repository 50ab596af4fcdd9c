# ruff: noqa: E501
"""Tables (Markdown) and the budget plot from the JSONL rows of stealing_sweep.py / stealing_defenses.py.

    python benchmarks/stealing_report.py --rows /tmp/steal_bench/rows_s*.jsonl \
        --defense-rows /tmp/steal_bench/defense_rows.jsonl --figure docs/figures/stealing_budget.png
"""

from __future__ import annotations

import argparse
import json
import statistics
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
    ap.add_argument("--rows", type=Path, nargs="*", default=[])
    ap.add_argument("--defense-rows", type=Path, nargs="*", default=[])
    ap.add_argument("--figure", type=Path, default=None)
    args = ap.parse_args()
    rows = _load(args.rows)
    keys = [
        "fashion-mnist/knn", "fashion-mnist/linear", "digits/knn", "digits/linear", "mean/cosine", "mean/cosine_centered",
        "mean/agreement", "query_images", "api_calls", "wall_seconds", "train_seconds", "images_per_second",
        "fashion-mnist/target_knn", "fashion-mnist/random_init_knn", "digits/target_knn", "digits/random_init_knn",
        "fashion-mnist/target_linear", "fashion-mnist/random_init_linear", "digits/target_linear", "digits/random_init_linear",
    ]  # fmt: skip
    s = summarize(rows, keys) if rows else []
    if s:
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
    if args.defense_rows:
        groups: dict[tuple[str, str], list[dict]] = {}
        for r in _load(args.defense_rows):
            groups.setdefault((r["defense"], r["method"]), []).append(r)

        def ms(vals: list[float], pct: bool = False) -> str:
            f = 100.0 if pct else 1.0
            m = statistics.mean(vals) * f
            sd = (statistics.stdev(vals) if len(vals) > 1 else 0.0) * f
            return f"{m:.1f} ± {sd:.1f}" if pct else f"{m:.3f} ± {sd:.3f}"

        print(
            "\n| defense | method | seeds | honest kNN F-MNIST % | honest linear % | honest cos to clean | "
            "stolen kNN F-MNIST % | stolen fidelity centred cos | stolen agreement |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for (defense, method), rs in groups.items():
            c = [r["cost"] for r in rs]
            print(f"| {defense} | {method} | {len(rs)} | {ms([x['knn_defended'] for x in c], True)} | "
                  f"{ms([x['linear_defended'] for x in c], True)} | {ms([x['cosine_to_clean'] for x in c])} | "
                  f"{ms([r['fashion-mnist/knn'] for r in rs], True)} | {ms([r['mean/cosine_centered'] for r in rs])} | "
                  f"{ms([r['mean/agreement'] for r in rs])} |")  # fmt: skip
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
