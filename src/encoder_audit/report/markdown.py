"""``report.md``: the audit as Markdown, figures linked relative to the report (it lives in the run directory)."""

from __future__ import annotations

from typing import Any

import yaml

from .format import cost_table, format_cell
from .model import SECTION_ORDER, Section, Table

_ICON = {
    "high": "🔴",
    "medium": "🟠",
    "low": "🟢",
    "inconclusive": "🟤",
    "info": "🔵",
    "skipped": "⚪",
    "failed": "🟣",
}


def _esc(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(t: Table) -> list[str]:
    out = []
    if t.title:
        out.append(f"**{t.title}**\n")
    if t.columns:
        out.append("| " + " | ".join(_esc(c.name) for c in t.columns) + " |")
        out.append("|" + "|".join("---" if i == 0 or c.is_key else "---:" for i, c in enumerate(t.columns)) + "|")
        for row in t.rows:
            out.append("| " + " | ".join(_esc(format_cell(v, c)) for v, c in zip(row, t.columns)) + " |")
    if t.note:
        out.append(f"\n_{t.note}_")
    out.append("")
    return out


def seeds_label(results: dict[str, Any]) -> str:
    seeds = results.get("seeds") or []
    if isinstance(seeds, list) and len(seeds) > 1:
        return "seeds " + ", ".join(str(s) for s in seeds)
    return f"seed {seeds[0] if seeds else results.get('environment', {}).get('seed')}"


def seeds_line(results: dict[str, Any]) -> str:
    """``""`` for a one-seed run, else which seeds the tables average and each seed's wall time."""
    per_seed = results.get("per_seed") or {}
    if len(per_seed) < 2:
        return ""
    walls = ", ".join(f"seed {s}: {format_cell(v.get('wall_time_s'))} s" for s, v in per_seed.items())
    return (
        f"Every audit ran with {len(per_seed)} seeds ({', '.join(per_seed)}); tables show mean ± sample std over "
        f"the seeds and headlines the mean. Wall time per seed: {walls}."
    )


def ordered(sections: dict[str, Section]) -> list[Section]:
    keys = [k for k in SECTION_ORDER if k in sections] + [k for k in sections if k not in SECTION_ORDER]
    return [sections[k] for k in keys]


def _controls(sec: Section) -> list[str]:
    if not sec.verdict.controls:
        return []
    out = ["| control | kind | " + "metric | threshold | fired | as expected |", "|---|---|---:|---:|---|---|"]
    for c in sec.verdict.controls:
        out.append(
            f"| {_esc(c.name)} | {c.kind} | {c.metric} {format_cell(c.value)} | {format_cell(c.threshold)} | "
            f"{'yes' if c.fired else 'no'} | {'✅' if c.passed else '❌'} |"
        )
    return [*out, ""]


def render_markdown(results: dict[str, Any], sections: dict[str, Section]) -> str:
    """Render an audit's results (typed ``sections`` plus the run's metadata) as Markdown."""
    lines = [f"# {results.get('title', 'Encoder audit')}", ""]
    victim = results.get("victim", {})
    if victim:
        lines += [f"Victim: **{victim.get('name', '?')}** — {victim.get('description', '')}", ""]
    if seeds_line(results):
        lines += [seeds_line(results), ""]
    lines += ["## Summary", "", "| audit | verdict | finding |", "|---|---|---|"]
    for sec in ordered(sections):
        if sec.key == "victim":
            continue
        icon = _ICON.get(sec.verdict.level, "")
        lines.append(f"| {icon} {sec.title} | {sec.label()} | {_esc(sec.headline.render())} |")
    lines.append("")
    for sec in ordered(sections):
        lines += [f"## {sec.title}", ""]
        headline = sec.headline.render()
        if headline:
            lines += [f"{_ICON.get(sec.verdict.level, '')} **{sec.label()}.** {headline}", ""]
        if sec.verdict.rule:
            lines += [f"_Why this verdict:_ {sec.verdict.rule}", ""]
        lines += _controls(sec)
        for t in sec.tables:
            lines += _table(t)
        for fig in sec.figures:
            lines += [f"![{fig.caption}]({fig.path})", "", f"_{fig.caption}_", ""]
        if sec.todo:
            lines += ["### What to do", ""]
            lines += [f"- {a.render()}" for a in sec.todo.advice]
            if sec.todo.advice:
                lines.append("")
            if sec.todo.defenses is not None:
                lines += _table(sec.todo.defenses)
            if sec.todo.not_covered:
                lines += ["Not covered by this evidence:", ""] + [f"- {x}" for x in sec.todo.not_covered] + [""]
        if sec.costs:
            lines += _table(cost_table(sec.costs))
        if sec.caveats:
            lines += ["Caveats:", ""] + [f"- {c}" for c in sec.caveats] + [""]
        if sec.config:
            lines += [
                "<details><summary>Configuration</summary>",
                "",
                "```yaml",
                yaml.safe_dump(sec.config, sort_keys=False).rstrip(),
                "```",
                "",
                "</details>",
                "",
            ]
    env = results.get("environment", {})
    if env:
        lines += [
            "## Run",
            "",
            f"encoder-audit {env.get('encoder_audit')} · torch {env.get('torch')} · {seeds_label(results)} · "
            f"{env.get('cpu_count')} CPU cores · wall time {format_cell(results.get('wall_time_s'))} s",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"
