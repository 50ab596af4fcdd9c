"""report.md and report.html from results.json: figures shown, links that resolve, every part rendered."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from encoder_audit.cli.main import main
from encoder_audit.errors import UserError
from encoder_audit.report import build_report

from .conftest import make_v1_run


def test_html_inlines_every_figure_and_escapes_text(report_run: Path) -> None:
    _, page = build_report(report_run)
    html = page.read_text()
    assert html.count("data:image/png;base64,") == 2
    assert "missing figure" not in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "What to do" in html and "Not covered by this evidence" in html
    assert "Why this verdict:" in html and "Controls:" in html


def test_markdown_links_figures_relative_to_the_report(report_run: Path) -> None:
    md, _ = build_report(report_run)
    text = md.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links and all((md.parent / link).is_file() for link in links)


def test_report_renders_from_another_working_directory(report_run: Path, tmp_path: Path, monkeypatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rel = Path("..") / report_run.relative_to(tmp_path)
    _, page = build_report(rel)
    assert page.read_text().count("data:image/png;base64,") == 2


def test_protection_card_reads_as_protection_and_inconclusive_is_shown(report_run: Path) -> None:
    md, page = build_report(report_run)
    text = md.read_text()
    assert "Protection holds" in text
    # membership said "low" but its positive control did not fire
    assert "Inconclusive" in text and "NOT as expected" in page.read_text()


def test_numbers_are_formatted_by_their_columns(report_run: Path) -> None:
    md, _ = build_report(report_run)
    text = md.read_text()
    assert "| rda | 2,500 | 81.0% | 0.900 |" in text
    assert "| query images charged | 2,500 |" in text and "| wall time | 61.2 s |" in text


def test_a_schema_1_run_still_renders(tmp_path: Path) -> None:
    run = make_v1_run(tmp_path)
    md, page = build_report(run)
    assert "RDA copies 95%" in md.read_text() and "{not a field}" in md.read_text()
    assert "data:image/png;base64," in page.read_text()


def test_report_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        build_report(tmp_path)
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        build_report(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"schema_version": 99, "sections": {}}))
    with pytest.raises(UserError, match="schema 99"):
        build_report(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"schema_version": 2, "kind": "steal"}))
    with pytest.raises(UserError, match="no audit sections"):
        build_report(tmp_path)


def test_report_command(report_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(report_run)]) == 0
    assert "report.html" in capsys.readouterr().out
    assert main(["report", str(report_run / "nope")]) == 2
