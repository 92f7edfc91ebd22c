"""The demo's HTML report, opened in headless Chromium: what an editor sees first.

Runs the real CLI against the bundled demo site (demo.routes.start_demo_servers) and
checks that the report shows the site name, lists the watched North Sweden problem first,
runs nothing and fits the window. A screenshot is saved under the test's tmp_path.
"""

from __future__ import annotations

from pathlib import Path

from demo.routes import AS_OF, start_demo_servers
from tests.browser import BROWSER, assert_inert, open_in_chromium
from tests.cli_runner import sitewatch

pytestmark = BROWSER

SITE_NAME = "umea.se/internationellt (demo)"

FIRST_ROWS_JS = {
    "h1": "document.querySelector('h1').innerText",
    "watched_first": (
        "(document.querySelector('#watched .watched-card') || {innerText: ''}).innerText"
    ),
    "broken_first": (
        "(document.querySelector('#problem-broken_link + p + table tbody tr')"
        " || {innerText: ''}).innerText"
    ),
    "first_finding_visible": (
        "(() => { const r = document.querySelector('#watched tbody tr');"
        " if (!r) return false; const b = r.getBoundingClientRect();"
        " return b.width > 0 && b.height > 0 && getComputedStyle(r).visibility !== 'hidden'; })()"
    ),
}


def test_demo_report_in_chromium(tmp_path: Path) -> None:
    with start_demo_servers() as demo:
        config = demo.write_config(tmp_path / "demo.toml")
        r = sitewatch("audit", "--config", str(config), "--as-of", AS_OF.isoformat(), cwd=tmp_path)
        north_sweden = demo.ext1.url("/north-sweden/")
    assert r.code == 1, r.stderr
    shot = tmp_path / "demo-report.png"
    result = open_in_chromium(r.out_dir / "report.html", shot, extra_js=FIRST_ROWS_JS)
    assert shot.stat().st_size > 0
    assert_inert(result)
    info = result.dom_info
    assert SITE_NAME in info["h1"], info["h1"]
    assert SITE_NAME in info["title"]
    assert info["first_finding_visible"] is True
    assert north_sweden in info["watched_first"], info["watched_first"]
    assert "North Sweden" in info["watched_first"]  # the link text, on the first card
    assert "error" in info["watched_first"]
    assert north_sweden in info["broken_first"], info["broken_first"]
    # The first thing an editor reads after the header is the watched problem.
    text = info["text"]
    assert text.index("Watched links") < text.index(north_sweden)
