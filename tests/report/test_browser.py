"""The HTML report in a real browser: it loads without console errors and every plot has a size."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from encoder_audit.report import build_report

from .conftest import make_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]
# Appended to a copy of the page: after load, write what the test needs into the DOM.
PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images].map(i => [i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width]);
  const wraps = [...document.querySelectorAll('.tablewrap')].map(w => [w.scrollWidth, w.clientWidth]);
  const sections = [...document.querySelectorAll('section')].map(s => s.getBoundingClientRect().right);
  const out = document.createElement('pre'); out.id = 'probe';
  out.textContent = JSON.stringify({imgs, wraps, sections, page: document.documentElement.clientWidth,
                                    scroll: document.documentElement.scrollWidth});
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Built with a relative run directory from another working directory, as `--runs-dir runs` does."""
    import json
    import re

    make_run(tmp_path, wide=True)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    run = Path("..") / "run"
    _, page = build_report(run)
    probe_page = run / "probe.html"
    probe_page.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    proc = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,2000",
            "--virtual-time-budget=3000",
            "--dump-dom",
            probe_page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    found = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, "the page did not finish loading"
    probe = json.loads(found.group(1).replace("&quot;", '"'))
    assert len(probe["sections"]) == 4
    assert len(probe["imgs"]) == 2 and all(w > 0 and h > 0 and shown > 0 for w, h, shown in probe["imgs"])
    # the wide table scrolls inside its card; the page itself does not scroll sideways
    assert any(sw > cw for sw, cw in probe["wraps"])
    assert probe["scroll"] <= probe["page"] and all(right <= probe["page"] for right in probe["sections"])
    # and a screenshot is non-empty
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile2'}",
            "--window-size=1200,1600",
            f"--screenshot={shot}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 10_000
