# ruff: noqa: E501
"""Tables (Markdown) and figures of docs/benchmarks/stealing.md from the JSONL rows of stealing_compare.py.

    python benchmarks/stealing_report.py --rows docs/benchmarks/data/stealing/*.jsonl \
        --protoviews docs/benchmarks/data/stealing/protoviews.json --figures docs/figures

Every table states images charged, API calls, unique images, optimizer steps and forward passes;
numbers are mean ± sample std over seeds, claims add a 95% t-interval of the per-seed difference.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from encoder_audit.attacks.stealing.compare import Reference, RunRecord, interval, plot_curve
from encoder_audit.audit.family import result_from_json
from encoder_audit.report.aggregate import summarize

DATASETS = ("fashion-mnist", "digits")
LABEL = {"linear": "linear probe %", "knn20": "kNN k=20 %", "cosine_centered": "fidelity centred cos"}
SHORT = {"fashion-mnist": "F-MNIST", "digits": "digits"}


def load(paths: Sequence[Path]) -> tuple[list[RunRecord], dict[str, Reference], dict[str, dict], list[str]]:
    runs: list[RunRecord] = []
    refs: dict[str, Reference] = {}
    costs: dict[str, dict] = {}
    skipped: list[str] = []
    for p in paths:
        if not p.is_file() or p.suffix != ".jsonl":
            continue
        for line in p.read_text().splitlines():
            if not line.strip():
                continue
            d = json.loads(line)
            kind = d.pop("kind")
            if kind == "run":
                tag = d.pop("tag", "")
                rec = result_from_json(RunRecord, d)
                rec.options = {"tag": tag} if tag else {}
                runs.append(rec)
            elif kind == "reference":
                refs[d["dataset"]] = result_from_json(Reference, d)
            elif kind == "cost":
                costs[d["defense"]] = d
            elif kind == "skipped" and d["message"] not in skipped:
                skipped.append(d["message"])
    return runs, refs, costs, skipped


def tag(r: RunRecord) -> str:
    return str(r.options.get("tag", ""))


def ms(vals: Sequence[float], pct: bool = False, d: int = 3) -> str:
    vals = [v for v in vals if v == v]
    if not vals:
        return "-"
    f = 100.0 if pct else 1.0
    s = summarize(vals)
    m = s.mean * f
    if s.std is None:
        return f"{m:.1f}" if pct else f"{m:.{d}f}"
    sd = s.std * f
    return f"{m:.1f} ± {sd:.1f}" if pct else f"{m:.{d}f} ± {sd:.{d}f}"


def cost_cells(rs: Sequence[RunRecord]) -> str:
    def one(f: str) -> str:
        vals = sorted({getattr(r, f) for r in rs})
        return f"{vals[0]:,}" if len(vals) == 1 else f"{min(vals):,}-{max(vals):,}"

    epochs = statistics.fmean(r.epochs for r in rs)
    return (
        f"{one('n_drawn')} | {one('unique_images')} | {one('query_images')} | {one('api_calls')} | {one('steps')} | "
        f"{one('forward_passes')} | {epochs:.2f}"
    )


COST_HEAD = "N drawn | unique images | images charged | API calls | optimizer steps | forward passes | epochs"


def sep(header: str) -> str:
    """The Markdown separator row of ``header``."""
    return "|" + "---|" * (header.count("|") - 1)


def groups(runs: Sequence[RunRecord], key: Any) -> dict[Any, list[RunRecord]]:
    out: dict[Any, list[RunRecord]] = {}
    for r in runs:
        out.setdefault(key(r), []).append(r)
    return out


def quality_table(rs_by_key: dict[Any, list[RunRecord]], key_head: str, dataset: str) -> list[str]:
    s = SHORT[dataset]
    lines = [
        f"| {key_head} | method | seeds | {COST_HEAD} | kNN k=20 {s} % | kNN k=200 {s} % | linear {s} % | fidelity centred cos {s} | fidelity cos {s} | coordinate fidelity {s} | prediction agreement {s} | wall s |",
    ]
    lines.append(sep(lines[0]))
    for (k, method), rs in sorted(rs_by_key.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        kcell = f"{k:,}" if isinstance(k, int) else str(k)
        lines.append(
            f"| {kcell} | {method} | {len(rs)} | {cost_cells(rs)} | {ms([r.score(dataset, 'knn20') for r in rs], True)} | "
            f"{ms([r.score(dataset, 'knn200') for r in rs], True)} | {ms([r.score(dataset, 'linear') for r in rs], True)} | "
            f"{ms([r.score(dataset, 'cosine_centered') for r in rs])} | {ms([r.score(dataset, 'cosine') for r in rs])} | "
            f"{ms([r.score(dataset, 'target_head_agreement') for r in rs], True)} | "
            f"{ms([r.score(dataset, 'prediction_agreement') for r in rs], True)} | {statistics.fmean(r.wall_seconds for r in rs):.0f} |"
        )
    return lines


def paired(
    a: Sequence[RunRecord], b: Sequence[RunRecord], dataset: str, metric: str
) -> tuple[float, float | None, float | None, float | None, int]:
    by_seed = {r.seed: r for r in b}
    diffs = [r.score(dataset, metric) - by_seed[r.seed].score(dataset, metric) for r in a if r.seed in by_seed]
    m, sd, lo, hi = interval(diffs)
    return m, sd, lo, hi, len(diffs)


def fmt_diff(t: tuple[float, float | None, float | None, float | None, int], pct: bool) -> str:
    m, _sd, lo, hi, n = t
    f, d = (100.0, 2) if pct else (1.0, 3)
    if lo is None or hi is None:
        return f"{m * f:+.{d}f} (n={n})"
    return f"{m * f:+.{d}f} [{lo * f:+.{d}f}, {hi * f:+.{d}f}] (n={n})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=Path, nargs="+", required=True)
    ap.add_argument("--protoviews", type=Path, default=None)
    ap.add_argument("--figures", type=Path, default=None)
    ap.add_argument("--budgets", type=int, nargs="+", default=[100, 500, 2500, 25000], help="budgets of the curve")
    args = ap.parse_args()
    runs, refs, costs, skipped = load(args.rows)
    out: list[str] = []
    head = "fashion-mnist"
    plain = [r for r in runs if r.defense == "none" and not tag(r)]
    curve = [r for r in plain if r.arm == "images" and r.level in args.budgets]

    out.append("### Reference: the target and a random-init cnn-small (no query)\n")
    out.append(
        "| encoder | dataset | kNN bank | kNN k=1% of bank % | kNN k=20 % | kNN k=200 % | linear % | fidelity centred cos |"
    )
    out.append("|---|---|---|---|---|---|---|---|")
    for ds, ref in refs.items():
        t = ref.target
        out.append(
            f"| target | {ds} | {ref.n_train:,} | {t.knn:.1%} (k={t.knn_k}) | {t.knn20:.1%} | {t.knn200:.1%} | {t.linear:.1%} | 1 |"
        )
        if ref.random_init is not None:
            r = ref.random_init
            out.append(
                f"| random init | {ds} | {ref.n_train:,} | {r.knn:.1%} | {r.knn20:.1%} | {r.knn200:.1%} | {r.linear:.1%} | {ref.random_init_fidelity:.3f} |"
            )

    for ds in DATASETS:
        out.append(f"\n### Equal images charged, equal optimizer steps: {ds}\n")
        out += quality_table(groups(curve, lambda r: (r.level, r.method)), "budget (images charged)", ds)

    # The paper's arm: every method on the same N = 2,500 images. Conventional / StolenEncoder / RDA runs with
    # N = 2,500 are the equal-images runs at 2,500 / 2,500 / 25,000 charged (same draw, same steps); Cont-Steal's
    # equal-N runs are separate (its equal-images N differs).
    n_eq = 2_500
    eq = [r for r in plain if r.n_drawn == n_eq and r.method != "contsteal" and r.arm == "images"]
    eq += [r for r in plain if r.arm == "equal_n" and r.level == n_eq]
    for ds in DATASETS:
        out.append(f"\n### Equal distinct images N = {n_eq:,} (the paper's arm), equal optimizer steps: {ds}\n")
        out += quality_table(groups(eq, lambda r: (n_eq, r.method)), "N", ds)

    # Claims.
    out.append("\n### The paper's two claims, tested here (3 seeds, 95% t-interval of the per-seed difference)\n")
    out.append("| claim | comparison | metric | RDA | other | RDA - other [95% CI] |")
    out.append("|---|---|---|---|---|---|")
    eq_by = groups(eq, lambda r: r.method)
    rda_eq = eq_by.get("rda", [])
    baselines = {m: rs for m, rs in eq_by.items() if m != "rda"}
    claims: dict[str, Any] = {}
    if rda_eq and baselines:
        best = max(baselines, key=lambda m: statistics.fmean(r.score(head, "linear") for r in baselines[m]))
        for metric, pct_ in (("linear", True), ("knn20", True), ("cosine_centered", False)):
            for ds in DATASETS:
                d = paired(rda_eq, baselines[best], ds, metric)
                claims[f"best/{ds}/{metric}"] = d
                out.append(
                    f"| +1.22% over the best baseline | equal N = {n_eq:,}: RDA ({rda_eq[0].query_images:,} charged) vs {best} "
                    f"({baselines[best][0].query_images:,} charged), best by mean linear on {SHORT[head]} | {LABEL[metric]} {SHORT[ds]} | "
                    f"{ms([r.score(ds, metric) for r in rda_eq], pct_)} | {ms([r.score(ds, metric) for r in baselines[best]], pct_)} | {fmt_diff(d, pct_)} |"
                )
    cs = [r for r in plain if r.method == "contsteal" and r.arm == "equal_n" and r.level == n_eq]
    rda_1pct = None
    if cs:
        charged = cs[0].query_images
        target_budget = charged // 100
        cands = sorted({r.level for r in curve if r.method == "rda"}, key=lambda b: abs(b - target_budget))
        if cands:
            rda_1pct = cands[0]
            rr = [r for r in curve if r.method == "rda" and r.level == rda_1pct]
            for metric, pct_ in (("linear", True), ("knn20", True), ("cosine_centered", False)):
                for ds in DATASETS:
                    d = paired(rr, cs, ds, metric)
                    claims[f"1pct/{ds}/{metric}"] = d
                    out.append(
                        f"| RDA at 1% of Cont-Steal's queries | RDA at {rr[0].query_images:,} charged (N={rr[0].n_drawn:,}) vs Cont-Steal "
                        f"at N = {n_eq:,} ({charged:,} charged) | {LABEL[metric]} {SHORT[ds]} | {ms([r.score(ds, metric) for r in rr], pct_)} | "
                        f"{ms([r.score(ds, metric) for r in cs], pct_)} | {fmt_diff(d, pct_)} |"
                    )
    # Query efficiency: budget at which each method reaches 95% of the target's kNN, and 50% / 90% of its gain.
    out.append("\n### Query efficiency (Fashion-MNIST, kNN k=20, mean over seeds)\n")
    ref = refs.get(head)
    if ref is not None and ref.random_init is not None:
        t, r0 = ref.target.knn20, ref.random_init.knn20
        out.append(f"Target kNN {t:.1%}, random init {r0:.1%}: 95% of the target is {0.95 * t:.1%}.\n")
        out.append(
            "| method | budgets run | first budget with kNN >= 95% of target | first budget recovering >= 50% of the gain over random init | >= 90% of the gain |"
        )
        out.append("|---|---|---|---|---|")
        for method, rs in sorted(groups(curve, lambda r: r.method).items()):
            by_level = {
                lv: statistics.fmean(x.score(head, "knn20") for x in g)
                for lv, g in groups(rs, lambda r: r.level).items()
            }
            levels = sorted(by_level)

            def first(th: float, by_level: dict[int, float] = by_level, levels: list[int] = levels) -> str:
                hit = [lv for lv in levels if by_level[lv] >= th]
                return f"{hit[0]:,}" if hit else f"not reached by {levels[-1]:,}"

            out.append(
                f"| {method} | {', '.join(f'{lv:,}' for lv in levels)} | {first(0.95 * t)} | {first(r0 + 0.5 * (t - r0))} | {first(r0 + 0.9 * (t - r0))} |"
            )

    # Defenses.
    dfs = [r for r in runs if r.defense != "none"]
    if dfs:
        out.append("\n### Defenses at 2,500 images charged, equal optimizer steps (honest user: Fashion-MNIST)\n")
        out.append(
            f"| defense | method | seeds | {COST_HEAD} | honest kNN % | honest linear % | honest cos to clean | stolen kNN k=20 % | stolen linear % | stolen fidelity centred cos |"
        )
        out.append(sep(out[-1]))
        base = [r for r in curve if r.level == 2_500 and r.method in {x.method for x in dfs}]
        for (defense, method), rs in sorted(groups(base + dfs, lambda r: (r.defense, r.method)).items()):
            c = costs.get(defense)
            if c is not None:
                row = next(x for x in c["rows"] if x["defense"] == defense)
                honest = f"{row['knn']:.1%} | {row['linear']:.1%} | {row['cosine']:.3f}"
            elif defense == "none" and costs:
                clean = next(iter(costs.values()))["clean"]
                honest = f"{clean['knn']:.1%} | {clean['linear']:.1%} | 1.000"
            else:
                honest = "- | - | -"
            out.append(
                f"| {defense} | {method} | {len(rs)} | {cost_cells(rs)} | {honest} | {ms([r.score(head, 'knn20') for r in rs], True)} | "
                f"{ms([r.score(head, 'linear') for r in rs], True)} | {ms([r.score(head, 'cosine_centered') for r in rs])} |"
            )

    # Ablation.
    abl = [r for r in runs if tag(r)]
    if abl:
        base = [r for r in curve if r.method == "rda" and r.level == 2_500]
        for r in base:
            r.options = {"tag": "rda-prototype P=10 crop 0.9"}
        out.append("\n### Prototype views: P and crop scale at equal N = 250 (RDA, equal optimizer steps)\n")
        out.append(
            f"| recipe | seeds | {COST_HEAD} | prototype norm (median) | kNN k=20 F-MNIST % | linear F-MNIST % | fidelity centred cos F-MNIST | fidelity centred cos digits |"
        )
        out.append(sep(out[-1]))
        for t_, rs in sorted(groups(abl + base, tag).items()):
            out.append(
                f"| {t_} | {len(rs)} | {cost_cells(rs)} | {ms([r.prototype_norm_median or math.nan for r in rs])} | "
                f"{ms([r.score(head, 'knn20') for r in rs], True)} | {ms([r.score(head, 'linear') for r in rs], True)} | "
                f"{ms([r.score(head, 'cosine_centered') for r in rs])} | {ms([r.score('digits', 'cosine_centered') for r in rs])} |"
            )
    if args.protoviews is not None and args.protoviews.is_file():
        pv = json.loads(args.protoviews.read_text())
        out.append(
            f"\n### Prototype statistics on the victim ({pv['images']} Fashion-MNIST test images, auditor-side)\n"
        )
        out.append("| recipe | crop | P | norm median | norm mean | cosine to clean query median | mean |")
        out.append("|---|---|---|---|---|---|---|")
        for row in pv["rows"]:
            out.append(
                f"| {row['recipe']} | {row['crop'] or 'recipe'} | {row['P']} | {row['norm_median']:.3f} | {row['norm_mean']:.3f} | {row['cos_clean_median']:.3f} | {row['cos_clean_mean']:.3f} |"
            )
    if skipped:
        out.append("\nNot run (could not be planned under the rule):\n")
        out += [f"- {m}" for m in skipped]
    print("\n".join(out))

    if args.figures is not None and curve:
        args.figures.mkdir(parents=True, exist_ok=True)
        plot_curve(curve, args.figures / "stealing_budget.png", dataset=head, refs=list(refs.values()),
                   title="quick victim, equal optimizer steps (100) per run, mean ± std over seeds")  # fmt: skip
        print(f"\nfigure: {args.figures / 'stealing_budget.png'}")
        if claims:
            _claims_figure(claims, args.figures / "stealing_claims.png")
            print(f"figure: {args.figures / 'stealing_claims.png'}")


def _claims_figure(claims: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.2), dpi=100)
    axes = fig.subplots(1, 2)
    for ax, prefix, title in (
        (axes[0], "best", "RDA - best baseline at equal N = 2,500"),
        (axes[1], "1pct", "RDA at ~1% of Cont-Steal's images - Cont-Steal"),
    ):
        labels, ms_, errs = [], [], []
        for ds in DATASETS:
            for metric in ("linear", "knn20"):
                d = claims.get(f"{prefix}/{ds}/{metric}")
                if d is None:
                    continue
                m, _, lo, hi, _ = d
                labels.append(f"{metric}\n{SHORT[ds]}")
                ms_.append(100 * m)
                errs.append(0.0 if lo is None else 100 * (hi - m))
        ax.bar(range(len(ms_)), ms_, yerr=errs, capsize=4, color="#1565c0")
        ax.axhline(0, color="k", lw=0.8)
        if prefix == "best":
            ax.axhline(1.22, color="#c62828", ls="--", lw=1, label="paper: +1.22")
            ax.legend(fontsize=7)
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set_ylabel("accuracy difference (points)")
        ax.set_title(title, fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, format="png")


if __name__ == "__main__":
    main()
