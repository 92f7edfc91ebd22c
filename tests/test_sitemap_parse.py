"""Sitemap XML reading (crawler.pages.sitemap_parse) and the review-date fallback."""

from __future__ import annotations

import datetime as dt
import gzip
import re

import pytest

from checks.freshness import ReviewDate
from checks.models import Check, Page, Severity
from checks.policy import Policy
from checks.sitemap_checks import SITEMAP_LASTMOD, unlinked_findings, with_lastmod
from crawler.pages.sitemap_parse import (
    SitemapEntry,
    SitemapError,
    gunzip,
    parse_lastmod,
    parse_sitemap,
    robots_sitemaps,
)

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def urlset(*items: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset {NS}>{"".join(items)}</urlset>'.encode()


def test_urlset_with_lastmod() -> None:
    sm = parse_sitemap(
        urlset(
            "<url><loc> https://x.se/a.html </loc><lastmod>2024-05-01</lastmod></url>",
            "<url><loc>https://x.se/b.html</loc><lastmod>2024-05-02T10:00:00+02:00</lastmod>"
            "<changefreq>weekly</changefreq></url>",
            "<url><loc>https://x.se/c.html</loc></url>",
            "<url><lastmod>2024-01-01</lastmod></url>",  # no loc: ignored
        )
    )
    assert sm.kind == "urlset"
    assert sm.entries == (
        SitemapEntry("https://x.se/a.html", dt.date(2024, 5, 1)),
        SitemapEntry("https://x.se/b.html", dt.date(2024, 5, 2)),
        SitemapEntry("https://x.se/c.html", None),
    )


def test_sitemap_index_and_no_namespace() -> None:
    body = (
        b"<sitemapindex><sitemap><loc>https://x.se/s1.xml.gz</loc></sitemap>"
        b"<sitemap><loc>/s2.xml</loc><lastmod>2023-01-01</lastmod></sitemap></sitemapindex>"
    )
    sm = parse_sitemap(body)
    assert sm.kind == "sitemapindex"
    assert [e.loc for e in sm.entries] == ["https://x.se/s1.xml.gz", "/s2.xml"]


def test_gzip_body() -> None:
    body = urlset("<url><loc>https://x.se/a.html</loc></url>")
    assert parse_sitemap(gzip.compress(body)) == parse_sitemap(body)


def test_entities_are_never_expanded() -> None:
    lol = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
        b"]><urlset><url><loc>https://x.se/&lol3;</loc></url></urlset>"
    )
    sm = parse_sitemap(lol)
    assert all("lol" not in e.loc for e in sm.entries)
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/hostname">]>'
        b"<urlset><url><loc>&e;</loc></url></urlset>"
    )
    assert parse_sitemap(xxe).entries == ()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"<html><body>Not found</body></html>", "not a sitemap"),
        (b"<urlset><url><loc>x</loc>", "not well-formed"),
        (b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
    ],
)
def test_bad_bodies_raise_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(SitemapError, match=reason):
        parse_sitemap(body)


def test_size_caps() -> None:
    big = urlset(*["<url><loc>https://x.se/p.html</loc></url>"] * 200)
    with pytest.raises(SitemapError, match="larger than"):
        parse_sitemap(big, limit=1000)
    bomb = gzip.compress(b" " * 5_000_000)
    with pytest.raises(SitemapError, match="once decompressed"):
        gunzip(bomb, limit=100_000)


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("2024-02-29", dt.date(2024, 2, 29)),
        (" 2024-02-28T23:59:59Z", dt.date(2024, 2, 28)),
        ("2023-02-29", None),
        ("1900-01-01", None),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_lastmod(text: str | None, date: dt.date | None) -> None:
    assert parse_lastmod(text) == date


def test_robots_sitemap_lines() -> None:
    text = (
        "User-agent: *\nDisallow: /x/\nSitemap: https://x.se/sitemap.xml\n"
        "sitemap:https://x.se/other.xml # comment\nSITEMAP: https://x.se/sitemap.xml\n"
        "Sitemap:\n"
    )
    assert robots_sitemaps(text) == ["https://x.se/sitemap.xml", "https://x.se/other.xml"]


D = dt.date(2021, 6, 1)


def test_lastmod_is_below_page_dates_and_above_last_modified() -> None:
    visible = ReviewDate(dt.date(2025, 1, 1), "text")
    meta = ReviewDate(dt.date(2019, 1, 1), "meta:dcterms.modified")
    header = ReviewDate(dt.date(2026, 1, 1), "http:last-modified")
    assert with_lastmod(visible, D) is visible
    assert with_lastmod(meta, D) is meta
    assert with_lastmod(header, D) == ReviewDate(D, SITEMAP_LASTMOD)
    assert with_lastmod(None, D) == ReviewDate(D, SITEMAP_LASTMOD)
    assert with_lastmod(header, None) is header
    assert with_lastmod(None, None) is None


