"""``report.html``: one self-contained page (inline CSS and images, no scripts, no network)."""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path
from typing import Any

import yaml

from .format import cost_table, format_cell
from .markdown import ordered, seeds_label, seeds_line
from .model import COLOURS, Section, Table

log = logging.getLogger(__name__)

CSS = """
:root { --fg:#1d2430; --muted:#5b6678; --line:#e3e7ee; --bg:#f7f8fa; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
main { max-width: 1120px; margin: 0 auto; padding: 32px 24px 64px; }
h1 { font-size: 28px; margin: 0 0 4px; } h2 { font-size: 21px; margin: 0 0 8px; } h3 { font-size: 16px; margin: 18px 0 6px; }
.sub { color: var(--muted); margin: 0 0 24px; }
.cards { display:grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: 12px; margin-bottom: 28px; }
.card { background:#fff; border:1px solid var(--line); border-radius:10px; padding:14px 16px; border-top:5px solid var(--c); }
.card .name { font-weight:600; } .card .risk { color: var(--c); font-weight:700; font-size:13px; text-transform:uppercase; }
.card p { margin:6px 0 0; font-size:14px; color:var(--fg); } .card .ctl { font-size:12px; color:var(--muted); margin-top:6px; }
a.card { text-decoration:none; color:inherit; }
section { background:#fff; border:1px solid var(--line); border-radius:12px; padding:20px 24px; margin-bottom:20px; min-width:0; }
.chip { display:inline-block; padding:2px 10px; border-radius:999px; color:#fff; font-size:12px; font-weight:700; background:var(--c); vertical-align: middle; margin-left: 8px; }
.headline { font-size:16px; margin: 4px 0 10px; }
.why { font-size: 14px; color: var(--fg); background: var(--bg); border-left: 4px solid var(--c); padding: 8px 12px; border-radius: 4px; margin: 6px 0 12px; }
.tablewrap { overflow-x: auto; max-width: 100%; margin: 8px 0 4px; }
table { border-collapse: collapse; font-size:14px; min-width: 50%; }
th, td { padding:6px 10px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; vertical-align: top; }
th { white-space: normal; min-width: 4.5em; max-width: 11em; }
th.k, td.k { text-align:left; } td.k { white-space: normal; min-width: 6em; max-width: 26em; }
th { color: var(--muted); font-weight:600; background:#fafbfc; }
caption { text-align:left; font-weight:600; padding: 6px 0; }
.note { color: var(--muted); font-size: 13px; margin: 2px 0 12px; }
.figs { display:grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; margin-top: 12px; }
figure { margin:0; } figure img { width:100%; height:auto; border:1px solid var(--line); border-radius:8px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.todo { border: 1px solid #cfe3d3; background: #f4faf5; border-radius: 8px; padding: 10px 16px; margin-top: 14px; }
.todo h3 { margin-top: 4px; } .todo ul { margin: 4px 0; padding-left: 20px; }
.pass { color: #2e7d32; font-weight: 700; } .fail { color: #c62828; font-weight: 700; }
ul.caveats { color: var(--muted); font-size: 13px; margin: 8px 0 0; padding-left: 18px; }
details { margin-top: 10px; font-size: 13px; } pre { background: var(--bg); padding: 10px; border-radius: 6px; overflow:auto; }
footer { color: var(--muted); font-size: 12px; text-align:center; }
"""


def _img(run_dir: Path, rel: str) -> str | None:
    path = run_dir / rel
    if not path.is_file():
        log.warning("figure %s is missing", path)
        return None
    data = base64.b64encode(path.read_bytes()).decode()
    mime = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    return f"data:{mime};base64,{data}"


def _table(t: Table) -> str:
    e = html.escape

    def cls(i: int) -> str:
        return " class='k'" if i == 0 or t.columns[i].is_key else ""

    head = "".join(
        f"<th{cls(i)}" + (f" title='{e(c.help)}'" if c.help else "") + f">{e(c.name)}</th>"
        for i, c in enumerate(t.columns)
    )
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{e(format_cell(v, t.columns[i]))}</td>" for i, v in enumerate(row)) + "</tr>"
        for row in t.rows
    )
    cap = f"<caption>{e(t.title)}</caption>" if t.title else ""
    note = f"<p class='note'>{e(t.note)}</p>" if t.note else ""
    return f"<div class='tablewrap'><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{note}"


