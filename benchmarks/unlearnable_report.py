"""Render the unlearnable-examples benchmark JSON files as Markdown tables (and one PNG figure).

    python benchmarks/unlearnable_report.py --results /tmp/ul_*.json --countermeasures /tmp/ul_cm.json \
        [--figure docs/figures/unlearnable_label_agnostic.png] > tables.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ORDER = ["clean", "random", "lsp", "em-s", "em-c", "tap", "uc", "uc-all", "uc-clip", "lsp-agn", "em-c-agn", "tap-agn"]
LABELINGS = ["true", "coarse", "pseudo", "ssl"]


def merge(paths: list[Path]) -> dict[str, Any]:
    methods: dict[str, Any] = {}
    config: dict[str, Any] = {}
    for p in paths:
        if not p.is_file():
            continue
        d = json.loads(p.read_text())
        config = config or d.get("config", {})
        for name, entry in d.get("methods", {}).items():
            m = methods.setdefault(name, {"trainer": {}, "protection": entry.get("protection", {})})
            m["trainer"].update(entry.get("trainer", {}))
    return {"config": config, "methods": methods}


def cell(r: dict[str, Any] | None) -> str:
    return "–" if r is None else f"{100 * r['final']:.1f} ({100 * r['peak']:.1f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, nargs="+", required=True)
    ap.add_argument("--countermeasures", type=Path, default=None)
    ap.add_argument("--figure", type=Path, default=None)
    args = ap.parse_args()
    data = merge(args.results)
    methods = data["methods"]
    names = [n for n in ORDER if n in methods] + [n for n in methods if n not in ORDER]
    print("### Trainer clean test accuracy (%), final (peak), by trainer labeling\n")
    print("| protection | " + " | ".join(LABELINGS) + " |")
    print("|---|" + "---|" * len(LABELINGS))
    for n in names:
        tr = methods[n]["trainer"]
        print(f"| {n} | " + " | ".join(cell(tr.get(lab)) for lab in LABELINGS) + " |")
    print("\n### Perceptibility (PNG-written files) and cost\n")
    print("| protection | budget | L-inf (/255) | L2 mean | PSNR dB | SSIM mean | groups-label AMI | craft time s |")
    print("|---|---|---|---|---|---|---|---|")
    for n in names:
        p = methods[n].get("protection", {})
        pc = p.get("perceptibility")
        if not pc:
            continue
        budget = f"{p['norm']} {p['eps'] * 255:.1f}/255" if p["norm"] == "linf" else f"l2 {p['eps']:.2f}"
        print(
            f"| {n} | {budget} | {pc['linf_levels']} | {pc['l2_mean']:.2f} | {pc['psnr_db']:.1f} | "
            f"{pc['ssim_mean']:.3f} | {p.get('group_label_ami', '–')} | {p.get('seconds', 0):.0f} |"
        )
    if args.countermeasures is not None and args.countermeasures.is_file():
        cm = json.loads(args.countermeasures.read_text())["table"]
        cols = sorted({c for row in cm.values() for c in row})
        print("\n### Countermeasures (trainer uses true labels), clean test accuracy (%), final (peak)\n")
        print("| protection | none | " + " | ".join(cols) + " |")
        print("|---|---|" + "---|" * len(cols))
        for n in [n for n in ORDER if n in cm] + [n for n in cm if n not in ORDER]:
            none = methods.get(n, {}).get("trainer", {}).get("true")
            print(f"| {n} | {cell(none)} | " + " | ".join(cell(cm[n].get(c)) for c in cols) + " |")
    if args.figure is not None:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8, 3.4))
        ax = fig.add_subplot(1, 1, 1)
        shown = [n for n in names if all(lab in methods[n]["trainer"] for lab in LABELINGS[:3])]
        w = 0.8 / max(len(shown), 1)
        for j, n in enumerate(shown):
            xs = [i + j * w for i in range(3)]
            ax.bar(xs, [methods[n]["trainer"][lab]["final"] for lab in LABELINGS[:3]], w, label=n)
        ax.set_xticks([i + w * (len(shown) - 1) / 2 for i in range(3)], LABELINGS[:3])
        ax.set_ylabel("clean test accuracy (final)")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, ncol=4)
        ax.set_title("Trainer on protected Fashion-MNIST (1000 images), by trainer labeling")
        fig.tight_layout()
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.figure, dpi=100)


if __name__ == "__main__":
    main()
