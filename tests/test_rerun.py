"""The weekly re-run (crawler/rerun/fetch_cache.py): conditional requests, cached verdicts.

A site on 127.0.0.1 served with ETag/Last-Modified (answering 304 like nginx) and an
outside site on 127.0.0.2. One history database; the real ``sitewatch audit`` runs five
times in a row, the sites changing in between:

1. first run (full);
2. nothing changed: replayed from run 1 without a crawl (crawler/rerun/replay.py); then again
   with that switched off: every page is answered 304 and replayed by the spider;
3. a page gained a broken link, an image went missing, an outside link broke (still
   reused: its cache entry is young) and a previously broken outside link was fixed;
4. the outside cache entries aged past ``links.cache_max_age``: the broken link is found;
5. ``--no-cache``: a full run.
"""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from crawler.rerun.revalidate import PassSettings
from demo.server import Route, SiteServer
from tests.cli_runner import CliResult, sitewatch, write_config

SETTINGS = PassSettings(user_agent="sw-test", concurrency=4, per_host=2, timeout=5)
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="sv"><head><meta charset="utf-8">'
        f"<title>{title}</title></head><body>{body}"
        "<footer>Senast granskad: 2026-02-03</footer></body></html>"
    )


def key_findings(r: CliResult) -> set[tuple[str, str, str, str]]:
    return {(f["check"], f["page"], f["target"], f["detail"]) for f in r.report["findings"]}


def link_view(r: CliResult) -> dict[str, Any]:
    return {
        u: (
            x["verdict"],
            x["detail"],
            x["status"],
            sorted((f["page"], f["text"]) for f in x["found_on"]),
            x["content_type"],
            x.get("pdf_link"),
            x["redirect_chain"],
        )
        for u, x in r.links().items()
    }


