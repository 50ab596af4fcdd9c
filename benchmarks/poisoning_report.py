"""Turn poisoning sweep JSON files into figures (docs/figures/poisoning_*.png) and Markdown tables.

python benchmarks/poisoning_report.py --sweeps a.json b.json --name long --figures docs/figures
python benchmarks/poisoning_report.py --badencoder s0.json s1.json s2.json     # BadEncoder CA / BA / ASR
python benchmarks/poisoning_report.py --defenses s0.json s1.json s2.json       # defenses before / after
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from encoder_audit.attacks.poisoning.plots import aggregate, plot_backdoor, plot_targeted
from encoder_audit.report.aggregate import summarize


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
    st = summarize([float(v) for v in vals])
    return f"{st.mean:.{digits}f} ± {st.std or 0.0:.{digits}f}"


BADENCODER_ROWS = (
    ("CA (clean encoder), normalised probe", "clean_accuracy"),
    ("BA (backdoored), normalised probe", "backdoored_accuracy"),
    ("ASR, normalised probe", "asr"),
    ("base rate: same trigger on the clean encoder, normalised", "asr_clean_encoder"),
    ("CA, raw-feature probe", "clean_accuracy_raw"),
    ("BA, raw-feature probe", "backdoored_accuracy_raw"),
    ("ASR, raw-feature probe", "asr_raw"),
    ("base rate, raw-feature probe", "asr_clean_encoder_raw"),
    ("cosine of triggered images to the reference (backdoored)", "cos_reference"),
    ("cosine of triggered images to the reference (clean)", "cos_reference_clean"),
    ("embedding length, clean images (backdoored)", "norm_clean"),
    ("embedding length, triggered images (backdoored)", "norm_triggered"),
)


def badencoder_table(runs: list[dict]) -> None:
    print("| metric | seeds | mean ± std | per seed |")
    print("|---|---|---|---|")
    for label, k in BADENCODER_ROWS:
        vals = [r["metrics"][k] for r in runs if isinstance(r["metrics"].get(k), (int, float))]
        if vals:
            print(f"| {label} | {len(vals)} | {ms(vals)} | {' / '.join(f'{v:.3f}' for v in vals)} |")
    print(f"\nsteps: {runs[0].get('steps')}; attack wall time: {ms([r['seconds'] for r in runs], 0)} s per run")


def defenses_table(runs: list[dict]) -> None:
    """Filter precision / recall by removal fraction, then the attacks after each defense setting."""
    print("| filter | removed fraction | seeds | flagged | recall | precision | max recall | AUROC |")
    print("|---|---|---|---|---|---|---|---|")
    keys = sorted({(f["defense"], round(f["fraction"], 4), f["at_poison_rate"]) for r in runs for f in r["filters"]})
    for name, q, at_rate in keys:
        fs = [f for r in runs for f in r["filters"] if f["defense"] == name and round(f["fraction"], 4) == q]
        label = f"{100 * q:.1f}%" + (" (= poisoned fraction)" if at_rate else "")
        print(
            f"| {name} | {label} | {len(fs)} | {ms([f['flagged'] for f in fs], 0)} | "
            f"{ms([f['recall_at_flagged'] for f in fs], 2)} | {ms([f['precision_at_flagged'] for f in fs], 2)} | "
            f"{ms([f['max_recall'] for f in fs], 2)} | {ms([f['auroc'] for f in fs], 3)} |"
        )
    cols = ["targeted_success", "backdoor_asr", "clean_zeroshot_top1"]
    print()
    print("| defense | setting | seeds | steps | " + " | ".join(cols) + " | honest pairs removed |")
    print("|---|---|---|---|" + "---|" * len(cols) + "---|")
    before = [r["before"] for r in runs]
    print(
        "| none (poisoned model) | - | "
        + f"{len(before)} | 0 | "
        + " | ".join(ms([b[c] for b in before], 2) for c in cols)
        + " | 0 |"
    )
    settings = list(dict.fromkeys((d["defense"], d["setting"], round(d["value"], 4)) for r in runs for d in r["after"]))
    for name, setting, value in settings:
        ds = [
            d
            for r in runs
            for d in r["after"]
            if (d["defense"], d["setting"], round(d["value"], 4)) == (name, setting, value)
        ]
        shown = f"{setting} {100 * value:.1f}%" if setting == "removed" else f"{setting} {value:g}"
        removed = ms([d.get("clean_removed", 0) for d in ds], 0)
        print(
            f"| {name} | {shown} | {len(ds)} | {ms([d['steps'] for d in ds], 0)} | "
            + " | ".join(ms([d[c] for d in ds], 2) for c in cols)
            + f" | {removed} |"
        )


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
