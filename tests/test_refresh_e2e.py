"""End to end: percent-encoded ``#fragments`` and ``<meta http-equiv=refresh>`` through the
real ``sitewatch audit`` against a static site on 127.0.0.16 (served with validators, so a
second run goes through the re-run cache's 304 path) and an outside one on 127.0.0.17.

The site is a javadoc-like tree: ``/docs/index.html`` refreshes to ``api/index.html``
(the audit must crawl on), whose page links with javadoc's and a Swedish CMS's
percent-encoded fragments, to pages that refresh quickly (followed), slowly (reported as a
redirect), in a loop, to a missing page and through an HTTP redirect. A second start URL
``/x/index.html`` refreshes out of its directory to ``/y/``, which is crawled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from demo.server import Route, SiteServer
from tests.cli_runner import CliResult, sitewatch, write_config
from tests.test_audit_e2e import closed_port


def page(title: str, body: str, head: str = "") -> str:
    return (
        '<!doctype html><html lang="sv"><head><meta charset="utf-8">'
        f"<title>{title}</title>{head}</head><body>{body}"
        "<footer>Senast granskad: 2026-02-03</footer></body></html>"
    )


def refresh(content: str) -> str:
    return f'<meta http-equiv="refresh" content="{content}">'


BYTE_IDS = (
    '<h2 id="&lt;init&gt;(byte)">c</h2><h2 id="wrap(byte[])">w</h2>'
    '<h2 id="kontakt-och-öppettider">k</h2><h2 id="a b">s</h2><a name="a+b">p</a>'
)
API_LINKS = [
    ("Byte.html#%3Cinit%3E(byte)", "ok"),
    ("Byte.html#wrap(byte%5B%5D)", "ok"),
    ("Byte.html#kontakt-och-%C3%B6ppettider", "ok"),
    ("Byte.html#kontakt-och-öppettider", "ok"),
    ("Byte.html#a%20b", "ok"),
    ("Byte.html#a b", "ok"),
    ("Byte.html#a+b", "ok"),
    ("Byte.html#a%2Bb", "ok"),
    ("Byte.html#TOP", "ok"),
    ("Byte.html#saknas", "broken"),
    ("Byte.html#%3Cinit%3E(int)", "broken"),
    ("moved.html#sektion", "ok"),  # on the page the refresh leads to
    ("moved.html#saknas", "broken"),
    ("http-moved.html#%3Cinit%3E(byte)", "ok"),  # on the page the 302 leads to
    ("http-moved.html#wrap(byte)", "broken"),
]


def write_site(www: Path, outside: str) -> None:
    files = {
        "docs/index.html": page("Javadoc", "<p>Redirecting…</p>", refresh("0; url=api/index.html")),
        "docs/api/index.html": page(
            "API",
            "".join(f'<a href="{h}">l{i}</a>' for i, (h, _) in enumerate(API_LINKS))
            + '<a href="moved.html">Flyttad</a><a href="slow.html">Långsam</a>'
            + '<a href="loop1.html">Slinga</a><a href="to404.html">Till saknad</a>'
            + f'<a href="{outside}/hop.html#sektion">Ut</a>',
        ),
        "docs/api/Byte.html": page("Byte", BYTE_IDS),
        "docs/api/moved.html": page("Flyttad", "", refresh("0;URL='new.html'")),
        "docs/api/new.html": page("Ny", '<h2 id="sektion">S</h2><a href="deep.html">Djup</a>'),
        "docs/api/deep.html": page("Djup", "<p>Nådd via omdirigeringen</p>"),
        "docs/api/slow.html": page("Långsam", "<p>Flyttat</p>", refresh("10; url=later.html")),
        "docs/api/later.html": page("Senare", "<p>Dit den långsamma leder</p>"),
        "docs/api/loop1.html": page("L1", "", refresh("0; url=loop2.html")),
        "docs/api/loop2.html": page("L2", "", refresh("0; url=loop1.html")),
        "docs/api/to404.html": page("Till 404", "", refresh("1; url=gone.html")),
        "x/index.html": page("X", "", refresh("0, URL=/y/")),
        "y/index.html": page("Y", '<a href="page2.html">Två</a>'),
        "y/page2.html": page("Y2", "<p>Nådd</p>"),
    }
    for name, text in files.items():
        path = www / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("refresh")
    www = tmp / "www"
    outside = SiteServer("127.0.0.17", name="outside")
    write_site(www, outside.base_url)
    main = SiteServer("127.0.0.16", root=www, name="javadoc", validators=True)
    main.add_route("/docs/api/http-moved.html", Route(status=302, redirect_to="Byte.html"))
    to_new = refresh(f"0; url={main.url('/docs/api/new.html')}")
    outside.add_route("/hop.html", Route(body=page("Ute", "", to_new)))
    cfg = write_config(
        tmp / "site.toml",
        f"""
