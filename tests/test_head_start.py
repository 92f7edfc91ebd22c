"""The head start (crawler.head_start): pages fetched while Scrapy imports change nothing
in what the audit reports, and nothing in what the site sees but the order."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from checks.policy import Policy
from crawler.crawl_state import CrawlParams, CrawlState
from crawler.fetch_cache import PassSettings
from crawler.head_start import HEAD_START_ENV, HeadStart, read_taken
from crawler.parse_worker import read_page
from crawler.replay import REPLAY_ENV
from crawler.urls import ResolveCache
from demo.server import Route, SiteServer
from tests.cli_runner import CliResult, resolve_found_on, sitewatch, write_config
from tests.faults import html_doc

AS_OF = ("--as-of", "2026-11-26")
REVIEWED = "<p>Sidan har granskats 2026-10-01</p>"


def _page(title: str, links: list[str], extra: str = "") -> bytes:
    body = "".join(f'<a href="{href}">{href}</a> ' for href in links)
    return html_doc(title, f'<h2 id="sec">{title}</h2>{body}{extra}{REVIEWED}')


def _site() -> dict[str, Route]:
    """Three levels of pages with links across levels (a page found one level too deep
    would show), a redirect, a 404, a PDF, a page robots.txt forbids, a page in
    ISO-8859-1, one with no charset anywhere (read by the spider), one served as text."""
    routes = {
        "/robots.txt": Route(
            body="User-agent: *\nDisallow: /hs/privat/\n", content_type="text/plain"
        ),
        "/hs/index.html": Route(
            body=_page(
                "Start",
                [f"a{i}.html" for i in range(6)]
                + [
                    "privat/hemlig.html",
                    "flyttad.html",
                    "saknas.html",
                    "flyer.pdf",
                    "latin.html",
                    "okand.html",
                    "text.html",
                    "a1.html#sec",
                    "a2.html#saknas",
                ],
            )
        ),
        "/hs/flyttad.html": Route(status=301, redirect_to="/hs/a0.html"),
        "/hs/saknas.html": Route(status=404, body=html_doc("Saknas", "<p>Finns inte</p>")),
        "/hs/flyer.pdf": Route(body=b"%PDF-1.4\n%%EOF\n", content_type="application/pdf"),
        "/hs/privat/hemlig.html": Route(body=_page("Hemlig", [])),
        "/hs/latin.html": Route(
            body="<html><head><title>Växjö</title></head><body><p>Åäö</p></body></html>".encode(
                "iso-8859-1"
            ),
            content_type="text/html; charset=iso-8859-1",
        ),
        "/hs/okand.html": Route(
            body="<html><head><title>Umeå</title></head><body><p>Öar</p></body></html>".encode(
                "cp1252"
            ),
            content_type="text/html",
        ),
        "/hs/text.html": Route(body="bara text\n", content_type="text/plain; charset=utf-8"),
    }
    for i in range(6):
        # a_i links to b_i and to the next a (same level), b_i to c_i and back to the start.
        routes[f"/hs/a{i}.html"] = Route(
            body=_page(f"A{i}", [f"b{i}.html", f"a{(i + 1) % 6}.html#sec", "c0.html"])
        )
        routes[f"/hs/b{i}.html"] = Route(
            body=_page(f"B{i}", [f"c{i}.html", "index.html", "https://127.0.0.9:1/ute"])
        )
        routes[f"/hs/c{i}.html"] = Route(body=_page(f"C{i}", ["a0.html"]))
    return routes


@pytest.fixture(scope="module")
def server():
    s = SiteServer("127.0.0.1", name="head-start", routes=_site())
    s.start()
    yield s
    s.stop()


def _audit(server: SiteServer, where: Path, head_start: bool, history: bool) -> CliResult:
    where.mkdir()
    db = f'\n[history]\ndb = "{where / "history.db"}"\n' if history else ""
    cfg = write_config(
        where / "site.toml",
        f'[site]\nstart_urls = ["{server.url("/hs/index.html")}"]\n'
        f'scopes = ["{server.url("/hs/")}"]\n{db}',
    )
    args = ["audit", "--config", str(cfg), *AS_OF, "-q"]
    if not history:
        args.append("--no-history")
    r = sitewatch(*args, cwd=where, env={HEAD_START_ENV: "1" if head_start else "0"})
    assert r.code in (0, 1), r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    return r


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    """The report without what depends on timing: pages by URL, links with ``found_on``
    in a fixed order (the crawl's order varies), findings sorted."""

    def link(d: dict[str, Any]) -> dict[str, Any]:
        return {**d, "found_on": sorted(d["found_on"], key=lambda f: json.dumps(f, sort_keys=True))}

    return {
        "pages": {p["url"]: p for p in report["pages"]},
        "links": {d["url"]: link(d) for d in resolve_found_on(report)["links"]},
        "findings": sorted(json.dumps(f, sort_keys=True) for f in report["findings"]),
    }


@pytest.mark.parametrize("history", [False, True], ids=["no-history", "history"])
def test_same_report_with_and_without(server: SiteServer, tmp_path: Path, history: bool) -> None:
    server.reset()
    without = _audit(server, tmp_path / "without", head_start=False, history=history)
    hits_without = Counter((m, p) for m, p, _ in server.requests)
    server.reset()
    with_ = _audit(server, tmp_path / "with", head_start=True, history=history)
    hits_with = Counter((m, p) for m, p, _ in server.requests)

    stats = with_.report["run"]["stats"]
    assert stats["head_start_used"] >= 10, stats  # the small site is taken whole
    assert "head_start_used" not in without.report["run"]["stats"]
    assert _comparable(with_.report) == _comparable(without.report)
    pages = with_.pages()
    # Depths as clicks from the start: no page of the head start one level too deep.
    assert pages[server.url("/hs/c3.html")]["depth"] == 3
    assert pages[server.url("/hs/c0.html")]["depth"] == 2
    assert pages[server.url("/hs/okand.html")]["title"] == "Umeå"
    assert pages[server.url("/hs/latin.html")]["title"] == "Växjö"

    # The site sees the same requests, each page once, robots.txt read by both the
    # head start and Scrapy, and never the page robots.txt forbids.
    assert hits_with.pop(("GET", "/robots.txt")) == 2
    assert hits_without.pop(("GET", "/robots.txt")) == 1
    assert hits_with == hits_without
    assert max(hits_with.values()) == 1
    assert ("GET", "/hs/privat/hemlig.html") not in hits_with


def test_rerun_replays_what_the_head_start_stored(tmp_path: Path) -> None:
    """The re-run cache rows the head start's pages left (encoded in its child) are what
    the spider would have stored: the re-run of the unchanged site gets a 304 for every
    page that answered 200 and replays each from its row, with the same report."""
    site = tmp_path / "site"
    (site / "hs").mkdir(parents=True)
    (site / "robots.txt").write_text("User-agent: *\nDisallow: /hs/privat/\n")
    for path, route in _site().items():
        if path.startswith("/hs/") and route.status == 200 and isinstance(route.body, bytes):
            file = site / path.lstrip("/")
            file.parent.mkdir(exist_ok=True)
            file.write_bytes(route.body)
    with SiteServer("127.0.0.1", root=site, validators=True, name="static") as static:
        first = _audit(static, tmp_path / "run", head_start=True, history=True)
        assert first.report["run"]["stats"]["head_start_used"] >= 10
        cfg = tmp_path / "run" / "site.toml"
        again = sitewatch(
            "audit",
            "--config",
            str(cfg),
            *AS_OF,
            "-q",
            cwd=tmp_path / "run",
            env={REPLAY_ENV: "0", HEAD_START_ENV: "1"},
        )
    assert again.code == first.code, again.stderr
    stats = again.report["run"]["stats"]
    answered = [p for p in first.report["pages"] if p["status"] == 200]
    assert stats["pages_not_modified"] == len(answered) >= 10, stats
    assert _comparable(again.report) == _comparable(first.report)


def _state(server: SiteServer, max_pages: int = 5000) -> tuple[CrawlState, PassSettings]:
    params = CrawlParams(
        start_urls=(server.url("/hs/index.html"),),
        scopes=(server.url("/hs/"),),
        max_pages=max_pages,
    )
    settings = PassSettings(user_agent="sitewatch-test", concurrency=4, per_host=2, timeout=5)
    return CrawlState(params, Policy()), settings


def _take_all(server: SiteServer, max_pages: int = 5000) -> dict[str, bytes]:
    """The head start's answers once the child has fetched what it will (the server saw
    no request for a while): ``take`` lets it start nothing new."""
    state, settings = _state(server, max_pages)
    server.reset()
    head = HeadStart.start(state, settings, (), record=False)
    assert head is not None
    try:
        seen, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 0.5:
            time.sleep(0.05)
            if len(server.requests) != seen:
                seen, quiet_since = len(server.requests), time.monotonic()
        return head.take()
    finally:
        head.close()
        assert head.pid is None


def test_take_gives_each_page_as_the_parse_worker_reads_it(server: SiteServer) -> None:
    answers = _take_all(server)
    got = {url: read_taken(frame) for url, frame in answers.items()}
    index = server.url("/hs/index.html")
    assert next(iter(got)) == index  # breadth first from the start URL
    assert server.url("/hs/privat/hemlig.html") not in got
    assert server.url("/hs/flyer.pdf") not in got  # not a page the crawl would fetch
    moved = got[server.url("/hs/flyttad.html")]
    assert moved is not None and moved.status == 301 and moved.reading is None
    assert dict(moved.headers)["location"].endswith("/hs/a0.html")
    unknown = got[server.url("/hs/okand.html")]  # no charset: left to the spider to read
    assert unknown is not None and unknown.reading is None and unknown.encoding is None
    start = got[index]
    assert start is not None and start.reading is not None and start.encoding == "utf-8"
    full = _site()["/hs/index.html"].body
    assert isinstance(full, bytes)
    assert start.body == full[:4096]
    assert start.reading == read_page(full, "utf-8", index, None, (), True, ResolveCache())


def test_max_pages_bounds_the_head_start(server: SiteServer) -> None:
    answers = _take_all(server, max_pages=3)
    assert len(answers) == 3
    assert len([p for _, p, _ in server.requests if p.startswith("/hs/")]) == 3


def test_take_waits_for_the_request_under_way(tmp_path: Path) -> None:
    """A page still being served when the spider takes the answers is finished and taken:
    the crawl never has requests in flight beside the head start's."""
    slow = SiteServer("127.0.0.1", name="slow")
    slow.add_route("/hs/index.html", Route(body=_page("Start", []), delay=0.5))
    with slow:
        state, settings = _state(slow)
        head = HeadStart.start(state, settings, (), record=False)
        assert head is not None
        try:
            deadline = time.monotonic() + 10
            while not slow.hits("/hs/index.html") and time.monotonic() < deadline:
                time.sleep(0.01)
            answers = head.take()
            served = [s for s in slow.spans if s[1] == "/hs/index.html"]
        finally:
            head.close()
    assert list(answers) == [slow.url("/hs/index.html")]
    assert len(served) == 1  # answered in full before take() returned


def test_child_ends_when_the_audit_process_is_gone() -> None:
    """Killed, the audit process closes its end of the socket (the kernel does): the
    child stops at once, mid-request, instead of outliving it."""
    slow = SiteServer("127.0.0.1", name="slower")
    slow.add_route("/hs/index.html", Route(body=_page("Start", []), delay=5))
    with slow:
        state, settings = _state(slow)
        head = HeadStart.start(state, settings, (), record=False)
        assert head is not None and head.pid is not None and head._sock is not None
        pid = head.pid
        deadline = time.monotonic() + 10
        while not slow.hits("/hs/index.html") and time.monotonic() < deadline:
            time.sleep(0.01)
        head._sock.close()  # as when the audit process is killed
        head._sock = None
        gone = time.monotonic() + 2
        while os.waitpid(pid, os.WNOHANG)[0] == 0:
            assert time.monotonic() < gone, "the child outlived the audit process"
            time.sleep(0.01)
        head.pid = None


def test_closed_without_taking_leaves_no_process(server: SiteServer) -> None:
    state, settings = _state(server)
    head = HeadStart.start(state, settings, (), record=False)
    assert head is not None
    pid = head.pid
    assert pid is not None
    head.close()  # the audit failed before the spider started
    assert head.pid is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    assert head.take() == {}


def test_nothing_to_take_from_a_start_url_that_does_not_answer() -> None:
    params = CrawlParams(start_urls=("http://127.0.0.1:9/x.html",), scopes=("http://127.0.0.1:9/",))
    settings = PassSettings(user_agent="sitewatch-test", concurrency=4, per_host=2, timeout=2)
    head = HeadStart.start(CrawlState(params, Policy()), settings, (), record=False)
    assert head is not None
    try:
        assert head.take() == {}
    finally:
        head.close()
