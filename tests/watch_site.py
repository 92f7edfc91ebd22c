"""A small fixture site with a page that can be held open, and sitewatch configs for it.

Used by the persistence, delivery and secrets tests. The site (on 127.0.0.1) has a root
page, a Swedish section (``/sv/``, owner Karin) and an English one (``/en/``, owner Ed);
each section has one broken link (``/sv/borta.html`` and ``/en/gone.html`` answer 404).
``/sv/slow.html`` is served by a *gated* handler: a request from a crawler whose
User-Agent has a closed gate waits until the gate is opened, so a test can hold an audit
in the middle of its crawl for as long as it needs (no sleeps, no timing).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from demo.server import Route, SiteServer
from tests.cli_runner import ROOT

AS_OF = "2026-01-15"
KARIN, ED, WEBB = "karin@kommun.example", "ed@kommun.example", "webb@kommun.example"


def page(title: str, body: str, reviewed: str = "2025-12-01") -> str:
    return (
        f'<!doctype html><html lang="sv"><head><meta charset="utf-8"><title>{title}</title>'
        f"</head><body>{body}<footer>Sidan har granskats {reviewed}</footer></body></html>"
    )


class GatedSite:
    """The fixture site; ``gate(ua)`` holds requests for /sv/slow.html from that UA."""

    SLOW = "/sv/slow.html"

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._lock = threading.Lock()
        self._gates: dict[str, threading.Event] = {}
        #: User-Agent -> requests that reached the slow page (counted on arrival).
        self.arrivals: Counter[str] = Counter()
        self._closing = threading.Event()
        self.server = SiteServer(host)
        s = self.server
        s.add_route(
            "/index.html",
            Route(
                body=page(
                    "Start",
                    '<a href="/sv/index.html">Svenska</a> <a href="/en/index.html">English</a>',
                )
            ),
        )
        s.add_route(
            "/sv/index.html",
            Route(
                body=page(
                    "Vänorter",
                    '<a href="slow.html">Långsam</a> <a href="borta.html">Borta</a> '
                    '<a href="p1.html">Sida 1</a>',
                )
            ),
        )
        s.add_route("/sv/p1.html", Route(body=page("Sida 1", "<p>Text</p>")))
        s.add_route(
            "/en/index.html",
            Route(body=page("Twin towns", '<a href="gone.html">Gone</a> <a href="p1.html">P1</a>')),
        )
        s.add_route("/en/p1.html", Route(body=page("Page 1", "<p>Text</p>")))
        s.add_route(self.SLOW, Route(handler=self._slow))

    # -- gates -------------------------------------------------------------------------

    def gate(self, ua: str) -> threading.Event:
        """The gate of one User-Agent (created closed)."""
        with self._lock:
            return self._gates.setdefault(ua, threading.Event())

    def arrived(self, ua: str) -> int:
        with self._lock:
            return self.arrivals[ua]

    def _slow(self, h: BaseHTTPRequestHandler) -> None:
        ua = h.headers.get("User-Agent", "")
        with self._lock:
            self.arrivals[ua] += 1
            gate = self._gates.get(ua)
        if gate is not None:
            while not gate.wait(0.05):
                if self._closing.is_set():
                    return
        body = page("Långsam sida", "<p>Till slut.</p>").encode()
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)
        h.wfile.flush()

    def fix_link(self) -> None:
        """The editor fixes /sv/borta.html (it answers 200 from now on)."""
        self.server.add_route("/sv/borta.html", Route(body=page("Tillbaka", "<p>Här</p>")))

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def start_url(self) -> str:
        return self.server.url("/index.html")

    def __enter__(self) -> GatedSite:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self.server.stop()


def site_config(
    path: Path,
    *,
    start_url: str,
    base_url: str,
    db: Path,
    out: Path,
    name: str = "kommun",
    ua: str = "sitewatch-test",
    smtp: str = "",
    email_extra: str = "",
    top: str = "",
) -> Path:
    """Write a config; ``smtp`` is the body of an ``[email.smtp]`` table (empty: outbox)."""
    smtp_table = f"\n[email.smtp]\n{smtp}\n" if smtp else ""
    path.write_text(
        f"""{top}
[site]
name = "{name}"
start_urls = ["{start_url}"]

[crawl]
user_agent = "{ua}"
timeout = 120
retries = 0
check_external = false

[report]
out_dir = "{out}"
formats = ["json", "md"]

[history]
db = "{db}"

[email]
from_addr = "sitewatch@kommun.example"
fallback_to = "{WEBB}"
outbox = "{out / "outbox"}"
send_all_clear = true
{email_extra}
{smtp_table}
[[owners]]
match = ["{base_url}/sv/"]
name = "Karin"
emails = ["{KARIN}"]
language = "sv"

[[owners]]
match = ["{base_url}/en/"]
name = "Ed"
emails = ["{ED}"]
language = "en"
""",
        encoding="utf-8",
    )
    return path


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **(extra or {})}


def start_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``sitewatch ARGS`` as a child process that keeps running (stdout/stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-m", "crawler.app.cli", *args],
        cwd=cwd,
        env=cli_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate: Callable[[], bool], seconds: float = 90, what: str = "") -> None:
    """Poll until ``predicate()``; fail (not a timing assertion: a generous deadline)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    if not predicate():
        raise AssertionError(f"gave up waiting for {what or predicate}")


def db_rows(db: Path, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Read the history with a plain connection (as an admin with sqlite3 would)."""
    if not db.exists():
        return []
    con = sqlite3.connect(db, timeout=30)
    try:
        return [tuple(r) for r in con.execute(sql, args)]
    except sqlite3.OperationalError:  # no tables yet
        return []
    finally:
        con.close()


def integrity(db: Path) -> str:
    con = sqlite3.connect(db, timeout=30)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()
