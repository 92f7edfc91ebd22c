"""``<meta http-equiv=refresh>``: the content parsed as the HTML standard's shared
declarative refresh steps (``checks.refresh``), found in a page's parse
(``crawler.pages.extract``, also in the parse worker) and judged (``checks.verdicts``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checks.models import RedirectHop, Verdict
from checks.policy import Policy
from checks.refresh import REFRESH_STATUS, parse_refresh
from checks.verdicts import Probe, judge
from crawler.pages.extract import ParsedPage, facts_from_body
from crawler.pages.parse_worker import read_page
from crawler.pages.refresh import is_redirect, refresh_target
from crawler.pages.urls import ResolveCache
from crawler.rerun.fetch_cache import Fetched, decode_fetched, encode_fetched


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("0; url=api/index.html", (0, "api/index.html")),
        ("0;URL=api/index.html", (0, "api/index.html")),
        ("0; Url = 'api/index.html'", (0, "api/index.html")),
        ('0; url="api/index.html"', (0, "api/index.html")),
        ("0;url='a.html' trailing", (0, "a.html")),  # cut at the closing quote
        ("0;url='a.html", (0, "a.html")),  # no closing quote: the rest
        ("  5 ,  url=/ny/  ", (5, "/ny/  ")),  # trailing spaces are the URL parser's job
        ("0 api/index.html", (0, "api/index.html")),  # without url=
        ("0, api/index.html", (0, "api/index.html")),
        ("0;uploads/x.html", (0, "uploads/x.html")),  # starts with u but not url=
        ("0; urx=a.html", (0, "urx=a.html")),
        ("0; url a.html", (0, "url a.html")),  # url without = is the URL itself
        ("3.5; url=b.html", (3, "b.html")),  # fractions ignored
        (".5; url=b.html", (0, "b.html")),
        ("10", (10, None)),  # refreshes itself
        ("0;", (0, None)),
        ("\t0\n;\rurl=c.html", (0, "c.html")),
        ("0;url=", (0, "")),
    ],
)
def test_parse_refresh(content: str, expected: tuple[int, str | None]) -> None:
    assert parse_refresh(content) == expected


@pytest.mark.parametrize("content", ["", "   ", "url=a.html", "x; url=a.html", "0x; url=a"])
def test_parse_refresh_ignored(content: str) -> None:
    assert parse_refresh(content) is None


@given(st.text())
def test_parse_refresh_total(content: str) -> None:
    """Any content: ignored, or a non-negative delay and the URL as a substring."""
    got = parse_refresh(content)
    if got is not None:
        delay, url = got
        assert delay >= 0
        assert url is None or url in content


def _facts(html: str, url: str = "http://127.0.0.1/docs/index.html", links: bool = True):
    return facts_from_body(html.encode(), "utf-8", url, None, (), links)


@pytest.mark.parametrize(
    "meta",
    [
        '<meta http-equiv="refresh" content="0; url=api/index.html">',
        "<META HTTP-EQUIV=REFRESH CONTENT='0;URL=api/index.html'>",
        '<meta http-equiv="Refresh" content="0 ; URL = &quot;api/index.html&quot;">',
    ],
)
@pytest.mark.parametrize("links", [True, False])
def test_found_in_the_parse(meta: str, links: bool) -> None:
    page = _facts(f"<html><head><title>x</title>{meta}</head><body></body></html>", links=links)
    assert page is not None
    assert page.refresh == (0, "api/index.html")
    nxt = refresh_target(page, "http://127.0.0.1/docs/index.html")
    assert nxt is not None and nxt.base == "http://127.0.0.1/docs/api/index.html"


def test_first_obeyed_refresh_wins_and_body_meta_counts() -> None:
    html = (
        '<p>moved</p><meta http-equiv="refresh" content="nonsense">'
        '<meta http-equiv="refresh" content="7; url=/ny/">'
        '<meta http-equiv="refresh" content="0; url=/later/">'
    )
    page = _facts(html)
    assert page is not None and page.refresh == (7, "/ny/")
    assert not is_redirect(page, 3)
    assert is_redirect(page, 7)


def test_other_meta_and_no_meta() -> None:
    page = _facts('<head><meta http-equiv="content-type" content="text/html"></head><p>x')
    assert page is not None and page.refresh is None


def test_refresh_to_itself_or_nowhere_is_no_target() -> None:
    for content in ("0", "0; url=", "0; url=index.html", "0; url=#top", "0; url=mailto:a@b"):
        page = _facts(f'<meta http-equiv="refresh" content="{content}">')
        assert page is not None and page.refresh is not None
        assert refresh_target(page, "http://127.0.0.1/docs/index.html") is None


def test_refresh_resolved_against_base() -> None:
    page = _facts('<base href="/other/"><meta http-equiv="refresh" content="0; url=x.html">')
    assert page is not None
    nxt = refresh_target(page, "http://127.0.0.1/docs/index.html")
    assert nxt is not None and nxt.base == "http://127.0.0.1/other/x.html"


def test_parse_worker_reads_the_same() -> None:
    """``read_page`` (the parse worker's code) gives the same ParsedPage, refresh included."""
    html = b'<head><meta http-equiv="refresh" content="2; url=b.html"></head><a href="c.html">c</a>'
    url = "http://127.0.0.1/d/a.html"
    page, resolved, _ = read_page(html, "utf-8", url, None, (), True, ResolveCache())
    assert page == facts_from_body(html, "utf-8", url, None, (), True)
    assert page is not None and page.refresh == (2, "b.html")
    assert resolved is not None and resolved[0][0] == "http://127.0.0.1/d/c.html"


def test_cache_record_round_trip_keeps_the_page() -> None:
    page = ParsedPage(frozenset({"a"}), False, "t", None, "http://h/", (("x", "y", "a"),))
    f = Fetched(200, "text/html", "GET", True, True, False, b"<html", frozenset({"a"}), False, page)
    assert decode_fetched(encode_fetched(f)).page == page


def test_verdicts() -> None:
    policy = Policy()
    url = "http://127.0.0.1/old.html"
    slow = Probe(url, 200, final_url=url, content_type="text/html", refresh_to="http://x/ny/")
    assert judge(slow, None, policy) == (Verdict.REDIRECT, "meta_refresh")
    hop = (RedirectHop(url, REFRESH_STATUS),)
    quick = Probe(url, 200, final_url="http://127.0.0.1/new.html", chain=hop)
    assert judge(quick, None, policy) == (Verdict.OK, "")
    gone = Probe(url, 404, final_url="http://127.0.0.1/new.html", chain=hop)
    assert judge(gone, None, policy) == (Verdict.BROKEN, "http_404")
