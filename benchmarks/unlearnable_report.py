"""Render the unlearnable-examples benchmark JSON files as Markdown tables (and one PNG figure).

    python benchmarks/unlearnable_report.py --results /tmp/ul_*.json --countermeasures /tmp/ul_cm_*.json \
        [--figure docs/figures/unlearnable_label_agnostic.png] > tables.md
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from encoder_audit.report.aggregate import summarize

ORDER = ["clean", "random", "lsp", "em-s", "em-c", "tap", "uc", "uc-all", "uc-clip", "lsp-agn", "em-c-agn", "tap-agn"]
LABELINGS = ["true", "coarse", "pseudo", "ssl"]


def merge(paths: list[Path]) -> dict[int, dict[str, Any]]:
    """Per seed (``config.seed`` of each file): methods -> {"trainer": {labeling: run}, "protection": record}."""
    seeds: dict[int, dict[str, Any]] = {}
    paths = [q for p in paths for q in (sorted(p.glob("**/*.json")) if p.is_dir() else [p])]
    for p in paths:
        if not p.is_file():
            continue
        d = json.loads(p.read_text())
        methods = seeds.setdefault(int(d.get("config", {}).get("seed", 0)), {})
        for name, entry in d.get("methods", {}).items():
            m = methods.setdefault(name, {"trainer": {}, "protection": entry.get("protection", {})})
            m["trainer"].update(entry.get("trainer", {}))
    return seeds


def ms(vals: list[float], scale: float = 100.0, digits: int = 1) -> str:
    s = summarize(vals)
    return f"{scale * s.mean:.{digits}f} ± {scale * (s.std or 0.0):.{digits}f}"


def cell(runs: list[dict[str, Any]]) -> str:
    """``final mean ± std (peak mean)`` over seeds, in %."""
    if not runs:
        return "–"
    return f"{ms([r['final'] for r in runs])} ({100 * statistics.mean(r['peak'] for r in runs):.1f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, nargs="+", required=True, help="result JSONs (or folders of them)")
    ap.add_argument("--countermeasures", type=Path, nargs="*", default=[])
    ap.add_argument("--figure", type=Path, default=None)
    args = ap.parse_args()
    seeds = merge(args.results)
    every = {n for methods in seeds.values() for n in methods}
    names = [n for n in ORDER if n in every] + sorted(n for n in every if n not in ORDER)

    def runs(name: str, lab: str) -> list[dict[str, Any]]:
        return [m[name]["trainer"][lab] for m in seeds.values() if lab in m.get(name, {}).get("trainer", {})]

    print(f"### Trainer clean test accuracy (%), final mean ± std over {len(seeds)} seed(s) (peak), by labeling\n")
    print("| protection | seeds | " + " | ".join(LABELINGS) + " |")
    print("|---|---|" + "---|" * len(LABELINGS))
    for n in names:
        k = sum(1 for m in seeds.values() if n in m)
        print(f"| {n} | {k} | " + " | ".join(cell(runs(n, lab)) for lab in LABELINGS) + " |")
    print("\n### Perceptibility (PNG-written files) and cost, mean over seeds\n")
    print("| protection | budget | L-inf (/255) | L2 mean | PSNR dB | SSIM mean | groups-label AMI | craft time s |")
    print("|---|---|---|---|---|---|---|---|")
    for n in names:
        recs = [m[n]["protection"] for m in seeds.values() if n in m and m[n]["protection"].get("perceptibility")]
        if not recs:
            continue
        p, pcs = recs[0], [r["perceptibility"] for r in recs]
        budget = f"{p['norm']} {p['eps'] * 255:.1f}/255" if p["norm"] == "linf" else f"l2 {p['eps']:.2f}"
        amis = [r["group_label_ami"] for r in recs if isinstance(r.get("group_label_ami"), (int, float))]
        print(
            f"| {n} | {budget} | {max(pc['linf_levels'] for pc in pcs)} | "
            f"{statistics.mean(pc['l2_mean'] for pc in pcs):.2f} | "
            f"{statistics.mean(pc['psnr_db'] for pc in pcs):.1f} | "
            f"{statistics.mean(pc['ssim_mean'] for pc in pcs):.3f} | "
            f"{f'{statistics.mean(amis):.3f}' if amis else '–'} | {ms([r.get('seconds', 0) for r in recs], 1, 0)} |"
        )
    cms = [json.loads(p.read_text()) for p in args.countermeasures if p.is_file()]
    if cms:
        cols = sorted({c for d in cms for row in d["table"].values() for c in row})
        rows = list(dict.fromkeys(n for d in cms for n in d["table"]))
        print(f"\n### Countermeasures (trainer uses true labels), clean test accuracy (%), {len(cms)} seed(s)\n")
        print("| protection | none | " + " | ".join(cols) + " |")
        print("|---|---|" + "---|" * len(cols))
        for n in [n for n in ORDER if n in rows] + [n for n in rows if n not in ORDER]:
            per = [cell([d["table"][n][c] for d in cms if c in d["table"].get(n, {})]) for c in cols]
            print(f"| {n} | {cell(runs(n, 'true'))} | " + " | ".join(per) + " |")
    if args.figure is not None:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8, 3.4))
        ax = fig.add_subplot(1, 1, 1)
        shown = [n for n in names if all(runs(n, lab) for lab in LABELINGS[:3])]
        w = 0.8 / max(len(shown), 1)
        for j, n in enumerate(shown):
            xs = [i + j * w for i in range(3)]
            finals = [[r["final"] for r in runs(n, lab)] for lab in LABELINGS[:3]]
            errs = [statistics.stdev(f) if len(f) > 1 else 0.0 for f in finals]
            ax.bar(xs, [statistics.mean(f) for f in finals], w, yerr=errs, capsize=2, label=n)
        ax.set_xticks([i + w * (len(shown) - 1) / 2 for i in range(3)], LABELINGS[:3])
        ax.set_ylabel("clean test accuracy (final)")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, ncol=4)
        ax.set_title(f"Trainer on protected Fashion-MNIST, by trainer labeling (mean ± std, {len(seeds)} seeds)")
        fig.tight_layout()
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.figure, dpi=100)


if __name__ == "__main__":
    main()
