"""The unchanged-site replay (crawler/rerun/replay.py) and its HTTP client (crawler/http/client.py).

What the plan asks before a previous run may stand for this one (real SQLite cache), and
the client against real servers on 127.0.0.1. The end-to-end replay (real audits in a
row) is in tests/test_rerun.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from checks.models import LinkRef, LinkResult, Page, RedirectHop, Verdict
from checks.policy import Policy
from crawler.history import Store
from crawler.http.client import Answer, Client, pipelined
from crawler.rerun.fetch_cache import FetchCache
from crawler.rerun.replay import NotReplayable, Plan, holds, plan
from crawler.rerun.revalidate import Confirm
from demo.server import Route, SiteServer
from tests.cli_runner import sitewatch, write_config
from tests.raw_http import RawServer

SITE = "https://kommun.example/"
REF = (LinkRef(SITE + "index.html", "Länk"),)


def cache_at(tmp_path: Path) -> FetchCache:
    db = tmp_path / "h.db"
    Store(db).close()  # the schema
    return FetchCache(db, "profile", run_id=2, max_age_days=7)


def link(url: str, verdict: Verdict = Verdict.OK, **kw: Any) -> LinkResult:
    internal = kw.pop("internal", url.startswith(SITE))
    return LinkResult(url, verdict, found_on=REF, internal=internal, **kw)


def page(url: str, status: int | None = 200) -> Page:
    return Page(url=url, status=status)


def make(tmp_path: Path, links: list[LinkResult], pages: list[Page] | None = None, **kw: Any):
    return plan(
        1,
        tuple(pages or [page(SITE + "index.html")]),
        tuple(links),
        len(links),
        in_scope=(SITE,),
        cache=cache_at(tmp_path),
        policy=kw.pop("policy", Policy()),
    )


def test_pages_and_good_internal_targets_must_answer_304(tmp_path: Path) -> None:
    p = make(
        tmp_path,
        [
            link(SITE + "index.html", status=200),
            link(SITE + "a.html#del", status=200),
            link(SITE + "a.html", status=200),
            link(SITE + "c.html#nej", Verdict.BROKEN, detail="missing_fragment", status=200),
            link("mailto:x@kommun.example", Verdict.SKIPPED, detail="mailto", internal=False),
        ],
    )
    assert p.fresh == {SITE + "index.html", SITE + "a.html", SITE + "c.html"}
    assert p.confirms == ()


def test_error_statuses_and_redirect_hops_are_asked_again(tmp_path: Path) -> None:
    p = make(
        tmp_path,
        [
            link(SITE + "borta.html", Verdict.BROKEN, detail="http_404", status=404),
            link("https://ute.example/saknas", Verdict.BROKEN, detail="http_410", status=410),
            link(
                SITE + "gammal.html",
                Verdict.REDIRECT,
                detail="http_301",
                status=200,
                final_url=SITE + "ny.html",
                redirect_chain=(RedirectHop(SITE + "gammal.html", 301),),
            ),
        ],
    )
    assert set(p.confirms) == {
        Confirm(SITE + "borta.html", 404, page=True),
        Confirm("https://ute.example/saknas", 410),
        Confirm(SITE + "gammal.html", 301, SITE + "ny.html", page=True),
    }
    assert p.fresh == {SITE + "ny.html", SITE + "index.html"}  # the page crawled


@pytest.mark.parametrize(
    "bad",
    [
        link(SITE + "x.html", Verdict.BROKEN, detail="dns"),  # no status: an error
        # outside, verdict not cached, and its body matters: a PDF to sniff, an anchor
        link("https://ute.example/rapport.pdf", status=200, pdf_link=True),
        link("https://ute.example/sida#del", status=200),
        link(SITE + "slow.html", Verdict.BROKEN, detail="timeout"),
        link(
            SITE + "blandad.html",
            Verdict.REDIRECT,
            detail="http_301",
            status=200,
            final_url=SITE + "tillfallig.html",
            redirect_chain=(
                RedirectHop(SITE + "blandad.html", 301),
                RedirectHop(SITE + "tillfallig.html", 302),
            ),
        ),
        # a meta refresh (hop status 0) or a slow one: read from the body, not confirmable
        link(
            SITE + "stub.html",
            status=200,
            final_url=SITE + "api/index.html",
            redirect_chain=(RedirectHop(SITE + "stub.html", 0),),
        ),
        link(
            SITE + "slow.html",
            Verdict.REDIRECT,
            detail="meta_refresh",
            status=200,
            final_url=SITE + "later.html",
        ),
    ],
    ids=[
        "error",
        "outside-pdf",
        "outside-fragment",
        "timeout",
        "mixed-chain",
        "meta-refresh",
        "slow-refresh",
    ],
)
def test_what_cannot_be_confirmed_means_a_crawl(tmp_path: Path, bad: LinkResult) -> None:
    with pytest.raises(NotReplayable):
        make(tmp_path, [link(SITE + "index.html", status=200), bad])


def test_outside_targets_asked_live_are_confirmed_by_status_and_type(tmp_path: Path) -> None:
    # Watched (always asked by the crawl) or with no young cached verdict: the crawl asks
    # with HEAD, so the same status and Content-Type mean the same verdict.
    policy = Policy(watched=("eu.example",))
    html = "text/html; charset=utf-8"
    p = make(
        tmp_path,
        [
            link("https://eu.example/kontor", status=200, content_type=html),
            link("https://ute.example/sida", status=200, content_type=html),
            link("https://eu.example/borta", Verdict.BROKEN, detail="http_404", status=404),
            link(
                "https://ute.example/flyttad",
                Verdict.REDIRECT,
                detail="http_301",
                status=200,
                content_type=html,
                final_url="https://ute.example/ny",
                redirect_chain=(RedirectHop("https://ute.example/flyttad", 301),),
            ),
        ],
        policy=policy,
    )
    assert set(p.confirms) == {
        Confirm("https://eu.example/kontor", 200, method="HEAD", content_type=html),
        Confirm("https://ute.example/sida", 200, method="HEAD", content_type=html),
        Confirm("https://eu.example/borta", 404),  # GET: the crawl's HEAD falls back to it
        Confirm("https://ute.example/flyttad", 301, "https://ute.example/ny", method="HEAD"),
        Confirm("https://ute.example/ny", 200, method="HEAD", content_type=html),
    }


def test_a_crawled_page_that_failed_means_a_crawl(tmp_path: Path) -> None:
    with pytest.raises(NotReplayable):
        make(tmp_path, [], pages=[page(SITE + "index.html", status=None)])


def test_holds_needs_every_304_and_every_confirmation() -> None:
    a, b = SITE + "a.html", SITE + "b.html"
    p = Plan(1, (), (), 0, fresh=frozenset({a}), confirms=(Confirm(b, 404),))
    rows = [(a, 4, '"e"', ""), (a, 1, '"e"', ""), (SITE + "gone.html", 4, '"x"', "")]
    # Every stored mode of a.html unchanged; a row of a page no longer linked is no matter.
    assert holds(p, rows, {(a, 4), (a, 1)}, {b})
    assert not holds(p, rows, {(a, 4), (a, 1)}, set())
    assert not holds(p, rows, set(), {b})
    # a.html answered 304 as a page but 200 to its HEAD row: it changed.
    assert not holds(p, rows, {(a, 4)}, {b})


def test_an_outside_verdict_read_from_a_body_is_not_confirmed_by_head(tmp_path: Path) -> None:
    with pytest.raises(NotReplayable):
        make(
            tmp_path,
            [link("https://ute.example/sida", Verdict.BROKEN, detail="soft_404", status=200)],
        )


# -- the client -----------------------------------------------------------------------


def test_client_conditional_get_redirects_and_body_limit(tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "a.html").write_text("<p>" + "å" * 5000 + "</p>", encoding="utf-8")
    (www / "vänorter.html").write_text("<p>Vänorter</p>", encoding="utf-8")
    routes = {
        "/flytt": Route(status=301, redirect_to="/a.html"),
        "/saknas": Route(status=404, body="nej"),
    }
    with SiteServer("127.0.0.1", root=www, routes=routes, validators=True) as srv:

        async def go() -> dict[str, Any]:
            http = Client("sitewatch-test", timeout=5)
            try:
                first = await http.request("GET", srv.url("/a.html"), body_limit=10**6)
                etag = first.headers.get("etag", "")
                again = await http.request("GET", srv.url("/a.html"), {"If-None-Match": etag})
                moved = await http.request("GET", srv.url("/flytt"))
                gone = await http.request("GET", srv.url("/saknas"), body_limit=2)
                followed = await http.get_following(srv.url("/flytt"), body_limit=100)
                head = await http.request("HEAD", srv.url("/a.html"))
                # A link written with non-ASCII letters is sent percent-encoded (UTF-8).
                swedish = await http.request("GET", srv.url("/vänorter.html"), body_limit=100)
            finally:
                http.close()
            return {
                "first": first,
                "again": again,
                "moved": moved,
                "gone": gone,
                "followed": followed,
                "head": head,
                "swedish": swedish,
            }

        got = asyncio.run(go())
    assert got["first"].status == 200 and got["first"].body.decode() == (www / "a.html").read_text(
        encoding="utf-8"
    )
    assert got["again"].status == 304 and got["again"].body == b""
    assert got["moved"].status == 301 and got["moved"].headers["location"].endswith("/a.html")
    assert got["gone"].status == 404 and got["gone"].body == b"ne"  # cut at the limit
    assert got["followed"].status == 200 and len(got["followed"].body) == 100
    assert got["head"].status == 200 and got["head"].body == b""
    assert srv.not_modified == 1
    assert got["swedish"].status == 200 and "Vänorter" in got["swedish"].body.decode()


def test_client_gives_up_after_its_timeout() -> None:
    with SiteServer("127.0.0.1", routes={"/slow": Route(body="zzz", delay=3)}) as srv:

        async def go() -> None:
            http = Client("sitewatch-test", timeout=0.3)
            try:
                await http.request("GET", srv.url("/slow"))
            finally:
                http.close()

        with pytest.raises(TimeoutError):
            asyncio.run(go())


def test_client_error_on_refused_connection() -> None:
    async def go() -> None:
        http = Client("sitewatch-test", timeout=2)
        try:
            await http.request("GET", "http://127.0.0.1:9/")  # discard port: nobody listens
        finally:
            http.close()

    with pytest.raises(OSError):
        asyncio.run(go())


def test_pipelined_match_one_request_after_the_other(tmp_path: Path) -> None:
    """The pass's pipelined questions give each request the status that asking it on
    its own gives: 304s, full answers whose bodies are skipped; what carries no entity tag
    (HEAD, redirects, errors, non-ASCII paths asked without one) or cannot be sent is
    None, left to be asked one by one."""
    www = tmp_path / "www"
    www.mkdir()
    for n in range(40):
        (www / f"p{n}.html").write_text(f"<p>sida {n}</p>" * (n + 1), encoding="utf-8")
    (www / "vänorter.html").write_text("<p>Vänorter</p>", encoding="utf-8")
    routes = {
        "/flytt": Route(status=301, redirect_to="/p1.html"),
        "/saknas": Route(status=404, body="nej"),
    }
    with SiteServer("127.0.0.1", root=www, routes=routes, validators=True) as srv:

        async def go() -> tuple[list[Answer | None], list[Answer | None]]:
            http = Client("sitewatch-test", timeout=5)
            try:
                etags = {}
                for n in range(40):
                    a = await http.request("GET", srv.url(f"/p{n}.html"))
                    etags[n] = a.headers["etag"]
                asked: list[tuple[str, str, dict[str, str]]] = []
                for n in range(40):
                    # Every third page asked with a stale validator: a 200 with its body.
                    tag = etags[n] if n % 3 else '"stale"'
                    asked.append(("GET", srv.url(f"/p{n}.html"), {"If-None-Match": tag}))
                asked += [
                    ("HEAD", srv.url("/p2.html"), {}),
                    ("GET", srv.url("/flytt"), {}),
                    ("GET", srv.url("/saknas"), {}),
                    ("GET", srv.url("/vänorter.html"), {}),
                    ("GET", srv.url("/p3.html"), {"If-None-Match": 'x"\r\nX-Evil: 1'}),
                    ("GET", "ftp://127.0.0.1/x", {}),
                ]
                one_by_one: list[Answer | None] = []
                for method, url, headers in asked[:-2]:
                    one_by_one.append(await http.request(method, url, headers))
                one_by_one += [None, None]
            finally:
                http.close()
            piped = await pipelined(asked, user_agent="sitewatch-test", timeout=5, connections=3)
            return piped, one_by_one

        piped, one_by_one = asyncio.run(go())

    def seen(answers: list[Answer | None]) -> list[tuple[int, dict[str, str]] | None]:
        kept = ("location", "content-type")
        return [
            None if a is None else (a.status, {k: a.headers[k] for k in kept if k in a.headers})
            for a in answers
        ]

    assert seen(piped[:40]) == seen(one_by_one[:40])
    statuses = [a and a.status for a in piped]
    assert statuses.count(304) == 26 and statuses[:3] == [200, 304, 304]
    assert statuses[-6:] == [None] * 6
    assert [a and a.status for a in one_by_one[-6:-2]] == [200, 301, 404, 200]
    assert piped[0] is not None and piped[0].headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    "case",
    [
        "close_every_3",
        "close_every_1",
        "chunked",
        "chunk_too_long",
        "until_close",
        "garbage",
        "silent_close",
    ],
)
def test_pipelined_on_odd_servers(case: str) -> None:
    """A server's limit of answers per connection is followed on new connections; an
    answer that cannot be followed for certain ends the connection and leaves the rest
    None (asked one by one by the pass), never a wrong status."""
    not_modified = b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n'

    def answer(n: int) -> bytes | None:
        if case == "close_every_3":
            return not_modified[:-2] + b"Connection: close\r\n\r\n" if n == 2 else not_modified
        if case == "close_every_1":
            return b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\nConnection: close\r\n\r\n'
        if case == "chunked":
            chunked = (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            )
            return chunked if n % 2 else not_modified
        if case == "chunk_too_long":  # says 3 bytes, sends 5
            bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n"
            return not_modified if n < 2 else bad
        if case == "until_close":
            return not_modified if n < 2 else b"HTTP/1.1 200 OK\r\n\r\nbody until close"
        if case == "garbage":
            return not_modified if n < 2 else b"SMTP ready\r\n\r\n"
        return not_modified if n < 2 else None  # silent_close

    with RawServer(answer) as server:
        url = server.url("/p")
        answers = asyncio.run(
            pipelined(
                [("GET", f"{url}{n}", {"If-None-Match": '"x"'}) for n in range(10)],
                user_agent="sitewatch-test",
                timeout=5,
                connections=1,
            )
        )
    got = [a and a.status for a in answers]
    if case == "close_every_3":
        assert got == [304] * 10 and server.connections == 4
    elif case == "close_every_1":
        # One answer per connection: asked on a new connection each time, as the
        # one-by-one client would.
        assert got == [304] * 10 and server.connections == 10
    elif case == "chunked":
        assert got == [304, 200] * 5
    else:
        assert got[:2] == [304, 304] and got[2:] == [None] * 8


def test_a_pipelined_304_for_another_entity_tag_is_asked_again_on_its_own() -> None:
    """A 304 whose ETag is not the one asked about may be an answer out of step with its
    request: the pass asks that URL once more on its own before taking it as unchanged."""
    from crawler.http.client import same_etag
    from crawler.rerun.revalidate import PassSettings, _revalidate

    assert same_etag('"a"', '"a"') and same_etag('W/"a"', '"a"') and same_etag('"a"', 'W/"a"')
    assert not same_etag('"a"', None) and not same_etag('"a"', '"b"')
    other = b'HTTP/1.1 304 Not Modified\r\nETag: "other"\r\n\r\n'
    settings = PassSettings("sitewatch-test", 4, 4, 5.0, obey_robots=False)
    with RawServer(lambda n: other) as server:
        url = server.url("/sida.html")
        fresh, asked, _ = asyncio.run(_revalidate([(url, 4, '"mine"', "")], settings))
    # Pipelined first, then on a connection of its own (whose 304 is taken as it comes).
    assert server.connections == 2 and asked == 1 and fresh == {(url, 4)}


# -- end to end: what keeps a re-run from being replayed --------------------------------


def _auditor(tmp_path: Path, start: str, db: Path) -> Callable[[int], dict[str, Any]]:
    """``audit(n)``: a real ``sitewatch audit`` of ``start`` with history ``db`` (robots.txt
    not asked), into ``o<n>``; its run stats."""
    cfg = write_config(
        tmp_path / "site.toml",
        f'[site]\nstart_urls = ["{start}"]\n[crawl]\nobey_robots = false\n[history]\ndb = "{db}"\n',
    )

    def audit(n: int) -> dict[str, Any]:
        r = sitewatch(
            "audit", "--config", str(cfg), "--out", str(tmp_path / f"o{n}"),
            "--format", "json", "-q", cwd=tmp_path,
        )  # fmt: skip
        assert r.code in (0, 1), r.stderr
        stats: dict[str, Any] = r.report["run"]["stats"]
        return stats

    return audit


def test_replayed_runs_chain_and_a_later_partial_run_means_a_crawl(tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    ext = SiteServer("127.0.0.2", routes={"/eu": Route(body="<p>Brysselkontoret</p>")})
    (www / "index.html").write_text(
        f'<html><body><a href="a.html">A</a><a href="{ext.url("/eu")}">EU</a>'
        "<footer>Granskad 2026-01-01</footer></body></html>",
        encoding="utf-8",
    )
    (www / "a.html").write_text("<html><body><p>A</p></body></html>", encoding="utf-8")
    with SiteServer("127.0.0.1", root=www, validators=True) as srv, ext:
        db = tmp_path / "h.db"
        audit = _auditor(tmp_path, srv.url("/index.html"), db)

        audit(1)
        assert audit(2)["replayed_from_run"] == 1
        # The replayed run names run 1's pages and links as its own (no copy), so it can
        # be replayed in turn; the outside verdict aged past links.cache_max_age is asked
        # again (HEAD, as the crawl would) and confirmed.
        con = sqlite3.connect(db)
        con.execute("UPDATE link_cache SET checked_at = '2000-01-01T00:00:00+00:00'")
        con.commit()
        heads = ext.hits("/eu", "HEAD")
        s3 = audit(3)
        assert s3["replayed_from_run"] == 2 and s3["confirmed"] == 1
        assert ext.hits("/eu", "HEAD") == heads + 1
        for table in ("pages", "links"):
            counts = [
                con.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", (n,)).fetchone()[0]
                for n in (1, 2, 3)
            ]
            assert counts[0] > 0 and counts[1:] == [0, 0]  # stored once
        rows_runs = con.execute("SELECT id, rows_run FROM runs ORDER BY id").fetchall()
        assert rows_runs == [(1, None), (2, 1), (3, 1)]
        with Store(db) as store:
            assert store.snapshot(3)[:2] == store.snapshot(2)[:2] == store.snapshot(1)[:2]
            assert store.pages(3) == store.pages(1) and store.pages(1)
            urls = [srv.url("/index.html"), srv.url("/a.html")]
            assert store.pages(3, urls) == store.pages(1, urls)
        # A run that began later and crashed stored what it had learnt: the cache now
        # knows more than run 3's report, so run 4 must crawl.
        con.execute("UPDATE fetch_cache SET run_id = 99 WHERE url LIKE '%a.html'")
        con.commit()
        con.close()
        s4 = audit(4)
        assert "replayed_from_run" not in s4
        assert s4["pages_not_modified"] >= 1  # the crawl still used the pass's 304s


def test_a_complete_crawl_drops_the_stored_answers_of_pages_gone(tmp_path: Path) -> None:
    """After a complete crawl, stored answers of earlier runs that it neither fetched
    again nor replayed are dropped (a page removed from the site); the rest stay, so the
    next run of the unchanged site is still replayed, and its pass asks nothing gone."""
    www = tmp_path / "www"
    www.mkdir()

    def index(*names: str) -> None:
        links = "".join(f'<a href="{n}">{n}</a>' for n in names)
        (www / "index.html").write_text(
            f"<html><body>{links}<footer>Granskad 2026-01-01</footer></body></html>",
            encoding="utf-8",
        )

    index("a.html", "b.html")
    for name in ("a.html", "b.html"):
        (www / name).write_text(f"<html><body><p>{name}</p></body></html>", encoding="utf-8")
    with SiteServer("127.0.0.1", root=www, validators=True) as srv:
        db = tmp_path / "h.db"
        audit = _auditor(tmp_path, srv.url("/index.html"), db)

        def stored() -> dict[str, int]:
            con = sqlite3.connect(db)
            try:
                rows = con.execute("SELECT url, run_id FROM fetch_cache").fetchall()
            finally:
                con.close()
            return {url.rsplit("/", 1)[1]: run_id for url, run_id in rows}

        audit(1)
        assert stored() == {"index.html": 1, "a.html": 1, "b.html": 1}
        # b.html leaves the site: the start page changed, so run 2 crawls.
        index("a.html")
        (www / "b.html").unlink()
        s2 = audit(2)
        assert "replayed_from_run" not in s2 and s2["pages_not_modified"] == 1  # a.html
        # index.html fetched again (run 2's row), a.html replayed (run 1's row kept).
        assert stored() == {"index.html": 2, "a.html": 1}
        before = srv.hits("/b.html")
        s3 = audit(3)
        assert s3["replayed_from_run"] == 2 and s3["revalidated"] == 2
        assert srv.hits("/b.html") == before  # the pass no longer asks about it


def test_a_run_that_cannot_be_replayed_is_crawled_with_the_pass_already_started(
    tmp_path: Path,
) -> None:
    """The pass is forked before the previous run is read back; when the plan refuses
    (a link that failed without a status), the crawl finishes that same pass."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text(
        '<html><body><a href="a.html">A</a><a href="http://127.0.0.1:9/">Stängd</a>'
        "<footer>Granskad 2026-01-01</footer></body></html>",
        encoding="utf-8",
    )
    (www / "a.html").write_text("<html><body><p>A</p></body></html>", encoding="utf-8")
    with SiteServer("127.0.0.1", root=www, validators=True) as srv:
        db = tmp_path / "h.db"
        cfg = write_config(
            tmp_path / "site.toml",
            f'[site]\nstart_urls = ["{srv.url("/index.html")}"]\n'
            f'[crawl]\nobey_robots = false\nretries = 0\n[history]\ndb = "{db}"\n',
        )
        results = []
        for n in (1, 2):
            r = sitewatch(
                "audit", "--config", str(cfg), "--out", str(tmp_path / f"o{n}"),
                "--format", "json", "-q", cwd=tmp_path,
            )  # fmt: skip
            assert r.code in (0, 1), r.stderr
            results.append(r)
        before = srv.not_modified
    s = results[1].report["run"]["stats"]
    assert "replayed_from_run" not in s
    assert s["revalidated"] == 2 and s["pages_not_modified"] == 2
    # One pass (index and a.html answered 304 once each) and the crawl's own conditional
    # request for the start page: a second pass would make it 5.
    assert before == 3
    assert results[1].links()["http://127.0.0.1:9/"]["verdict"] == "broken"