def _controls(sec: Section) -> str:
    if not sec.verdict.controls:
        return ""
    e = html.escape
    rows = "".join(
        f"<tr><td class='k'>{e(c.name)}</td><td class='k'>{c.kind}</td><td>{e(c.metric)} {e(format_cell(c.value))}</td>"
        f"<td>{e(format_cell(c.threshold))}</td><td>{'yes' if c.fired else 'no'}</td>"
        f"<td class='{'pass' if c.passed else 'fail'}'>{'as expected' if c.passed else 'NOT as expected'}</td></tr>"
        for c in sec.verdict.controls
    )
    return (
        "<div class='tablewrap'><table><caption>Controls: the same attack where the answer is known</caption>"
        "<thead><tr><th class='k'>control</th><th class='k'>kind</th><th>value</th><th>fires at</th><th>fired</th>"
        f"<th>result</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _controls_summary(sec: Section) -> str:
    cs = sec.verdict.controls
    if not cs:
        return ""
    ok = sum(c.passed for c in cs)
    return f"<div class='ctl'>controls: {ok} of {len(cs)} as expected</div>"


def _todo(sec: Section) -> str:
    if not sec.todo:
        return ""
    e = html.escape
    parts = ["<div class='todo'><h3>What to do</h3>"]
    if sec.todo.advice:
        parts.append("<ul>" + "".join(f"<li>{e(a.render())}</li>" for a in sec.todo.advice) + "</ul>")
    if sec.todo.defenses is not None:
        parts.append(_table(sec.todo.defenses))
    if sec.todo.not_covered:
        parts.append(
            "<p class='note'>Not covered by this evidence:</p><ul class='caveats'>"
            + "".join(f"<li>{e(x)}</li>" for x in sec.todo.not_covered)
            + "</ul>"
        )
    parts.append("</div>")
    return "".join(parts)


def render_html(results: dict[str, Any], sections: dict[str, Section], run_dir: Path) -> str:
    """Render an audit as a single HTML page; figures are read from ``run_dir`` and inlined."""
    e = html.escape
    title = results.get("title", "Encoder audit")
    victim = results.get("victim", {})
    parts = [f"<h1>{e(title)}</h1>"]
    sub = victim.get("description", "")
    if victim.get("name"):
        sub = f"{victim['name']} — {sub}" if sub else victim["name"]
    parts.append(f"<p class='sub'>{e(sub)}</p>")
    if seeds_line(results):
        parts.append(f"<p class='sub'>{e(seeds_line(results))}</p>")
    cards = []
    for sec in ordered(sections):
        if sec.key == "victim":
            continue
        color = COLOURS[sec.verdict.level]
        cards.append(
            f"<a class='card' href='#{e(sec.key)}' style='--c:{color}'><div class='name'>{e(sec.title)}</div>"
            f"<div class='risk'>{e(sec.label())}</div><p>{e(sec.headline.render())}</p>{_controls_summary(sec)}</a>"
        )
    parts.append(f"<div class='cards'>{''.join(cards)}</div>")
    for sec in ordered(sections):
        color = COLOURS[sec.verdict.level]
        body = [f"<h2>{e(sec.title)}<span class='chip' style='--c:{color}'>{e(sec.label())}</span></h2>"]
        headline = sec.headline.render()
        if headline:
            body.append(f"<p class='headline'>{e(headline)}</p>")
        if sec.verdict.rule and sec.key != "victim":
            body.append(f"<div class='why' style='--c:{color}'><b>Why this verdict:</b> {e(sec.verdict.rule)}</div>")
        body.append(_controls(sec))
        body += [_table(t) for t in sec.tables]
        figs = []
        for fig in sec.figures:
            src = _img(run_dir, fig.path)
            if src is None:
                figs.append(f"<figure><figcaption>(missing figure {e(fig.path)})</figcaption></figure>")
                continue
            figs.append(
                f"<figure><img src='{src}' alt='{e(fig.caption)}'><figcaption>{e(fig.caption)}</figcaption></figure>"
            )
        if figs:
            body.append(f"<div class='figs'>{''.join(figs)}</div>")
        body.append(_todo(sec))
        if sec.costs:
            body.append(_table(cost_table(sec.costs)))
        if sec.caveats:
            body.append("<ul class='caveats'>" + "".join(f"<li>{e(c)}</li>" for c in sec.caveats) + "</ul>")
        if sec.config:
            cfg = e(yaml.safe_dump(sec.config, sort_keys=False))
            body.append(f"<details><summary>Configuration</summary><pre>{cfg}</pre></details>")
        parts.append(f"<section id='{e(sec.key)}'>{''.join(body)}</section>")
    env = results.get("environment", {})
    parts.append(
        f"<footer>encoder-audit {e(str(env.get('encoder_audit', '')))} · torch {e(str(env.get('torch', '')))} · "
        f"{e(seeds_label(results))} · wall time {e(format_cell(results.get('wall_time_s')))} s</footer>"
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{e(title)}</title><style>{CSS}</style></head><body><main>{''.join(parts)}</main></body></html>\n"
    )
