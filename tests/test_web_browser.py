"""The workspace in real Chromium (Playwright driving Debian's /usr/bin/chromium) against a
real ``sitewatch web`` process on 127.0.0.1, over a history made by real audits of a
loopback site:

week 1: an editor dismisses a broken link (403) with a reason in the browser -> the next
``send`` leaves it out (and says so), ``audit --fail-on error`` passes (and fails with
``--include-dismissed``); another owner's token gets 403; an expired or altered token is
refused; a POST without the CSRF token is refused; hostile page titles stay text in every
view. Week 2: the target answers 404 instead: the dismissal lapses and the problem is back.
Screenshots of the owner view, the admin view (trend chart with two points per series) and
the run view are saved under the test's tmp dir.
"""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from email import policy
from pathlib import Path
from typing import Any

import pytest

from crawler.web.tokens import Signing
from demo.server import Route, SiteServer
from tests.browser import BROWSER, CHROMIUM, CHROMIUM_ARGS, VIEWPORT
from tests.cli_runner import ROOT, sitewatch, write_config

pytestmark = BROWSER

SECRET = "k" * 48
PWN = "window.__pwned=1;alert(1)"
HOSTILE = f"&lt;/title&gt;&lt;script&gt;{PWN}&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"
SITE = "loopback site"


def html(title: str, body: str) -> bytes:
    return f'<!doctype html><meta charset="utf-8"><title>{title}</title><body>{body}'.encode()


@pytest.fixture
def site() -> Iterator[SiteServer]:
    s = SiteServer("127.0.0.1", name="web-e2e")
    s.add_route(
        "/s/index.html",
        Route(body=html(HOSTILE, '<a href="/s/blocked">Partnern</a> <a href="/s/en.html">EN</a>')),
    )
    s.add_route("/s/en.html", Route(body=html("In English", "<p>no date</p>")))
    s.add_route("/s/blocked", Route(status=403, body=b"no robots"))
    s.start()
    yield s
    s.stop()


def config_text(site: SiteServer, tmp: Path) -> str:
    start = site.url("/s/index.html")
    return f"""
[site]
name = "{SITE}"
start_urls = ["{start}"]
scopes = ["{site.url("/s/")}"]

[crawl]
timeout = 5
retries = 0

[links]
unverified_statuses = []

[history]
db = "{tmp / "h.db"}"

[email]
from_addr = "sitewatch@example.org"
outbox = "{tmp / "outbox"}"

[web]
base_url = "http://127.0.0.1:1/"

[[owners]]
match = ["{site.url("/s/en.html")}"]
name = "Emma Lind"
emails = ["emma@example.org"]
language = "en"

[[owners]]
match = ["{site.url("/s/")}"]
name = "Karin Nyström"
emails = ["karin@example.org"]
"""


class Web:
    """``sitewatch web`` as a child process on a free loopback port."""

    def __init__(self, config: Path, tmp: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SITEWATCH_WEB_SECRET": SECRET}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "crawler.app.cli",
                "web",
                "--config",
                str(config),
                "--port",
                "0",
                "--admin-open",
            ],
            cwd=tmp,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # waits for the "serving ..." line
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, (line, self.proc.stderr.read() if self.proc.stderr else "")
        self.base = m.group(0).rstrip("/")

    def stop(self) -> str:
        """Stop the server; its stderr (the request log)."""
        self.proc.terminate()
        _out, err = self.proc.communicate(timeout=30)
        return err


def owner_url(web: Web, owner: str, *, signing: Signing | None = None) -> str:
    return f"{web.base}/o/{(signing or Signing(SECRET)).owner_token(owner, SITE)}"


def inert(page: Any) -> None:
    """No script ran and none is in the document; the CSP header is there."""
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.querySelectorAll('script, iframe, object, embed').length") == 0
    on = page.evaluate(
        "[...document.querySelectorAll('*')].flatMap(e => [...e.attributes]"
        ".map(a => a.name)).filter(n => n.startsWith('on')).length"
    )
    assert on == 0


def shot(page: Any, path: Path) -> Path:
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, f"{path} is nearly empty"
    return path


