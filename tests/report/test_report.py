"""Report rendering from results.json alone."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from encoder_audit.cli.main import main
from encoder_audit.errors import UserError
from encoder_audit.report import build_report, normalise_section, render_markdown


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


def test_build_report_writes_self_contained_html_and_markdown(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    md_path, html_path = build_report(run)
    md, page = md_path.read_text(), html_path.read_text()
    assert "RDA copies 95%" in md and "| rda | 2,500 | 0.81 ± 0.01 |" in md
    assert "![accuracy vs queries](stealing/sweep.png)" in md  # absolute path made relative
    assert "High risk" in page and "Not run" in page
    assert page.count("data:image/png;base64,") == 1
    # self-contained: no external resources, no scripts, user text escaped
    assert not re.search(r"(src|href)=['\"](https?:)?//", page)
    assert "<script" not in page and "&lt;script&gt;" in page


def test_report_command_rerenders_from_results_json(tmp_path: Path, capsys) -> None:
    run = make_run(tmp_path)
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").is_file() and "report.md" in capsys.readouterr().out


def test_report_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        build_report(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"kind": "pretrain"}))
    with pytest.raises(UserError, match="no audit sections"):
        build_report(tmp_path)
    assert main(["report", str(tmp_path / "nowhere")]) == 2


def test_normalise_section_validates() -> None:
    with pytest.raises(ValueError, match="verdict"):
        normalise_section({"verdict": "catastrophic"}, title="x")
    with pytest.raises(ValueError, match="cells"):
        normalise_section({"verdict": "low", "tables": [{"columns": ["a", "b"], "rows": [[1]]}]}, title="x")
    sec = normalise_section({"verdict": "low"}, title="x")
    assert sec["title"] == "x" and sec["tables"] == [] and sec["caveats"] == []


def test_markdown_summary_lists_every_risk_once(tmp_path: Path) -> None:
    results = json.loads((make_run(tmp_path) / "results.json").read_text())
    results["sections"] = {k: normalise_section(v, title=k) for k, v in results["sections"].items()}
    md = render_markdown(results)
    summary = md.split("## Summary")[1].split("## ")[0]
    assert summary.count("Encoder stealing") == 1 and summary.count("Membership inference") == 1
    assert "Encoder under audit" not in summary
