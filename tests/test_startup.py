"""What ``sitewatch audit`` loads and how it ends (docs/performance.md, fixed costs).

An audit imports neither the scheduling and email code nor tldextract (for a site that sets
no cookies) nor aiohttp (without a proxy), and its own process not Jinja2 either (the HTML
and Markdown reports render in a forked child). The console entry point ends the process
with ``os._exit`` once everything is written: the exit code and the printed summary are
what they would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger

from crawler.config.defaults import DEFAULTS
from demo.server import Route, SiteServer
from tests.cli_runner import ROOT, write_config
from tests.faults import html_doc

NOT_ON_THE_AUDIT_PATH = (
    "apscheduler",
    "tldextract",
    "requests",
    "jinja2",
    "babel",
    "alembic",  # a new history's migrations run in a child (crawler.app.run._schema_ahead)
    "sqlalchemy.dialects.postgresql",  # a history on SQLite never needs it
    "css_inline",
    "smtplib",
    "crawler.app.commands",
    "crawler.app.schedule",
    "crawler.worker",
    "dramatiq",
    "redis",
    "reports.delivery",
    "reports.email_build",
    "reports.html_report",
    "aiohttp",  # crawler/http/handler.py downloads; aiohttp only for proxied requests
)

#: Runs the real entry point and writes the modules loaded by then (from an atexit
#: function, which the fast exit still runs) to the file named by argv[1].
PROBE = """
import atexit, json, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv[0] = "sitewatch"
from crawler.app.cli import entry
entry()
"""


@pytest.fixture(scope="module")
def server():
    s = SiteServer("127.0.0.1", name="startup")
    s.add_route(
        "/s/index.html",
        Route(
            body=html_doc("Start", '<p>Sidan har granskats 2026-10-01</p><a href="b.html">B</a>')
        ),
    )
    # With a validator, as most servers send: the re-run cache stores its answer.
    s.add_route(
        "/s/b.html",
        Route(
            body=html_doc("B", '<a href="gone.html">Borta</a>'),
            headers={"ETag": '"b-1"', "Last-Modified": "Mon, 02 Nov 2026 10:00:00 GMT"},
        ),
    )
    s.start()
    yield s
    s.stop()


def _audit(
    server: SiteServer, tmp_path: Path, *extra: str, start: str = "/s/index.html"
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    cfg = write_config(
        tmp_path / "site.toml",
        f'[site]\nstart_urls = ["{server.url(start)}"]\n[history]\ndb = "{tmp_path / "h.db"}"\n',
    )
    modules = tmp_path / "modules.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            str(modules),
            "audit",
            "--config",
            str(cfg),
            "--as-of",
            "2026-11-26",
            "--out",
            str(tmp_path / "out"),
            *extra,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
    )
    return proc, set(json.loads(modules.read_text(encoding="utf-8")))


def test_the_audit_path_loads_only_what_it_needs(server: SiteServer, tmp_path: Path) -> None:
    proc, modules = _audit(server, tmp_path)
    # One broken link (gone.html) is an error: exit 1, the summary printed before the exit.
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "sitewatch: 3 pages" in proc.stdout  # gone.html counts (a 404 page)
    assert "history: run 1" in proc.stdout
    assert "  html  " in proc.stdout and "  md    " in proc.stdout
    loaded = {name for name in NOT_ON_THE_AUDIT_PATH if name in modules}
    assert not loaded, sorted(loaded)
    assert "scrapy" in modules and "reports.json_report" in modules  # the probe works
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "junit.xml",
        "report.csv",
        "report.html",
        "report.json",
        "summary.md",
    ]
    assert "B" in (out / "report.html").read_text(encoding="utf-8")


def test_an_unchanged_site_is_replayed_without_loading_scrapy(tmp_path: Path) -> None:
    """The first run crawls (Scrapy); the re-run of the unchanged site is answered from
    it (crawler.rerun.replay), so Scrapy is not imported ahead of it either."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_bytes(
        html_doc("Start", '<p>Sidan har granskats 2026-10-01</p><a href="b.html">B</a>')
    )
    (www / "b.html").write_bytes(html_doc("B", "<p>B</p>"))
    with SiteServer("127.0.0.1", root=www, validators=True) as srv:
        first, first_modules = _audit(srv, tmp_path, "-q", start="/index.html")
        again, again_modules = _audit(srv, tmp_path, "-q", start="/index.html")
        asked_again = srv.not_modified
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["run"]["stats"]["replayed_from_run"] == 1
    assert asked_again >= 2  # both pages answered 304 to the re-run's pass
    assert "scrapy" in first_modules
    assert "scrapy" not in again_modules


def test_exit_codes_survive_the_fast_exit(server: SiteServer, tmp_path: Path) -> None:
    proc, _ = _audit(server, tmp_path, "--fail-on", "info", "-q")
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout + proc.stderr
    proc, _ = _audit(server, tmp_path, "--format", "json", "--fail-on", "stale_page", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc, _ = _audit(server, tmp_path, "--format", "pdf")
    assert proc.returncode == 2 and "pdf" in proc.stderr, proc.stderr


def test_the_default_schedule_is_valid() -> None:
    """Config loading skips APScheduler's check for the default schedule: it must pass."""
    s = DEFAULTS["schedule"]
    CronTrigger(day_of_week=s["day_of_week"], hour=s["hour"], minute=s["minute"])
