"""Fetch the configured sitemaps before the crawl and keep their in-scope pages.

``crawl.sitemaps`` (``--sitemap``) and, with ``crawl.robots_sitemaps``, the ``Sitemap:``
lines of each start URL's robots.txt name the sitemaps; a sitemap index leads to further
sitemaps (at most :data:`MAX_SITEMAPS` in all). Parsing is :mod:`crawler.pages.sitemap_parse`.
The spider seeds the pages the link crawl did not reach once it runs dry
(``AuditSpider._seed_sitemap``). Nothing here raises on a bad or missing sitemap: each
failure becomes a note (``SitemapSeeds.notes``) shown on stderr and in ``stats.sitemap``.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from crawler.pages.sitemap_parse import (
    MAX_SITEMAP_BYTES,
    SitemapEntry,
    SitemapError,
    parse_sitemap,
    robots_sitemaps,
)
from crawler.pages.urls import resolve

if TYPE_CHECKING:
    from crawler.config import Config

#: Sitemaps read at most per audit (index files included).
MAX_SITEMAPS = 100
#: How deep sitemap indexes may nest (an index of indexes is already unusual).
MAX_INDEX_DEPTH = 3
MAX_ROBOTS_BYTES = 500_000
READ_CHUNK = 1 << 16
#: All sitemaps of an audit are read within this many times ``crawl.timeout``.
TOTAL_TIMEOUTS = 5


@dataclass
class SitemapSeeds:
    """What the sitemaps offer the crawl."""

    #: In-scope page URL (as the crawl keys targets) -> its ``<lastmod>`` date, if any.
    pages: dict[str, dt.date | None] = field(default_factory=dict)
    #: URLs listed in the sitemaps (page entries, before the scope filter).
    listed: int = 0
    out_of_scope: int = 0
    excluded: int = 0
    sitemaps_read: int = 0
    notes: list[str] = field(default_factory=list)

    def stats(self) -> dict[str, object]:
        return {
            "sitemaps_read": self.sitemaps_read,
            "listed": self.listed,
            "in_scope": len(self.pages),
            "out_of_scope": self.out_of_scope,
            "excluded": self.excluded,
            "notes": list(self.notes),
        }


Fetch = Callable[[str, int], bytes]


def http_fetch(user_agent: str, timeout: float) -> Fetch:
    """A fetch function: GET ``url``, at most ``limit`` bytes, within ``timeout`` seconds
    for the whole answer (a server trickling bytes is cut off), or an exception."""

    def fetch(url: str, limit: int) -> bytes:
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            raise SitemapError("not an http(s) URL")
        deadline = time.monotonic() + timeout
        req = urllib.request.Request(url, headers={"User-Agent": user_agent})
        chunks: list[bytes] = []
        got = 0
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            while got <= limit:
                chunk = resp.read(min(READ_CHUNK, limit + 1 - got))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
                if time.monotonic() > deadline:
                    raise TimeoutError
        if got > limit:
            raise SitemapError(f"larger than {limit} bytes")
        return b"".join(chunks)

    return fetch


def _why(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot fetch ({exc.reason})"
    if isinstance(exc, SitemapError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"cannot fetch ({type(exc).__name__}: {str(exc)[:120]})"


def from_robots(start_urls: Iterable[str], fetch: Fetch, notes: list[str]) -> list[str]:
    """The sitemaps named by the robots.txt of each start URL's origin."""
    out: list[str] = []
    seen: set[str] = set()
    for url in start_urls:
        parts = urlsplit(url)
        robots = f"{parts.scheme}://{parts.netloc}/robots.txt"
        if robots in seen:
            continue
        seen.add(robots)
        try:
            text = fetch(robots, MAX_ROBOTS_BYTES).decode("utf-8", "replace")
        except urllib.error.HTTPError:
            continue  # no robots.txt: no sitemaps named there, nothing to note
        except Exception as exc:
            notes.append(f"robots.txt {robots}: {_why(exc)}")
            continue
        out += [u for u in robots_sitemaps(text) if u not in out]
    return out


