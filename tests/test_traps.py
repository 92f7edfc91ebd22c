"""Crawl traps: URL spaces without end, served on loopback, each audited by the real CLI.

Every trap must be bounded (the audit finishes well within the subprocess timeout, with
far fewer pages than ``crawl.max_pages``) and, where pages were left out, reported
(``run.incomplete_reasons`` names the trap, ``run.stats.traps`` lists examples). Session
ids in URLs are not a trap at all once normalised away: the finite site is crawled once.
"""

from __future__ import annotations

import itertools
import random
import re
import string
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from demo.server import Route, SiteServer
from tests.cli_runner import CliResult, sitewatch, write_config
from tests.faults import html_doc

MAX_PAGES = 400
PER_PATTERN = 20
MAX_SEGMENTS = 15
LINKS_ON_ONE_PAGE = 50_000
SUBPROCESS_TIMEOUT = 240

_rng = random.Random(11)


def _token(n: int = 24) -> str:
    return "".join(_rng.choice(string.ascii_uppercase + string.digits) for _ in range(n))


def _send_html(h: Any, body: bytes) -> None:
    head = h.command == "HEAD"
    h.send_response(200)
    h.send_header("Content-Type", "text/html; charset=utf-8")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    if not head:
        h.wfile.write(body)


def calendar(h: Any) -> None:
    """/calendar/YYYY/MM/: a month view linking to the previous and the next month."""
    m = re.search(r"/calendar/(\d+)/(\d+)/", h.path)
    year, month = (int(m.group(1)), int(m.group(2))) if m else (2026, 11)
    nxt = (year + month // 12, month % 12 + 1)
    prev = (year - (month == 1), 12 if month == 1 else month - 1)
    body = (
        f'<a href="/calendar/{nxt[0]}/{nxt[1]:02d}/">Nästa månad</a>'
        f'<a href="/calendar/{prev[0]}/{prev[1]:02d}/">Förra månaden</a>'
    )
    _send_html(h, html_doc(f"Kalender {year}-{month:02d}", body))


def calendar_query(h: Any) -> None:
    """/calq/?day=N: a day view linking to day N+1 (query-string calendar)."""
    q = dict(parse_qsl(urlsplit(h.path).query))
    day = int(q.get("day", "0") or 0)
    _send_html(h, html_doc(f"Dag {day}", f'<a href="?day={day + 1}">Nästa dag</a>'))


def session_site(h: Any) -> None:
    """Three pages whose links carry a fresh session id on every answer."""
    path = urlsplit(h.path).path
    name = path.rsplit("/", 1)[-1].split(";", 1)[0] or "a.html"
    links = "".join(
        f'<a href="{p};jsessionid={_token()}">{p} (jsessionid)</a>'
        f'<a href="{p}?sid={_token()}">{p} (sid)</a>'
        f'<a href="{p}?PHPSESSID={_token(26).lower()}&amp;lang=sv">{p} (PHPSESSID)</a>'
        for p in ("a.html", "b.html", "c.html")
    )
    _send_html(h, html_doc(f"Sida {name}", links + "<p>Senast granskad: 2026-10-01</p>"))


def sorted_list(h: Any) -> None:
    """A listing sortable by every column, both ways, in two views, paged without end."""
    q = dict(parse_qsl(urlsplit(h.path).query))
    page = int(q.get("page", "1") or 1)
    links = []
    for sort, order, view in itertools.product(
        ("name", "date", "size", "type"), ("asc", "desc"), ("list", "grid")
    ):
        params = [f"sort={sort}", f"order={order}", f"view={view}", f"page={page + 1}"]
        _rng.shuffle(params)
        links.append(f'<a href="list.html?{"&amp;".join(params)}">{sort} {order}</a>')
    _send_html(h, html_doc(f"Lista sida {page}", "".join(links)))


def growing_path(h: Any) -> None:
    """Any path under /grow/ answers 200 with relative links that grow the path."""
    body = '<a href="a/">A</a><a href="more/">Mer</a><a href="./a/b/">A/B</a>'
    _send_html(h, html_doc("Växande", body))


def growing_numbers(h: Any) -> None:
    """/deep/1/2/3/...: every page links one level deeper with a new number."""
    segs = [s for s in urlsplit(h.path).path.split("/") if s]
    _send_html(h, html_doc("Djup", f'<a href="{len(segs)}/">djupare</a>'))


def many_links_page() -> bytes:
    links = "\n".join(f'<a href="p/{i}.html">Sida {i}</a>' for i in range(LINKS_ON_ONE_PAGE))
    return html_doc("Många länkar", links)


def small_page(h: Any) -> None:
    _send_html(h, html_doc("Liten", "<p>Senast granskad: 2026-10-01</p>"))


@pytest.fixture(scope="module")
def server():
    s = SiteServer("127.0.0.1", name="traps")
    s.add_route("/calendar/index.html", Route(body=html_doc("Start", '<a href="2026/11/">Nov</a>')))
    s.add_route("/calendar/*", Route(handler=calendar))
    s.add_route("/calq/index.html", Route(body=html_doc("Start", '<a href="./?day=1">Dag 1</a>')))
    s.add_route("/calq/*", Route(handler=calendar_query))
    s.add_route("/session/*", Route(handler=session_site))
    s.add_route("/sort/index.html", Route(body=html_doc("Start", '<a href="list.html">Lista</a>')))
    s.add_route("/sort/*", Route(handler=sorted_list))
    s.add_route("/grow/*", Route(handler=growing_path))
    s.add_route("/deep/*", Route(handler=growing_numbers))
    s.add_route("/many/index.html", Route(body=many_links_page()))
    s.add_route("/many/p/*", Route(handler=small_page))
    s.start()
    yield s
    s.stop()


def audit(server: SiteServer, start: str, tmp_path: Path, **crawl: int) -> CliResult:
    settings = {
        "max_pages": MAX_PAGES,
        "max_pages_per_pattern": PER_PATTERN,
        "max_path_segments": MAX_SEGMENTS,
        **crawl,
    }
    lines = "\n".join(f"{k} = {v}" for k, v in settings.items())
    cfg = write_config(
        tmp_path / "site.toml",
        f"""
[site]
start_urls = ["{server.url(start)}"]

[crawl]
timeout = 5
concurrency = 8
{lines}
""",
    )
    r = sitewatch(
        "audit", "--config", str(cfg), "--as-of", "2026-11-26", "-q",
        cwd=tmp_path, timeout=SUBPROCESS_TIMEOUT,
    )  # fmt: skip
    assert r.code in (0, 1), r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    return r


def pages_under(r: CliResult, server: SiteServer, prefix: str) -> list[str]:
    return [u for u in r.pages() if u.startswith(server.url(prefix))]


def assert_trap_reported(r: CliResult, why: str) -> None:
    run = r.report["run"]
    stats = run["stats"]
    print(
        f"pages={run['pages_crawled']} links={len(r.report['links'])} "
        f"seconds={stats['seconds']} requests={stats['requests']} "
        f"reasons={run['incomplete_reasons']}"
    )
    assert run["complete"] is False
    assert any(reason.startswith("crawl trap: ") for reason in run["incomplete_reasons"]), run
    assert run["stats"]["traps"], run["stats"]
    assert any(why in w for w in run["stats"]["traps"].values()), run["stats"]["traps"]
    assert not any("max_pages" in reason for reason in run["incomplete_reasons"]), run


def test_endless_calendar(server: SiteServer, tmp_path: Path) -> None:
    r = audit(server, "/calendar/index.html", tmp_path)
    months = pages_under(r, server, "/calendar/2")
    assert 1 <= len(months) <= PER_PATTERN, len(months)
    assert_trap_reported(r, "pages shaped")


def test_endless_query_calendar(server: SiteServer, tmp_path: Path) -> None:
    r = audit(server, "/calq/index.html", tmp_path, max_depth=100)
    days = [u for u in pages_under(r, server, "/calq/") if "day=" in u]
    assert 1 <= len(days) <= PER_PATTERN, len(days)
    assert_trap_reported(r, "pages shaped")


def test_depth_limit_stops_and_is_reported(server: SiteServer, tmp_path: Path) -> None:
    """A chain one link deeper each page stops at crawl.max_depth, and says so."""
    r = audit(server, "/calq/index.html", tmp_path, max_depth=5, max_pages_per_pattern=1000)
    days = [u for u in pages_under(r, server, "/calq/") if "day=" in u]
    assert len(days) == 5, sorted(days)
    run = r.report["run"]
    assert run["complete"] is False
    assert "max_depth (5) reached" in run["incomplete_reasons"], run["incomplete_reasons"]


def test_session_ids_are_normalised_away(server: SiteServer, tmp_path: Path) -> None:
    r = audit(server, "/session/a.html", tmp_path)
    pages = set(pages_under(r, server, "/session/"))
    base = server.url("/session/")
    names = ("a.html", "b.html", "c.html")
    assert pages == {base + n for n in names} | {base + n + "?lang=sv" for n in names}, pages
    assert r.report["run"]["complete"] is True, r.report["run"]["incomplete_reasons"]
    for url in r.links():
        low = url.lower()
        assert "jsessionid" not in low and "sid=" not in low and "phpsessid" not in low, url


def test_sort_permutations(server: SiteServer, tmp_path: Path) -> None:
    r = audit(server, "/sort/index.html", tmp_path)
    lists = [u for u in pages_under(r, server, "/sort/") if "?" in u]
    assert 1 <= len(lists) <= PER_PATTERN, len(lists)
    assert_trap_reported(r, "pages shaped")


def test_growing_path(server: SiteServer, tmp_path: Path) -> None:
    r = audit(server, "/grow/", tmp_path)
    pages = pages_under(r, server, "/grow/")
    assert len(pages) < 100, len(pages)
    assert max(len(urlsplit(u).path.split("/")) for u in pages) <= MAX_SEGMENTS + 2
    assert_trap_reported(r, "path grows without end")


def test_growing_numbered_path(server: SiteServer, tmp_path: Path) -> None:
    r = audit(server, "/deep/", tmp_path, max_depth=100)
    pages = pages_under(r, server, "/deep/")
    assert len(pages) <= MAX_SEGMENTS + 1, len(pages)
    assert_trap_reported(r, "path grows without end")


def test_fifty_thousand_links_on_one_page(server: SiteServer, tmp_path: Path) -> None:
    r = audit(server, "/many/index.html", tmp_path)
    pages = pages_under(r, server, "/many/p/")
    assert 1 <= len(pages) <= PER_PATTERN, len(pages)
    assert_trap_reported(r, "pages shaped")
    links = [link for u, link in r.links().items() if u.startswith(server.url("/many/p/"))]
    assert len(links) == LINKS_ON_ONE_PAGE  # every link is in the report ...
    checked = [link for link in links if link["verdict"] != "skipped"]
    # ... up to twice max_pages_per_pattern are fetched (crawled, then checked), ...
    assert len(checked) == 2 * PER_PATTERN, len(checked)
    assert all(link["verdict"] == "ok" for link in checked)
    # ... and the rest are skipped as over a limit, which the run says.
    assert {(link["verdict"], link["detail"]) for link in links if link not in checked} == {
        ("skipped", "limit")
    }
    unchecked = LINKS_ON_ONE_PAGE - 2 * PER_PATTERN
    reasons = r.report["run"]["incomplete_reasons"]
    assert f"{unchecked} links into crawl traps not checked" in reasons, reasons
    assert sum(1 for _, path, _ in server.requests if path.startswith("/many/p/")) == 40


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("a.html;jsessionid=0AB12CD34EF", "http://h/s/a.html"),
        ("a.html;JSESSIONID=0AB12CD34EF?lang=sv", "http://h/s/a.html?lang=sv"),
        ("a.html?PHPSESSID=abc&lang=sv", "http://h/s/a.html?lang=sv"),
        ("a.html?lang=sv&sid=0123456789abcdef0123", "http://h/s/a.html?lang=sv"),
        ("/(S(lit3py55t21z5v55vlm25s55))/sida.aspx", "http://h/sida.aspx"),
        # Not session ids: kept.
        ("a.html?sid=3", "http://h/s/a.html?sid=3"),  # "sida 3"
        ("a.html?sidebar=1&consider=2", "http://h/s/a.html?sidebar=1&consider=2"),
        ("a.html;v=2", "http://h/s/a.html;v=2"),
    ],
)
def test_session_ids_stripped_when_normalising(href: str, expected: str) -> None:
    from crawler.pages.urls import resolve

    assert resolve("http://h/s/index.html", href).base == expected
