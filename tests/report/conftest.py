"""Finished audit run directories to render: one written by this version (schema 2), one by an older one."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from encoder_audit.report.model import (
    SCHEMA_VERSION,
    Control,
    Figure,
    Section,
    Stat,
    Table,
    Text,
    Verdict,
    WhatToDo,
    count,
    key,
    num,
    pct,
)


@pytest.fixture
def report_run(tmp_path: Path) -> Path:
    return make_run(tmp_path)


def _plot(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([1, 10, 100], [0.5, 0.7, 0.8])
    fig.savefig(path, dpi=60)
    plt.close(fig)


def stealing_section(fidelity: float = 0.9, method: str = "rda") -> Section:
    table = Table(
        "Surrogates",
        [key("method"), count("queries", is_key=True), pct("kNN"), num("fidelity")],
        [["rda", 2500, 0.81, fidelity], ["contsteal", 250_000, 0.7, 0.6]],
        note="one seed",
    )
    defenses = Table("Defenses", [key("defense"), pct("honest kNN"), num("stolen fidelity")], [["noise", 0.6, 0.5]])
    return Section(
        key="stealing",
        title="Encoder stealing",
        headline=Text(
            "{method} copies the victim at fidelity {fid:.2f} with {q:,} queries.",
            {"method": method, "fid": fidelity, "q": 2500},
        ),
        verdict=Verdict(
            "high",
            "high if fidelity >= 0.8",
            [Control("random-init surrogate", "negative", "fidelity", 0.1, 0.8, False)],
        ),
        tables=[table],
        figures=[Figure("stealing/sweep.png", "accuracy vs queries")],
        costs={"query_images": 2500, "wall_seconds": 61.2},
        caveats=["CPU scale <script>alert(1)</script>"],
        config={"P": 10},
        todo=WhatToDo([Text("Noise costs honest users {c:.0%} of kNN.", {"c": 0.2})], defenses, ["adaptive attackers"]),
    )


def make_run(tmp_path: Path, *, wide: bool = False) -> Path:
    run = tmp_path / "run"
    _plot(run / "stealing" / "sweep.png")
    _plot(run / "membership" / "roc.png")
    member = Section(
        key="membership",
        title="Membership inference",
        headline=Text("EncoderMI-T reaches AUC {auc:.3f}.", {"auc": Stat(0.81, 0.02, n=3)}),
        verdict=Verdict(
            "low", "low if AUC < 0.6", [Control("known-leaking target", "positive", "AUC", 0.55, 0.75, False)]
        ),
        tables=[
            Table(
                "Attacks" + (" (wide)" if wide else ""),
                [key("attack")] + [pct(f"metric number {i} with a long name") for i in range(14 if wide else 2)],
                [["encodermi-t"] + [0.5 + i / 100 for i in range(14 if wide else 2)]],
            )
        ],
        figures=[Figure("membership/roc.png", "ROC")],
    )
    sections = {
        "victim": Section("victim", "Encoder under audit", Text("kNN {k:.0%}", {"k": 0.8}), Verdict("info")),
        "stealing": stealing_section(),
        "membership": replace(member, verdict=member.verdict.checked()),
        "protection": Section(
            "protection",
            "Data protection",
            Text("UC drops accuracy by {d:.0%}.", {"d": 0.3}),
            Verdict("low", "protection holds if the drop >= 20 points"),
            labels={"high": "Protection fails", "low": "Protection holds"},
        ),
    }
    results = {
        "schema_version": SCHEMA_VERSION,
        "kind": "audit",
        "title": "Encoder audit",
        "victim": {"name": "demo", "description": "SimCLR cnn-small"},
        "seeds": [0],
        "wall_time_s": 12.5,
        "sections": {k: s.to_dict() for k, s in sections.items()},
    }
    (run / "results.json").write_text(json.dumps(results))
    return run


def make_v1_run(tmp_path: Path) -> Path:
    """A run directory written by the first results schema (text cells, a text headline)."""
    run = tmp_path / "v1"
    _plot(run / "stealing" / "sweep.png")
    results = {
        "schema_version": 1,
        "kind": "audit",
        "title": "Encoder audit",
        "victim": {"name": "demo", "description": "SimCLR cnn-small"},
        "wall_time_s": 12.5,
        "sections": {
            "stealing": {
                "title": "Encoder stealing",
                "verdict": "high",
                "headline": "RDA copies 95% of the victim's kNN accuracy with 2,500 queries {not a field}.",
                "tables": [{"title": "Surrogates", "columns": ["method", "kNN"], "rows": [["rda", "0.810"]]}],
                "figures": [{"path": "stealing/sweep.png", "caption": "accuracy vs queries"}],
                "costs": {"query_images": 2500, "timing": {"rda": 1.0}},
            },
            "membership": {"title": "Membership inference", "verdict": "skipped", "headline": "members unknown"},
        },
    }
    (run / "results.json").write_text(json.dumps(results))
    return run
