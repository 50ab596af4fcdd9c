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


def test_two_seed_results_json_renders_mean_and_std(report_run: Path) -> None:
    results = json.loads((report_run / "results.json").read_text())
    stealing = results["sections"]["stealing"]
    per_seed = {}
    for seed, knn, headline in [("0", "0.700", "95%"), ("1", "0.800", "85%")]:
        sec = json.loads(json.dumps(stealing))
        sec["headline"] = f"RDA copies {headline} of the victim's kNN accuracy with 2,500 queries."
        sec["tables"][0]["rows"] = [["rda", 2500, knn], ["contsteal", 250000, "0.500"]]
        per_seed[seed] = {"sections": {"victim": results["sections"]["victim"], "stealing": sec}, "wall_time_s": 60.0}
    del results["sections"]  # the aggregate is rebuilt from the seeds alone
    results.update(per_seed=per_seed, seeds=[0, 1])
    (report_run / "results.json").write_text(json.dumps(results))
    md_path, html_path = build_report(report_run)
    md, page = md_path.read_text(), html_path.read_text()
    assert "| rda | 2,500 | 0.750 ± 0.071 |" in md and "| contsteal | 250,000 | 0.500 |" in md
    assert "RDA copies 90% of the victim's kNN accuracy with 2,500 queries (mean of 2 seeds)." in md
    assert "<td>0.750 ± 0.071</td>" in page and "seeds 0, 1" in page
    assert page.count("data:image/png;base64,") == 1  # the first seed's figure
