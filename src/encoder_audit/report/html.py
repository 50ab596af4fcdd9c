"""``report.html``: one self-contained page (inline CSS and images, no scripts, no network)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import yaml

from .markdown import ordered_sections, seeds_label, seeds_line
from .schema import VERDICTS, format_cell

CSS = """
:root { --fg:#1d2430; --muted:#5b6678; --line:#e3e7ee; --bg:#f7f8fa; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
main { max-width: 1080px; margin: 0 auto; padding: 32px 24px 64px; }
h1 { font-size: 28px; margin: 0 0 4px; } h2 { font-size: 21px; margin: 0 0 8px; }
.sub { color: var(--muted); margin: 0 0 24px; }
.cards { display:grid; grid-template-columns: repeat(auto-fit, minmax(230px, 1fr)); gap: 12px; margin-bottom: 28px; }
.card { background:#fff; border:1px solid var(--line); border-radius:10px; padding:14px 16px; border-top:5px solid var(--c); }
.card .name { font-weight:600; } .card .risk { color: var(--c); font-weight:700; font-size:13px; text-transform:uppercase; }
.card p { margin:6px 0 0; font-size:14px; color:var(--fg); }
a.card { text-decoration:none; color:inherit; }
section { background:#fff; border:1px solid var(--line); border-radius:12px; padding:20px 24px; margin-bottom:20px; }
.chip { display:inline-block; padding:2px 10px; border-radius:999px; color:#fff; font-size:12px; font-weight:700; background:var(--c); vertical-align: middle; margin-left: 8px; }
.headline { font-size:16px; margin: 4px 0 14px; }
table { border-collapse: collapse; width:100%; margin: 8px 0 4px; font-size:14px; }
th, td { padding:6px 10px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
th:first-child, td:first-child { text-align:left; }
th { color: var(--muted); font-weight:600; background:#fafbfc; }
caption { text-align:left; font-weight:600; padding: 6px 0; }
.note { color: var(--muted); font-size: 13px; margin: 2px 0 12px; }
.figs { display:grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; margin-top: 12px; }
figure { margin:0; } figure img { width:100%; height:auto; border:1px solid var(--line); border-radius:8px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.costs { color: var(--muted); font-size: 13px; margin-top: 10px; }
ul.caveats { color: var(--muted); font-size: 13px; margin: 8px 0 0; padding-left: 18px; }
details { margin-top: 10px; font-size: 13px; } pre { background: var(--bg); padding: 10px; border-radius: 6px; overflow:auto; }
.tablewrap { overflow-x: auto; }
footer { color: var(--muted); font-size: 12px; text-align:center; }
"""


def _img(run_dir: Path, rel: str) -> str | None:
    path = run_dir / rel
    if not path.is_file():
        return None
    data = base64.b64encode(path.read_bytes()).decode()
    mime = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    return f"data:{mime};base64,{data}"


def _table(t: dict[str, Any]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in t["columns"])
    body = "".join("<tr>" + "".join(f"<td>{e(format_cell(c))}</td>" for c in row) + "</tr>" for row in t["rows"])
    cap = f"<caption>{e(t['title'])}</caption>" if t["title"] else ""
    note = f"<p class='note'>{e(t['note'])}</p>" if t.get("note") else ""
    return f"<div class='tablewrap'><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{note}"


def render_html(results: dict[str, Any], run_dir: Path) -> str:
    """Render an audit ``results.json`` dictionary as a single HTML page; figures are inlined."""
    e = html.escape
    title = results.get("title", "Encoder audit")
    victim = results.get("victim", {})
    parts = [f"<h1>{e(title)}</h1>"]
    sub = victim.get("description", "")
    if victim.get("name"):
        sub = f"{victim['name']} — {sub}"
    parts.append(f"<p class='sub'>{e(sub)}</p>")
    if seeds_line(results):
        parts.append(f"<p class='sub'>{e(seeds_line(results))}</p>")
    cards = []
    for key, sec in ordered_sections(results):
        if key == "victim":
            continue
        label, color = VERDICTS.get(sec["verdict"], (sec["verdict"], "#757575"))
        cards.append(
            f"<a class='card' href='#{e(key)}' style='--c:{color}'><div class='name'>{e(sec['title'])}</div>"
            f"<div class='risk'>{e(label)}</div><p>{e(sec['headline'])}</p></a>"
        )
    parts.append(f"<div class='cards'>{''.join(cards)}</div>")
    for key, sec in ordered_sections(results):
        label, color = VERDICTS.get(sec["verdict"], (sec["verdict"], "#757575"))
        body = [f"<h2>{e(sec['title'])}<span class='chip' style='--c:{color}'>{e(label)}</span></h2>"]
        if sec["headline"]:
            body.append(f"<p class='headline'>{e(sec['headline'])}</p>")
        body += [_table(t) for t in sec["tables"]]
        figs = []
        for fig in sec["figures"]:
            src = _img(run_dir, fig["path"])
            if src is None:
                figs.append(f"<figure><figcaption>(missing figure {e(fig['path'])})</figcaption></figure>")
                continue
            figs.append(
                f"<figure><img src='{src}' alt='{e(fig['caption'])}'><figcaption>{e(fig['caption'])}</figcaption></figure>"
            )
        if figs:
            body.append(f"<div class='figs'>{''.join(figs)}</div>")
        if sec["costs"]:
            costs = " · ".join(f"{e(k.replace('_', ' '))}: {e(format_cell(v))}" for k, v in sec["costs"].items())
            body.append(f"<p class='costs'>{costs}</p>")
        if sec["caveats"]:
            body.append("<ul class='caveats'>" + "".join(f"<li>{e(c)}</li>" for c in sec["caveats"]) + "</ul>")
        if sec["config"]:
            cfg = e(yaml.safe_dump(sec["config"], sort_keys=False))
            body.append(f"<details><summary>Configuration</summary><pre>{cfg}</pre></details>")
        parts.append(f"<section id='{e(key)}'>{''.join(body)}</section>")
    env = results.get("environment", {})
    parts.append(
        f"<footer>encoder-audit {e(str(env.get('encoder_audit', '')))} · torch {e(str(env.get('torch', '')))} · "
        f"{e(seeds_label(results, env))} · wall time {e(format_cell(results.get('wall_time_s')))} s</footer>"
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{e(title)}</title><style>{CSS}</style></head><body><main>{''.join(parts)}</main></body></html>\n"
    )