def collect(
    sitemaps: Iterable[str],
    fetch: Fetch,
    in_scope: Callable[[str], bool],
    excluded: Callable[[str], bool],
    notes: list[str] | None = None,
    budget: float | None = None,
) -> SitemapSeeds:
    """Read ``sitemaps`` (and the sitemaps their indexes name) into seeds, within
    ``budget`` seconds in all (None: no limit)."""
    seeds = SitemapSeeds(notes=notes if notes is not None else [])
    deadline = None if budget is None else time.monotonic() + budget
    queue: list[tuple[str, int]] = [(u, 0) for u in dict.fromkeys(sitemaps)]
    done: set[str] = set()
    while queue:
        url, depth = queue.pop(0)
        if url in done:
            continue
        if len(done) >= MAX_SITEMAPS:
            seeds.notes.append(f"more than {MAX_SITEMAPS} sitemaps; the rest were not read")
            break
        if deadline is not None and time.monotonic() > deadline:
            seeds.notes.append(f"sitemaps took more than {budget:g} s; the rest were not read")
            break
        done.add(url)
        try:
            sm = parse_sitemap(fetch(url, MAX_SITEMAP_BYTES))
        except Exception as exc:
            seeds.notes.append(f"sitemap {url}: {_why(exc)}")
            continue
        seeds.sitemaps_read += 1
        if sm.kind == "sitemapindex":
            if depth >= MAX_INDEX_DEPTH:
                seeds.notes.append(f"sitemap {url}: indexes nested too deep; not followed")
                continue
            for e in sm.entries:
                child = resolve(url, e.loc)
                if not child.skip:
                    queue.append((child.base, depth + 1))
            continue
        _take(seeds, url, sm.entries, in_scope, excluded)
    return seeds


def _take(
    seeds: SitemapSeeds,
    sitemap_url: str,
    entries: Iterable[SitemapEntry],
    in_scope: Callable[[str], bool],
    excluded: Callable[[str], bool],
) -> None:
    for e in entries:
        seeds.listed += 1
        r = resolve(sitemap_url, e.loc)
        if r.skip or not in_scope(r.base):
            seeds.out_of_scope += 1
            continue
        if excluded(r.base):
            seeds.excluded += 1
            continue
        lastmod = e.lastmod
        known = seeds.pages.get(r.base)
        if known is None or (lastmod is not None and lastmod > known):
            seeds.pages[r.base] = lastmod


#: Directory index names: ``dir/`` and ``dir/index.html`` are one page to a sitemap.
INDEX_NAMES = ("index.html", "index.htm", "index.php")


def same_page(url: str) -> tuple[str, ...]:
    """``url`` and the addresses that name the same page: a directory and its index file."""
    if "?" in url:
        return (url,)
    if url.endswith("/"):
        return (url, *(url + name for name in INDEX_NAMES))
    head, _, name = url.rpartition("/")
    if name in INDEX_NAMES and "://" in head:
        return (url, head + "/")
    return (url,)


def gather(
    cfg: Config, in_scope: Callable[[str], bool], excluded: Callable[[str], bool]
) -> SitemapSeeds:
    """The seeds of ``crawl.sitemaps`` and, with ``crawl.robots_sitemaps``, of the sitemaps
    the start URLs' robots.txt name (asked with the crawl's user agent and timeout)."""
    c = cfg.crawl
    fetch = http_fetch(c.user_agent, c.timeout)
    notes: list[str] = []
    urls = list(c.sitemaps)
    if c.robots_sitemaps:
        urls += [u for u in from_robots(cfg.site.start_urls, fetch, notes) if u not in urls]
        if not urls:
            notes.append("no sitemap: none configured and none named in robots.txt")
    return collect(urls, fetch, in_scope, excluded, notes, budget=TOTAL_TIMEOUTS * c.timeout)