[site]
name = "refresh"
start_urls = ["{main.url("/docs/index.html")}", "{main.url("/x/index.html")}"]
[crawl]
obey_robots = false
timeout = 5
[history]
db = "{tmp / "history.db"}"
""",
    )
    for s in (main, outside):
        s.start()
    runs: list[CliResult] = []

    def audit() -> CliResult:
        n = len(runs)
        r = sitewatch(
            "audit", "--config", str(cfg), "--out", str(tmp / f"out{n}"),
            "--as-of", "2026-11-27", "--format", "json", cwd=tmp,
        )  # fmt: skip
        assert r.code in (0, 1), r.stderr
        runs.append(r)
        return r

    yield {"main": main, "outside": outside, "audit": audit, "runs": runs}
    for s in (main, outside):
        s.stop()


@pytest.fixture(scope="module")
def first(site) -> CliResult:
    return site["audit"]()


def link(r: CliResult, main: SiteServer, path: str) -> dict[str, Any]:
    links = r.links()
    url = main.url(path) if path.startswith("/") else path
    assert url in links, f"{url} not among {sorted(links)}"
    return links[url]


def test_start_url_refresh_is_followed(first: CliResult, site) -> None:
    main = site["main"]
    pages = first.pages()
    start = main.url("/docs/index.html")
    assert pages[start]["final_url"] == main.url("/docs/api/index.html")
    crawled = {p["final_url"] for p in pages.values()}
    for path in ("/docs/api/Byte.html", "/docs/api/new.html", "/docs/api/deep.html"):
        assert main.url(path) in crawled
    result = link(first, main, "/docs/index.html")
    assert result["verdict"] == "ok"
    assert result["redirect_chain"] == [{"url": start, "status": 0}]
    assert "note:" not in first.stdout


def test_start_refresh_out_of_its_directory_widens_scope(first: CliResult, site) -> None:
    main = site["main"]
    run = first.report["run"]
    assert main.url("/y/") in run["scopes"]
    assert main.url("/y/page2.html") in {p["final_url"] for p in first.pages().values()}
    assert link(first, main, "/y/page2.html")["internal"] is True


@pytest.mark.parametrize(("href", "expected"), API_LINKS)
def test_fragments_as_browsers_resolve_them(first: CliResult, site, href: str, expected) -> None:
    main = site["main"]
    url = resolve_href(main, href)
    got = link(first, main, url)
    assert got["verdict"] == expected, got
    if expected == "broken":
        assert got["detail"] == "missing_fragment"


def resolve_href(main: SiteServer, href: str) -> str:
    from crawler.pages.urls import resolve

    r = resolve(main.url("/docs/api/index.html"), href)
    return r.base if r.fragment is None else f"{r.base}#{r.fragment}"


def test_link_target_refresh_followed_with_chain(first: CliResult, site) -> None:
    main = site["main"]
    moved = link(first, main, "/docs/api/moved.html")
    assert moved["verdict"] == "ok"
    assert moved["final_url"] == main.url("/docs/api/new.html")
    assert moved["redirect_chain"] == [{"url": main.url("/docs/api/moved.html"), "status": 0}]
    # Crawled like a 3xx: the page is the one the refresh leads to (the stub is not read).
    crawled = first.pages()[main.url("/docs/api/moved.html")]
    assert (crawled["title"], crawled["final_url"]) == ("Ny", main.url("/docs/api/new.html"))


def test_outside_link_that_refreshes_is_followed(first: CliResult, site) -> None:
    """Read for its #fragment (a GET), the outside page's refresh is followed: the
    fragment is looked up on the page it leads to."""
    main = site["main"]
    hop = link(first, main, site["outside"].url("/hop.html") + "#sektion")
    assert hop["verdict"] == "ok"
    assert hop["redirect_chain"] == [{"url": site["outside"].url("/hop.html"), "status": 0}]
    assert hop["final_url"] == main.url("/docs/api/new.html")


def test_slow_refresh_reported_as_redirect_not_crawled(first: CliResult, site) -> None:
    main = site["main"]
    slow = link(first, main, "/docs/api/slow.html")
    assert (slow["verdict"], slow["detail"]) == ("redirect", "meta_refresh")
    assert slow["final_url"] == main.url("/docs/api/later.html")
    assert slow["redirect_chain"] == []
    finding = [f for f in first.report["findings"] if f["target"] == slow["url"]]
    assert finding and finding[0]["check"] == "redirect"
    assert finding[0]["detail"] == "meta_refresh"
    # Its target is checked as a link of the slow page, not crawled from it.
    later = link(first, main, "/docs/api/later.html")
    assert later["verdict"] == "ok"
    assert [f["page"] for f in later["found_on"]] == [main.url("/docs/api/slow.html")]
    assert main.url("/docs/api/later.html") not in first.pages()
    assert main.url("/docs/api/slow.html") in first.pages()


def test_refresh_loop_terminates_broken(first: CliResult, site) -> None:
    loop = link(first, site["main"], "/docs/api/loop1.html")
    assert (loop["verdict"], loop["detail"]) == ("broken", "redirect_loop")
    assert [h["status"] for h in loop["redirect_chain"]] == [0, 0]


def test_refresh_to_missing_page_is_broken(first: CliResult, site) -> None:
    main = site["main"]
    gone = link(first, main, "/docs/api/to404.html")
    assert (gone["verdict"], gone["detail"]) == ("broken", "http_404")
    assert gone["final_url"] == main.url("/docs/api/gone.html")
    assert gone["redirect_chain"] == [{"url": main.url("/docs/api/to404.html"), "status": 0}]


def test_second_run_through_the_cache_agrees(first: CliResult, site) -> None:
    """The re-run (conditional requests, 304s replayed by the spider) judges the same."""
    main = site["main"]
    before = main.not_modified
    second = site["audit"]()
    assert main.not_modified > before  # unchanged pages were answered 304

    def view(r: CliResult) -> dict[str, tuple[str, str, str]]:
        return {u: (x["verdict"], x["detail"], x["final_url"]) for u, x in r.links().items()}

    assert view(second) == view(first)
    assert {u: p["final_url"] for u, p in second.pages().items()} == {
        u: p["final_url"] for u, p in first.pages().items()
    }


def test_dead_end_start_is_noted(tmp_path: Path) -> None:
    """Start pages that only refresh away, slowly or to another host: one page, exit 0
    (nothing is broken on the site), and a note saying the crawl went nowhere."""
    www = tmp_path / "www"
    for d in ("s", "t"):
        (www / d).mkdir(parents=True)
    gone = f"http://127.0.0.17:{closed_port('127.0.0.17')}/ny/"
    (www / "s" / "index.html").write_text(
        page("Flyttat", "<p>Vi har flyttat</p>", refresh(f"30; url={gone}")), encoding="utf-8"
    )
    (www / "t" / "index.html").write_text(page("T", "", refresh(f"0;url={gone}")), "utf-8")
    main = SiteServer("127.0.0.16", root=www, name="dead-end")
    main.start()
    try:
        starts = f'["{main.url("/s/index.html")}", "{main.url("/t/index.html")}"]'
        cfg = write_config(
            tmp_path / "site.toml",
            f"[site]\nstart_urls = {starts}\n"
            f"[crawl]\nobey_robots = false\ntimeout = 3\nretries = 0\n"
            f'[history]\ndb = "{tmp_path / "h.db"}"\n',
        )
        r = sitewatch(
            "audit", "--config", str(cfg), "--as-of", "2026-11-27", "--format", "json",
            cwd=tmp_path,
        )  # fmt: skip
    finally:
        main.stop()
    run = r.report["run"]
    assert run["pages_crawled"] == 1
    assert "note: only the start page(s) were crawled" in r.stdout
    assert run["stats"]["notes"]
    assert run["scopes"] == [main.url("/s/"), main.url("/t/")]  # another host: not added
    t = link(r, main, "/t/index.html")
    assert (t["verdict"], t["detail"]) == ("broken", "refused")
    assert t["redirect_chain"] == [{"url": main.url("/t/index.html"), "status": 0}]
    slow = link(r, main, gone)
    assert [f["page"] for f in slow["found_on"]] == [main.url("/s/index.html")]
    # The refused target is an outside link seen failing for the first time: a warning
    # (flaky until it fails again), so the exit code (fail_on error) stays 0.
    assert r.code == 0, r.stderr


def test_report_validates_against_the_schema(first: CliResult) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema_path = Path(__file__).resolve().parent.parent / "docs" / "report.schema.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(first.report)
