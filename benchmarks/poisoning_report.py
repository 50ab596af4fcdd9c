"""Turn poisoning sweep JSON files into figures (docs/figures/poisoning_*.png) and Markdown tables.

python benchmarks/poisoning_report.py --sweeps a.json b.json --name long --figures docs/figures
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from encoder_audit.attacks.poisoning.plots import aggregate, plot_backdoor, plot_targeted


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweeps", type=Path, nargs="+", required=True)
    p.add_argument("--name", default="sweep")
    p.add_argument("--figures", type=Path, default=Path("docs/figures"))
    a = p.parse_args()
    rows = [r for f in a.sweeps for r in json.loads(f.read_text())["rows"]]
    plot_targeted(rows, a.figures / f"poisoning_{a.name}_targeted.png")
    plot_backdoor(rows, a.figures / f"poisoning_{a.name}_backdoor.png")
    t = aggregate(
        rows, "targeted_poisons_per_target", ["targeted_success", "targeted_mean_rank", "clean_zeroshot_top1"]
    )
    print("| k per target | rate per target | seeds | success | mean rank of y' | clean zero-shot |")
    print("|---|---|---|---|---|---|")
    for r in t:
        rate = 100 * r["targeted_poisons_per_target"] / r["train_pairs"]
        print(
            f"| {r['targeted_poisons_per_target']} | {rate:.3f}% | {r['seeds']} | {r['targeted_success']:.2f} "
            f"± {r['targeted_success_std']:.2f} | {r['targeted_mean_rank']:.2f} | {r['clean_zeroshot_top1']:.3f} |"
        )
    b = aggregate(
        rows,
        "backdoor_poisons",
        [
            "backdoor_asr",
            "backdoor_baseline_target_rate",
            "backdoor_zscore",
            "backdoor_zscore_var",
            "clean_zeroshot_top1",
        ],
    )
    print()
    print("| m | rate | seeds | ASR | no-trigger rate | z-score (std) | z-score (var) | clean zero-shot |")
    print("|---|---|---|---|---|---|---|---|")
    for r in b:
        rate = 100 * r["backdoor_poisons"] / r["train_pairs"]
        print(
            f"| {r['backdoor_poisons']} | {rate:.2f}% | {r['seeds']} | {r['backdoor_asr']:.3f} ± "
            f"{r['backdoor_asr_std']:.3f} | {r['backdoor_baseline_target_rate']:.3f} | {r['backdoor_zscore']:.2f} | "
            f"{r['backdoor_zscore_var']:.2f} | {r['clean_zeroshot_top1']:.3f} ± {r['clean_zeroshot_top1_std']:.3f} |"
        )


if __name__ == "__main__":
    main()
