"""Read sitemap XML (sitemaps.org protocol): pure functions, no network.

:func:`parse_sitemap` takes the body as fetched (plain or gzip) and returns the document's
kind (``urlset`` or ``sitemapindex``) and its entries (``<loc>`` and ``<lastmod>``). The XML
parser never resolves entities, never loads a DTD and never touches the network, so entity
expansion ("billion laughs") and external entities are impossible; bodies and the gzip
decompression are size-capped. Bad input raises :class:`SitemapError` with a short reason.
"""

from __future__ import annotations

import datetime as dt
import re
import zlib
from dataclasses import dataclass

from lxml import etree

#: Largest sitemap read, in bytes after decompression (the protocol allows 50 MB).
MAX_SITEMAP_BYTES = 50_000_000
#: Entries read from one sitemap at most (the protocol's own limit).
MAX_ENTRIES = 50_000
GZIP_MAGIC = b"\x1f\x8b"
_DATE = re.compile(r"\s*(\d{4})-(\d{2})-(\d{2})")


class SitemapError(Exception):
    """The body is not a readable sitemap; the message says why."""


@dataclass(frozen=True, slots=True)
class SitemapEntry:
    loc: str
    lastmod: dt.date | None = None


@dataclass(frozen=True, slots=True)
class Sitemap:
    #: ``urlset`` (pages) or ``sitemapindex`` (further sitemaps).
    kind: str
    entries: tuple[SitemapEntry, ...]


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        recover=False,
        remove_comments=True,
        remove_pis=True,
    )


def gunzip(body: bytes, limit: int = MAX_SITEMAP_BYTES) -> bytes:
    """``body`` decompressed when it is gzip, at most ``limit`` bytes (else SitemapError)."""
    if not body.startswith(GZIP_MAGIC):
        if len(body) > limit:
            raise SitemapError(f"larger than {limit} bytes")
        return body
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise SitemapError(f"corrupt gzip data ({exc})") from None
    if len(out) > limit:
        raise SitemapError(f"larger than {limit} bytes once decompressed")
    if not d.eof:
        raise SitemapError("corrupt gzip data (truncated)")
    return out


def parse_lastmod(text: str | None) -> dt.date | None:
    """The date part of a W3C datetime (``2024-05-01``, ``2024-05-01T10:00:00+02:00``),
    None when absent, not a real date or outside 1990..2100."""
    if not text:
        return None
    m = _DATE.match(text)
    if m is None:
        return None
    year, month, day = (int(g) for g in m.groups())
    if not 1990 <= year <= 2100:
        return None
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _local(tag: object) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1].lower()


def parse_sitemap(body: bytes, limit: int = MAX_SITEMAP_BYTES) -> Sitemap:
    """The kind and entries of a sitemap body (plain or gzip). Raises SitemapError."""
    xml = gunzip(body, limit)
    if not xml.strip():
        raise SitemapError("empty document")
    try:
        root = etree.fromstring(xml, parser=_parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise SitemapError(f"not well-formed XML ({str(exc)[:120]})") from None
    kind = _local(root.tag)
    if kind == "urlset":
        item = "url"
    elif kind == "sitemapindex":
        item = "sitemap"
    else:
        raise SitemapError(f"not a sitemap (root element <{kind or '?'}>)")
    entries: list[SitemapEntry] = []
    for child in root:
        if _local(child.tag) != item:
            continue
        loc = lastmod = None
        for field in child:
            name = _local(field.tag)
            if name == "loc":
                loc = (field.text or "").strip()
            elif name == "lastmod":
                lastmod = field.text
        if loc:
            entries.append(SitemapEntry(loc, parse_lastmod(lastmod)))
            if len(entries) >= MAX_ENTRIES:
                break
    return Sitemap(kind, tuple(entries))


def robots_sitemaps(robots_txt: str) -> list[str]:
    """The URLs of ``Sitemap:`` lines in a robots.txt (any case, in order, once each)."""
    out: list[str] = []
    for line in robots_txt.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == "sitemap":
            url = value.split("#", 1)[0].strip()
            if url and url not in out:
                out.append(url)
    return out
