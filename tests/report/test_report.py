"""Report rendering from results.json alone."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from encoder_audit.cli.main import main
from encoder_audit.errors import UserError
from encoder_audit.report import build_report, normalise_section, render_markdown


def test_build_report_writes_self_contained_html_and_markdown(report_run: Path) -> None:
    run = report_run
    md_path, html_path = build_report(run)
    md, page = md_path.read_text(), html_path.read_text()
    assert "RDA copies 95%" in md and "| rda | 2,500 | 0.81 ± 0.01 |" in md
    assert "![accuracy vs queries](stealing/sweep.png)" in md  # absolute path made relative
    assert "High risk" in page and "Not run" in page
    assert page.count("data:image/png;base64,") == 1
    # self-contained: no external resources, no scripts, user text escaped
    assert not re.search(r"(src|href)=['\"](https?:)?//", page)
    assert "<script" not in page and "&lt;script&gt;" in page


def test_report_command_rerenders_from_results_json(report_run: Path, capsys) -> None:
    run = report_run
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


def test_markdown_summary_lists_every_risk_once(report_run: Path) -> None:
    results = json.loads((report_run / "results.json").read_text())
    results["sections"] = {k: normalise_section(v, title=k) for k, v in results["sections"].items()}
    md = render_markdown(results)
    summary = md.split("## Summary")[1].split("## ")[0]
    assert summary.count("Encoder stealing") == 1 and summary.count("Membership inference") == 1
    assert "Encoder under audit" not in summary
