"""Turn poisoning sweep JSON files into figures (docs/figures/poisoning_*.png) and Markdown tables.

python benchmarks/poisoning_report.py --sweeps a.json b.json --name long --figures docs/figures
python benchmarks/poisoning_report.py --badencoder s0.json s1.json s2.json     # BadEncoder CA / BA / ASR
python benchmarks/poisoning_report.py --defenses s0.json s1.json s2.json       # defenses before / after
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from encoder_audit.attacks.poisoning.plots import aggregate, plot_backdoor, plot_targeted


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweeps", type=Path, nargs="*", default=[])
    p.add_argument("--name", default="sweep")
    p.add_argument("--figures", type=Path, default=Path("docs/figures"))
    p.add_argument("--badencoder", type=Path, nargs="*", default=[], help="poisoning_badencoder.py outputs")
    p.add_argument("--defenses", type=Path, nargs="*", default=[], help="poisoning_defenses.py outputs")
    a = p.parse_args()
    if a.badencoder:
        badencoder_table([json.loads(f.read_text()) for f in a.badencoder])
    if a.defenses:
        defenses_table([json.loads(f.read_text()) for f in a.defenses])
    if a.sweeps:
        sweeps(a)


def ms(vals: list[float], digits: int = 3) -> str:
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.mean(vals):.{digits}f} ± {sd:.{digits}f}"


def badencoder_table(runs: list[dict]) -> None:
    keys = sorted({k for r in runs for k, v in r["metrics"].items() if isinstance(v, (int, float))})
    print("| metric | seeds | mean ± std | per seed |")
    print("|---|---|---|---|")
    for k in keys:
        vals = [r["metrics"][k] for r in runs if isinstance(r["metrics"].get(k), (int, float))]
        print(f"| {k} | {len(vals)} | {ms(vals)} | {' / '.join(f'{v:.3f}' for v in vals)} |")
    print(f"\nattack wall time: {ms([r['seconds'] for r in runs], 0)} s per run")


def defenses_table(runs: list[dict]) -> None:
    cols = ["targeted_success", "targeted_mean_rank", "backdoor_asr", "clean_zeroshot_top1"]
    head = " | ".join(f"{c} before → after" for c in cols)
    print(f"| defense | seeds | {head} | detector AUROC | recall@flagged |")
    print("|---|---|" + "---|" * len(cols) + "---|---|")
    names = list(dict.fromkeys(d["defense"] for r in runs for d in r["defenses"]))
    for name in names:
        ds = [d for r in runs for d in r["defenses"] if d["defense"] == name]
        cells = [f"{ms([d['before'][c] for d in ds], 2)} → {ms([d['after'][c] for d in ds], 2)}" for c in cols]
        det = [d["detection"] for d in ds if "detection" in d]
        auroc = ms([x["auroc"] for x in det], 3) if det else "-"
        recall = ms([x["recall_at_flagged"] for x in det], 2) if det else "-"
        print(f"| {name} | {len(ds)} | " + " | ".join(cells) + f" | {auroc} | {recall} |")


def sweeps(a: argparse.Namespace) -> None:
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
