"""``report.md``: the audit as Markdown, figures referenced by relative path."""

from __future__ import annotations

from typing import Any

import yaml

from .schema import SECTION_ORDER, VERDICTS, format_cell

_ICON = {"high": "🔴", "medium": "🟠", "low": "🟢", "info": "🔵", "skipped": "⚪", "failed": "🟣"}


def _table(t: dict[str, Any]) -> list[str]:
    out = []
    if t["title"]:
        out.append(f"**{t['title']}**\n")
    if t["columns"]:
        out.append("| " + " | ".join(t["columns"]) + " |")
        out.append("|" + "---|" * len(t["columns"]))
        for row in t["rows"]:
            out.append("| " + " | ".join(format_cell(c).replace("|", "\\|") for c in row) + " |")
    if t.get("note"):
        out.append(f"\n_{t['note']}_")
    out.append("")
    return out


def seeds_label(results: dict[str, Any], meta: dict[str, Any]) -> str:
    seeds = results.get("seeds") or meta.get("seeds")
    if isinstance(seeds, list) and len(seeds) > 1:
        return "seeds " + ", ".join(str(s) for s in seeds)
    return f"seed {meta.get('seed')}"


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


def ordered_sections(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    sections = results.get("sections", {})
    keys = [k for k in SECTION_ORDER if k in sections] + [k for k in sections if k not in SECTION_ORDER]
    return [(k, sections[k]) for k in keys]


def render_markdown(results: dict[str, Any]) -> str:
    """Render an audit ``results.json`` dictionary as Markdown."""
    lines = [f"# {results.get('title', 'Encoder audit')}", ""]
    victim = results.get("victim", {})
    if victim:
        lines.append(f"Victim: **{victim.get('name', '?')}** — {victim.get('description', '')}")
        lines.append("")
    if seeds_line(results):
        lines += [seeds_line(results), ""]
    lines += ["## Summary", "", "| | risk | finding |", "|---|---|---|"]
    for _key, sec in ordered_sections(results):
        if _key == "victim":
            continue
        label = VERDICTS.get(sec["verdict"], (sec["verdict"],))[0]
        lines.append(f"| {_ICON.get(sec['verdict'], '')} {sec['title']} | {label} | {sec['headline']} |")
    lines.append("")
    for _key, sec in ordered_sections(results):
        lines += [f"## {sec['title']}", ""]
        if sec["headline"]:
            lines += [f"{_ICON.get(sec['verdict'], '')} **{VERDICTS[sec['verdict']][0]}.** {sec['headline']}", ""]
        for t in sec["tables"]:
            lines += _table(t)
        for fig in sec["figures"]:
            lines += [f"![{fig['caption']}]({fig['path']})", "", f"_{fig['caption']}_", ""]
        if sec["costs"]:
            lines.append(
                "Costs: " + ", ".join(f"{k.replace('_', ' ')} {format_cell(v)}" for k, v in sec["costs"].items())
            )
            lines.append("")
        if sec["caveats"]:
            lines += ["Caveats:", ""] + [f"- {c}" for c in sec["caveats"]] + [""]
        if sec["config"]:
            lines += [
                "<details><summary>Configuration</summary>",
                "",
                "```yaml",
                yaml.safe_dump(sec["config"], sort_keys=False).rstrip(),
                "```",
                "",
                "</details>",
                "",
            ]
    meta = results.get("environment", {})
    if meta:
        lines += [
            "## Run",
            "",
            f"encoder-audit {meta.get('encoder_audit')} · torch {meta.get('torch')} · "
            f"{seeds_label(results, meta)} · {meta.get('cpu_count')} CPU cores · "
            f"wall time {format_cell(results.get('wall_time_s'))} s",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"
