"""A finished audit run directory to render."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt


@pytest.fixture
def report_run(tmp_path: Path) -> Path:
    return make_run(tmp_path)


def make_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "stealing").mkdir(parents=True)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([1, 10, 100], [0.5, 0.7, 0.8])
    fig.savefig(run / "stealing" / "sweep.png", dpi=60)
    plt.close(fig)
    results = {
        "schema_version": 1,
        "kind": "audit",
        "title": "Encoder audit",
        "victim": {"name": "demo", "description": "SimCLR cnn-small"},
        "wall_time_s": 12.5,
        "sections": {
            "victim": {"title": "Encoder under audit", "verdict": "info", "headline": "kNN 80%"},
            "stealing": {
                "title": "Encoder stealing",
                "verdict": "high",
                "headline": "RDA copies 95% of the victim's kNN accuracy with 2,500 queries.",
                "tables": [
                    {
                        "title": "Surrogates",
                        "columns": ["method", "queries", "kNN"],
                        "rows": [
                            ["rda", 2500, {"mean": 0.81, "std": 0.01}],
                            {"method": "contsteal", "queries": 250000, "kNN": 0.7},
                        ],
                        "note": "3 seeds",
                    }
                ],
                "figures": [{"path": str(run / "stealing" / "sweep.png"), "caption": "accuracy vs queries"}],
                "costs": {"query_images": 2500, "wall_seconds": 61.2},
                "caveats": ["CPU scale <script>alert(1)</script>"],
                "config": {"P": 10},
            },
            "membership": {"title": "Membership inference", "verdict": "skipped", "headline": "members unknown"},
        },
    }
    (run / "results.json").write_text(json.dumps(results))
    return run