def page_view(r: CliResult) -> dict[str, Any]:
    return {
        u: (p["status"], p["title"], p["review_date"], p["review_date_source"], p["depth"])
        for u, p in r.pages().items()
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("rerun")
    www = tmp / "www"
    www.mkdir()
    ext = SiteServer(
        "127.0.0.2",
        name="outside",
        routes={
            "/ok": Route(body=page("Ok", "<p>ok</p>")),
            "/later-broken": Route(body=page("Snart borta", "<p>här</p>")),
            "/bad": Route(status=404, body=page("Saknas", "<p>nej</p>")),
            "/moved": Route(status=301, redirect_to="/ok"),
        },
    )
    e = ext.base_url
    (www / "index.html").write_text(
        page(
            "Start",
            '<a href="a.html">A</a> <a href="b.html">B</a> <a href="a.html#sec">A, del</a>'
            '<img src="img.png" alt="Bild"> <a href="doc.pdf">Rapport (pdf)</a>'
            f'<a href="{e}/ok">Ute</a> <a href="{e}/later-broken">Snart</a>'
            f'<a href="{e}/bad">Trasig</a> <a href="{e}/moved">Flyttad</a>',
        ),
        encoding="utf-8",
    )
    (www / "a.html").write_text(
        page("A", '<h2 id="sec">Del</h2><a href="index.html">Start</a><a href="c.html">C</a>'),
        encoding="utf-8",
    )
    (www / "b.html").write_text(page("B", '<a href="c.html">C</a>'), encoding="utf-8")
    (www / "c.html").write_text(page("C", '<a href="a.html#nope">Fel ankare</a>'), encoding="utf-8")
    (www / "img.png").write_bytes(PNG)
    (www / "doc.pdf").write_bytes(PDF)
    main = SiteServer("127.0.0.1", root=www, name="kommun", validators=True)
    db = tmp / "history.db"
    cfg = write_config(
        tmp / "site.toml",
        f"""
[site]
name = "rerun"
start_urls = ["{main.url("/index.html")}"]
[crawl]
obey_robots = false
[history]
db = "{db}"
[links]
cache_max_age = 7
""",
    )

    text = cfg.read_text(encoding="utf-8")

    no_replay = write_config(
        tmp / "no-replay.toml", text.replace("[history]\n", "[history]\nreplay = false\n")
    )

    def audit(n: int | str, *extra: str, config: Path = cfg) -> CliResult:
        r = sitewatch(
            "audit",
            "--config",
            str(config),
            "--out",
            str(tmp / f"out{n}"),
            "--as-of",
            "2026-11-27",
            "-q",
            "--format",
            "json",
            *extra,
            cwd=tmp,
        )
        assert r.code in (0, 1), r.stderr
        return r

    out: dict[str, Any] = {"ext": ext, "main": main}
    with main, ext:
        out[1] = audit(1)
        out["304_after_1"] = main.not_modified
        out["ext_hits_1"] = {p: ext.hits(p) for p in ("/ok", "/later-broken", "/bad")}
        # Nothing changed: replayed from run 1 (crawler/rerun/replay.py) ...
        out["replay"] = audit("replay")
        out["304_after_replay"] = main.not_modified
        out["ext_hits_replay"] = {p: ext.hits(p) for p in ("/ok", "/later-broken", "/bad")}
        # ... and, with that switched off, crawled with every page replayed by the spider.
        out[2] = audit(2, config=no_replay)
        out["304_after_2"] = main.not_modified
        out["ext_hits_2"] = {p: ext.hits(p) for p in ("/ok", "/later-broken", "/bad")}
        # Changes since: b.html gains a broken link, the image is gone, one outside link
        # breaks (its cache entry is young), the broken one is fixed.
        (www / "b.html").write_text(
            page("B", '<a href="c.html">C</a> <a href="nope.html">Ny trasig</a>'),
            encoding="utf-8",
        )
        (www / "img.png").unlink()
        ext.add_route("/later-broken", Route(status=404, body=page("Borta", "<p>borta</p>")))
        ext.add_route("/bad", Route(body=page("Lagad", "<p>lagad</p>")))
        out[3] = audit(3)
        out["ext_hits_3"] = {p: ext.hits(p) for p in ("/ok", "/later-broken", "/bad")}
        # A week and a day later, as far as the outside verdicts go.
        con = sqlite3.connect(db)
        con.execute("UPDATE link_cache SET checked_at = '2000-01-01T00:00:00.000000Z'")
        con.commit()
        con.close()
        out[4] = audit(4)
        before = main.not_modified
        out["ext_hits_4"] = {p: ext.hits(p) for p in ("/ok", "/later-broken", "/bad")}
        out[5] = audit(5, "--no-cache")
        out["304_in_5"] = main.not_modified - before
        out["ext_hits_5"] = {p: ext.hits(p) for p in ("/ok", "/later-broken", "/bad")}
    return out


def stats(r: CliResult) -> dict[str, Any]:
    return r.report["run"]["stats"]


def test_first_run_stores_the_cache(runs: dict[str, Any]) -> None:
    s = stats(runs[1])
    assert runs["304_after_1"] == 0
    assert s.get("pages_not_modified", 0) == 0 and s.get("links_from_cache", 0) == 0
    assert s["cache_rows_written"] > 0
    assert runs[1].report["run"]["complete"]


def test_unchanged_rerun_uses_conditional_requests_and_gives_the_same_report(
    runs: dict[str, Any],
) -> None:
    first, second = runs[1], runs[2]
    s = stats(second)
    assert s["pages_not_modified"] == len(first.report["pages"]) == 4
    assert runs["304_after_2"] >= 4  # the server really answered 304
    assert s["revalidated"] >= 5  # pages and the image, before the crawl
    assert s["conditional_requests"] >= 1  # the start page, through Scrapy
    # /ok, /later-broken and /moved unless its redirect reused /ok's probe; never /bad
    assert s["links_from_cache"] >= 2
    assert runs["ext_hits_2"]["/ok"] == runs["ext_hits_1"]["/ok"]
    assert runs["ext_hits_2"]["/bad"] > runs["ext_hits_1"]["/bad"]
    assert key_findings(second) == key_findings(first)
    assert link_view(second) == link_view(first)
    assert page_view(second) == page_view(first)
    assert second.report["run"]["complete"]


def test_unchanged_rerun_is_replayed_from_the_last_run_without_a_crawl(
    runs: dict[str, Any],
) -> None:
    first, replayed, crawled = runs[1], runs["replay"], runs[2]
    s = stats(replayed)
    assert s["replayed_from_run"] == 1
    assert s["not_modified"] == s["revalidated"] >= 6  # 4 pages, the image and the PDF
    assert runs["304_after_replay"] - runs["304_after_1"] >= 6
    # Asked again: /bad (broken last time: still 404), and /moved when the first run
    # reused /ok's probe for its redirect (a stored hop, not a cached verdict of its own:
    # whether /ok's answer was in by then depends on the order answers came in).
    assert s["confirmed"] == 1 + stats(first).get("redirects_reused", 0)
    assert runs["ext_hits_replay"]["/bad"] == runs["ext_hits_1"]["/bad"] + 1
    assert runs["ext_hits_replay"]["/ok"] == runs["ext_hits_1"]["/ok"]  # cached verdict
    assert "pages_not_modified" not in s  # no crawl
    for other in (first, crawled):
        assert key_findings(replayed) == key_findings(other)
        assert link_view(replayed) == link_view(other)
        assert page_view(replayed) == page_view(other)
    # Same order as the run it replays (the history keeps it).
    assert list(replayed.links()) == list(first.links())
    assert list(replayed.pages()) == list(first.pages())
    assert replayed.report["run"]["complete"]


def test_changed_site_is_crawled_not_replayed(runs: dict[str, Any]) -> None:
    # Run 3: a page changed, an image went missing, a broken outside link was fixed.
    assert "replayed_from_run" not in stats(runs[3])
    # Run 4: the outside verdicts aged past links.cache_max_age: they must be asked.
    assert "replayed_from_run" not in stats(runs[4])
    assert stats(runs[3])["revalidated"] >= 5  # the pass's 304s served the crawl


def test_changed_page_is_parsed_again_and_its_new_broken_link_found(
    runs: dict[str, Any],
) -> None:
    r = runs[3]
    nope = runs["main"].url("/nope.html")
    assert r.links()[nope]["verdict"] == "broken"
    assert ("broken_link", runs["main"].url("/b.html"), nope, "http_404") in key_findings(r)
    assert stats(r)["pages_not_modified"] == 3  # index, a, c


def test_internal_target_that_now_404s_is_detected(runs: dict[str, Any]) -> None:
    img = runs["main"].url("/img.png")
    assert runs[2].links()[img]["verdict"] == "ok"
    assert runs[3].links()[img]["verdict"] == "broken"
    assert runs[3].links()[img]["detail"] == "http_404"


def test_outside_link_broken_since_found_once_its_cache_entry_is_old(
    runs: dict[str, Any],
) -> None:
    url = runs["ext"].url("/later-broken")
    # Young cache entry: reused (the documented bound of the cache) ...
    assert runs[3].links()[url]["verdict"] == "ok"
    assert runs["ext_hits_3"]["/later-broken"] == runs["ext_hits_1"]["/later-broken"]
    # ... older than links.cache_max_age: checked again and found broken.
    assert runs[4].links()[url]["verdict"] == "broken"
    assert runs["ext_hits_4"]["/later-broken"] > runs["ext_hits_3"]["/later-broken"]


def test_previously_broken_outside_link_is_always_checked_again(runs: dict[str, Any]) -> None:
    url = runs["ext"].url("/bad")
    assert runs[1].links()[url]["verdict"] == "broken"
    assert runs[2].links()[url]["verdict"] == "broken"
    assert runs[3].links()[url]["verdict"] == "ok"  # fixed: seen at once


def test_no_cache_is_a_full_run(runs: dict[str, Any]) -> None:
    r = runs[5]
    s = stats(r)
    assert runs["304_in_5"] == 0
    assert s.get("pages_not_modified", 0) == 0
    assert s.get("links_from_cache", 0) == 0
    assert s.get("conditional_requests", 0) == 0
    assert runs["ext_hits_5"]["/ok"] > runs["ext_hits_4"]["/ok"]
    assert key_findings(r) == key_findings(runs[4])
    assert link_view(r) == link_view(runs[4])


def test_cache_rows_only_for_the_site_profile(runs: dict[str, Any], tmp_path: Path) -> None:
    # Same database, another scope: nothing is reused (a different profile).
    from crawler.rerun.fetch_cache import profile_key

    a = profile_key("rerun", {"scopes": ["http://127.0.0.1/"]})
    b = profile_key("rerun", {"scopes": ["http://127.0.0.1/a/"]})
    assert a != b


@pytest.mark.parametrize(
    ("robots", "expect"),
    [
        ("User-agent: *\nDisallow: /private/\n", {"/a.html"}),
        # Wildcards and $ as the crawl's parser (Protego) reads them; urllib's did not.
        ("User-agent: *\nDisallow: /*/b.html$\n", {"/a.html"}),
        ("User-agent: sitewatch\nDisallow: /private\n\nUser-agent: *\nDisallow: /\n", {"/a.html"}),
        ("User-agent: *\nCrawl-delay: 2\n", set()),
        (None, {"/a.html", "/private/b.html"}),
    ],
)
def test_revalidation_pass_obeys_robots(
    tmp_path: Path, robots: str | None, expect: set[str]
) -> None:
    """The pass before the crawl asks nothing robots.txt disallows, and leaves a host that
    asks for a Crawl-delay to the crawl's polite slots."""
    from crawler.rerun.fetch_cache import FetchCache

    www = tmp_path / "www"
    (www / "private").mkdir(parents=True)
    (www / "a.html").write_text("a", encoding="utf-8")
    (www / "private" / "b.html").write_text("b", encoding="utf-8")
    if robots is not None:
        (www / "robots.txt").write_text(robots, encoding="utf-8")
    with SiteServer("127.0.0.1", root=www, validators=True) as site:
        urls = [site.url("/a.html"), site.url("/private/b.html")]
        # An earlier run (1) stored the validators the server really sends.
        from crawler.history import Store
        from crawler.rerun.fetch_cache import Fetched

        db = tmp_path / "h.db"
        Store(db).close()

        c = FetchCache(db, "p", 1, max_age_days=7)
        import urllib.request

        for url in urls:
            with urllib.request.urlopen(url) as resp:
                etag = resp.headers["ETag"]
            f = Fetched(200, "text/html", "GET", True, True, False, b"a", frozenset(), False, None)
            c.record(url, 4, etag, "", f)
        c.flush()
        c.close()
        site.reset()
        again = FetchCache(db, "p", 2, max_age_days=7)
        again.revalidate(SETTINGS)
        again.close()
        asked = {p for m, p, _ in site.requests if p != "/robots.txt"}
    assert {u.removeprefix(site.base_url) for u, _ in again.fresh} == expect
    assert asked == expect


@pytest.mark.parametrize("how", ["fork", "no_fork", "child_dies", "child_garbles"])
def test_revalidation_pass_in_a_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """``start_revalidate`` runs the pass in a forked child while the audit imports Scrapy:
    the same URLs come back fresh as from the in-process pass; a child that dies or says
    nothing readable means the pass runs again in-process (same answer)."""
    import os

    import crawler.rerun.fetch_cache as fc
    import crawler.rerun.revalidate as rv
    from crawler.history import Store
    from crawler.rerun.fetch_cache import FetchCache, Fetched

    www = tmp_path / "www"
    www.mkdir()
    for name in ("a.html", "b.html", "c.html"):
        (www / name).write_text(name, encoding="utf-8")
    with SiteServer("127.0.0.1", root=www, validators=True) as site:
        urls = [site.url(f"/{n}") for n in ("a.html", "b.html", "c.html")]
        db = tmp_path / "h.db"
        Store(db).close()
        c = FetchCache(db, "p", 1, max_age_days=7)
        import urllib.request

        for url in urls:
            with urllib.request.urlopen(url) as resp:
                etag = resp.headers["ETag"]
            f = Fetched(200, "text/html", "GET", True, True, False, b"a", frozenset(), False, None)
            # c.html changed since: its stored validator no longer matches
            c.record(url, 4, etag if not url.endswith("c.html") else '"old"', "", f)
        c.flush()
        c.close()

        if how == "no_fork":
            monkeypatch.setattr(fc, "FORK_REVALIDATE", False)
        elif how == "child_dies":
            monkeypatch.setattr(rv, "_revalidate_child", lambda rows, args, sock: os._exit(3))
        elif how == "child_garbles":

            def garble(rows: object, args: object, sock: socket.socket) -> None:
                sock.sendall(b"not a pickle")

            monkeypatch.setattr(rv, "_revalidate_child", garble)
        inline = FetchCache(db, "p", 2, max_age_days=7)
        inline.revalidate(SETTINGS)
        inline.close()
        site.reset()
        again = FetchCache(db, "p", 2, max_age_days=7)
        pending = again.start_revalidate(SETTINGS)
        assert (pending.pid is not None) == (how != "no_fork")

        async def in_the_crawl() -> None:
            pending.finish()  # as the spider does: inside the crawl's running event loop

        import asyncio

        asyncio.run(in_the_crawl())
        pending.abort()  # a no-op once finished
        again.close()
        asked = [p for m, p, _ in site.requests if p != "/robots.txt"]
    expect = {site.url("/a.html"), site.url("/b.html")}
    assert {u for u, _ in inline.fresh} == expect
    assert again.fresh == inline.fresh
    assert again.revalidated == inline.revalidated == 3
    # Asked once each: by the child, or in-process (the failing stand-in children ask nothing)
    assert sorted(asked) == ["/a.html", "/b.html", "/c.html"]


def test_revalidation_pass_aborted(tmp_path: Path) -> None:
    """An audit that fails while the pass runs stops and reaps its child."""
    import os

    from crawler.history import Store
    from crawler.rerun.fetch_cache import FetchCache, Fetched

    db = tmp_path / "h.db"
    Store(db).close()
    c = FetchCache(db, "p", 1, max_age_days=7)
    f = Fetched(200, "text/html", "GET", True, True, False, b"a", frozenset(), False, None)
    # A server that never answers: the child would wait for its timeout
    import socket

    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        c.record(f"http://127.0.0.1:{port}/a.html", 4, '"x"', "", f)
        c.flush()
        c.close()
        again = FetchCache(db, "p", 2, max_age_days=7)
        pending = again.start_revalidate(
            PassSettings(user_agent="sw-test", concurrency=1, per_host=1, timeout=60)
        )
        pid = pending.pid
        assert pid is not None
        pending.abort()
        again.close()
    assert pending.pid is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped
    assert again.fresh == set()