def test_unlinked_findings() -> None:
    pages = [
        Page("https://x.se/s/linked.html", 200),
        Page("https://x.se/s/only.html", 200),
        Page("https://x.se/s/gone.html", 404, is_html=False),
    ]
    found = unlinked_findings(
        ["https://x.se/s/only.html", "https://x.se/s/gone.html"], pages, Policy()
    )
    assert [(f.check, f.severity, f.page, f.detail) for f in found] == [
        (Check.UNLINKED_PAGE, Severity.INFO, "https://x.se/s/only.html", ""),
        (Check.UNLINKED_PAGE, Severity.INFO, "https://x.se/s/gone.html", "http_404"),
    ]
    assert unlinked_findings([], pages, Policy()) == []


def test_config_keys_are_validated() -> None:
    from crawler.config import ConfigError, load_config

    cfg = load_config(
        None,
        {
            "crawl": {"sitemaps": ["https://x.se/sitemap.xml"], "robots_sitemaps": True},
            "links": {"redirect_to_home_ok": ["Kampanj.X.se", "https://x.se/a/"]},
        },
    )
    assert cfg.crawl.sitemaps == ("https://x.se/sitemap.xml",)
    assert cfg.crawl.robots_sitemaps is True
    policy = cfg.policy()
    assert policy.redirect_to_home and policy.redirect_to_home_ok == (
        "kampanj.x.se",
        "https://x.se/a/",
    )
    assert policy.home_redirect_allowed("https://www.kampanj.x.se/p/q")
    assert not policy.home_redirect_allowed("https://x.se/b/c")
    assert policy.severity(Check.UNLINKED_PAGE) is Severity.INFO
    for overrides, key in [
        ({"crawl": {"sitemaps": ["ftp://x.se/s.xml"]}}, "crawl.sitemaps[0]"),
        ({"crawl": {"robots_sitemaps": "yes"}}, "crawl.robots_sitemaps"),
        ({"links": {"redirect_to_home_ok": ["not a host"]}}, "links.redirect_to_home_ok[0]"),
        ({"severity": {"unlinked_page": "loud"}}, "severity.unlinked_page"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(key)):
            load_config(None, overrides)


def test_collect_follows_indexes_and_notes_failures() -> None:
    from crawler.pages.sitemaps import collect, from_robots

    docs = {
        "https://x.se/robots.txt": b"Sitemap: https://x.se/index.xml\n",
        "https://x.se/index.xml": (
            b"<sitemapindex><sitemap><loc>/a.xml</loc></sitemap>"
            b"<sitemap><loc>/a.xml</loc></sitemap>"  # twice: read once
            b"<sitemap><loc>/inner.xml</loc></sitemap>"
            b"<sitemap><loc>/missing.xml</loc></sitemap></sitemapindex>"
        ),
        "https://x.se/inner.xml": (
            b"<sitemapindex><sitemap><loc>/b.xml.gz</loc></sitemap></sitemapindex>"
        ),
        "https://x.se/a.xml": urlset(
            "<url><loc>https://x.se/s/p.html</loc><lastmod>2020-01-01</lastmod></url>",
            "<url><loc>https://other.se/s/q.html</loc></url>",
            "<url><loc>mailto:a@x.se</loc></url>",
        ),
        "https://x.se/b.xml.gz": gzip.compress(
            urlset("<url><loc>/s/p.html#top</loc><lastmod>2021-01-01</lastmod></url>")
        ),
    }

    def fetch(url: str, limit: int) -> bytes:
        if url not in docs:
            raise SitemapError("HTTP 404")
        return docs[url]

    notes: list[str] = []
    sitemaps = from_robots(["https://x.se/s/", "https://x.se/t/"], fetch, notes)
    assert sitemaps == ["https://x.se/index.xml"]
    seeds = collect(
        sitemaps,
        fetch,
        in_scope=lambda u: u.startswith("https://x.se/s/"),
        excluded=lambda u: False,
        notes=notes,
    )
    # The newest lastmod of a page listed twice wins; the fragment is not part of the URL.
    assert seeds.pages == {"https://x.se/s/p.html": dt.date(2021, 1, 1)}
    assert (seeds.listed, seeds.out_of_scope, seeds.sitemaps_read) == (4, 2, 4)
    assert notes == ["sitemap https://x.se/missing.xml: HTTP 404"]


def test_a_directory_and_its_index_file_are_one_page() -> None:
    from crawler.pages.sitemaps import same_page

    assert same_page("https://x.se/s/") == (
        "https://x.se/s/",
        "https://x.se/s/index.html",
        "https://x.se/s/index.htm",
        "https://x.se/s/index.php",
    )
    assert same_page("https://x.se/s/index.html") == (
        "https://x.se/s/index.html",
        "https://x.se/s/",
    )
    assert same_page("https://x.se/s/a.html") == ("https://x.se/s/a.html",)
    assert same_page("https://x.se/s/?p=1") == ("https://x.se/s/?p=1",)