def outbox_text(tmp: Path, run: int, addr: str) -> str:
    (eml,) = (tmp / "outbox").glob(f"run{run:06d}-{addr}.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    plain = msg.get_body(("plain",))
    assert plain is not None
    return str(plain.get_content())


def test_editor_workspace_end_to_end(site: SiteServer, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    config = write_config(tmp_path / "site.toml", config_text(site, tmp_path))
    env = {"SITEWATCH_WEB_SECRET": SECRET}
    week1 = sitewatch("audit", "--config", str(config), "--as-of", "2026-11-26", cwd=tmp_path)
    assert week1.code == 1, week1.stderr
    web = Web(config, tmp_path)
    dialogs: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            karin = owner_url(web, "Karin Nyström")
            r = page.goto(karin)
            assert r is not None and r.status == 200
            assert "default-src 'none'" in r.headers["content-security-policy"]
            assert r.headers["referrer-policy"] == "no-referrer"
            inert(page)
            assert "</title><script>" in page.inner_text("main")  # the title, as text
            finding = page.locator("article.finding", has_text="/s/blocked")
            assert finding.count() == 1
            fid = finding.get_attribute("id")
            assert fid is not None
            shot(page, tmp_path / "owner-view.png")

            # Another owner's token: neither see nor change Karin's finding.
            emma = owner_url(web, "Emma Lind")
            r = page.goto(f"{emma}/f/{fid.removeprefix('f-')}")
            assert r is not None and r.status == 403
            # Expired (signed 29 days ago, links live 28) and altered tokens.
            old = Signing(SECRET, clock=lambda: __import__("time").time() - 29 * 86400)
            r = page.goto(owner_url(web, "Karin Nyström", signing=old))
            assert r is not None and r.status == 403
            r = page.goto(karin[:-3] + ("xyz" if not karin.endswith("xyz") else "abc"))
            assert r is not None and r.status == 403
            # A POST without the CSRF token (the cookie alone is not enough).
            page.goto(karin)
            r = page.request.post(
                f"{karin}/decide", form={"fid": fid.removeprefix("f-"), "kind": "acknowledge"}
            )
            assert r.status == 403

            # Dismiss with a reason, in the browser.
            finding = page.locator("article.finding", has_text="/s/blocked")
            finding.locator("input[name=reason]").fill("Partnern blockerar robotar")
            finding.locator("button[value=dismiss]").click()
            page.wait_for_load_state()
            assert "Markerat som inget problem." in page.inner_text("main")
            assert "Inget problem enligt Karin Nyström" in page.inner_text("main")
            inert(page)

            # send leaves it out and says so; audit --fail-on error passes.
            sent = sitewatch("send", "--config", str(config), cwd=tmp_path, env=env)
            assert sent.code == 0, sent.stderr
            text = outbox_text(tmp_path, 1, "karin@example.org")
            assert "/s/blocked" not in text
            assert "1 problem som du har kvitterat, avfärdat eller pausat visas inte här." in text
            week1b = sitewatch(
                "audit",
                "--config",
                str(config),
                "--as-of",
                "2026-11-27",
                "--fail-on",
                "error",
                cwd=tmp_path,
            )
            assert week1b.code == 0, week1b.stdout + week1b.stderr
            strict = sitewatch(
                "audit",
                "--config",
                str(config),
                "--as-of",
                "2026-11-28",
                "--fail-on",
                "error",
                "--include-dismissed",
                cwd=tmp_path,
            )
            assert strict.code == 1
            report = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
            assert "Not a problem (Karin Nyström): Partnern blockerar robotar" in report

            # Week 2: the target now answers 404: the dismissal lapses.
            site.add_route("/s/blocked", Route(status=404, body=b"gone"))
            week2 = sitewatch(
                "audit",
                "--config",
                str(config),
                "--as-of",
                "2026-12-03",
                "--fail-on",
                "error",
                cwd=tmp_path,
            )
            assert week2.code == 1, week2.stdout
            page.goto(karin)
            back = page.locator("article.finding", has_text="/s/blocked")
            assert back.count() == 1 and back.locator("button[value=dismiss]").count() == 1
            assert "(404)" in back.inner_text()
            sent = sitewatch("send", "--config", str(config), cwd=tmp_path, env=env)
            assert "/s/blocked" in outbox_text(tmp_path, 4, "karin@example.org")

            # Admin view with the trend chart, and the run view; hostile title inert.
            r = page.goto(f"{web.base}/admin")
            assert r is not None and r.status == 200
            inert(page)
            points = page.locator("svg.trend circle.pt-errors").count()
            assert points == 4  # four finished runs of the site
            assert "Partnern blockerar robotar" in page.inner_text("main")
            shot(page, tmp_path / "admin-view.png")
            r = page.goto(f"{web.base}/admin/run/1")
            assert r is not None and r.status == 200
            inert(page)
            assert page.evaluate("getComputedStyle(document.body).fontFamily") != "Times New Roman"
            shot(page, tmp_path / "run-view.png")
            browser.close()
    finally:
        log = web.stop()
    assert dialogs == []
    # The request log masks editors' tokens and never holds the key.
    assert '"GET /o/<token>" 200' in log, log[-2000:]
    assert "/o/eyJ" not in log and SECRET not in log
