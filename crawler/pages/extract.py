"""What the audit reads from an HTML page: ids, soft-404 test, title, review date, links.

Plain functions of the body (no Scrapy), so the same code runs in the spider's process or
in the parse worker (``crawler.pages.parse_worker``) while the spider's process keeps fetching.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree
from w3lib.encoding import html_body_declared_encoding, http_content_type_encoding, read_bom

from checks.freshness import ReviewDate, find_review_date
from checks.refresh import parse_refresh
from crawler.pages.css_refs import IMPORT, css_refs
from crawler.pages.srcset import srcset_urls
from crawler.pages.urls import resolve

#: The elements and attributes links are read from (the table in docs/report-format.md
#: says which are crawled, which only checked, and what is left out and why).
LINK_ATTRS: dict[str, tuple[str, ...]] = {
    "a": ("href",),
    "area": ("href",),
    "link": ("href",),
    "img": ("src", "srcset"),
    "source": ("src", "srcset"),
    "iframe": ("src",),
    "frame": ("src",),
    "script": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "input": ("src",),  # type=image only
    "style": (),  # the block's @import and url(...) (crawler/pages/css_refs.py)
}
#: Tags whose links the crawl follows as pages (the others' targets are only checked).
CRAWL_TAGS = frozenset({"a", "area", "iframe", "frame"})
#: The tag of a ``<link rel=stylesheet>`` reference and of an ``@import``: in-scope targets
#: are fetched and read for their own references (``crawler.pages.stylesheets``).
STYLESHEET_TAGS = frozenset({"stylesheet", IMPORT})
#: Embedded resources that may be PDFs whatever their URL says: sniffed (a PDF served as
#: one gets the PDF check, as an ``<a>`` to it does).
EMBED_TAGS = frozenset({"object", "embed"})
#: The two above: the spider's one test per link for both.
RESOURCE_TAGS = STYLESHEET_TAGS | EMBED_TAGS
#: A crawled URL that answers with something other than HTML is read up to this many bytes
#: (enough to tell a PDF from an error page).
SNIFF_BYTES = 1024
#: ``<link rel>`` values whose href is no resource of the page: origins to connect to early
#: (``preconnect``, ``dns-prefetch``) and guesses at the next navigation (``prefetch``).
SKIP_LINK_RELS = frozenset({"preconnect", "dns-prefetch", "prefetch"})
# Plain ``etree`` parsers, not ``lxml.html``'s: the same libxml2 parse, but without the
# Python class lookup ``lxml.html`` runs for every element it hands out (~5 % of the
# instructions of reading a page of the PostgreSQL manual). Text is read with :data:`TEXT`.
_PARSERS: dict[str, etree.HTMLParser | None] = {}
TEXT_PARSER = etree.HTMLParser(collect_ids=False)
#: An element's text with its descendants' (``lxml.html``'s ``text_content()``).
TEXT = etree.XPath("string()")


_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<meta", b"<!--")


def declared_encoding(content_type: str, body: bytes) -> str | None:
    """The charset a page declares (BOM, Content-Type header, ``<meta>``), if any: what
    Scrapy's ``TextResponse`` takes before it guesses."""
    return (
        read_bom(body)[0]
        or http_content_type_encoding(content_type)
        or html_body_declared_encoding(body)
    )


def looks_like_html(body: bytes) -> bool:
    """Sniff a body served without Content-Type, as browsers do (a subset of WHATWG's)."""
    start = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n\x0c").lower()
    return start.startswith(_HTML_STARTS)


def text_of(el: etree._Element) -> str:
    """``TEXT(el)``, read straight from ``el.text`` when it has no children (85 % of the
    PostgreSQL manual's links)."""
    return TEXT(el) if len(el) else (el.text or "")


XPATH_IDS = etree.XPath("//@id | //a/@name", smart_strings=False)
XPATH_HEADINGS = etree.XPath("//title | //h1 | //h2", smart_strings=False)
XPATH_HEADING_TEXT = etree.XPath(
    "//title//text() | //h1//text() | //h2//text()", smart_strings=False
)
XPATH_BASE = etree.XPath("//base/@href", smart_strings=False)
#: ``<meta http-equiv=refresh content>`` values (ASCII case-insensitive, as browsers match),
#: children of ``<head>`` or ``<body>`` only: ~4 µs a page of the PostgreSQL manual, where
#: ``//meta`` walked the whole tree (~40 µs of ~600). A ``<meta>`` nested deeper in the body
#: is not seen (one inside ``<noscript>`` a browser running scripts ignores anyway).
XPATH_REFRESH = etree.XPath(
    "/html/*/meta[translate(@http-equiv, 'REFSH', 'refsh') = 'refresh']/@content",
    smart_strings=False,
)
#: ``style="..."`` attributes that may hold a reference. Asked only of a body that has
#: "url(" in it (``facts_from_body``): the XPath walks every attribute of the page (~33 µs
#: a page of the PostgreSQL manual, ~5 % of reading it), the byte search ~9 µs.
XPATH_STYLE_URLS = etree.XPath(
    "//@style[contains(., 'url(') or contains(., 'URL(') or contains(., 'Url(')]",
    smart_strings=False,
)


@dataclass(frozen=True, slots=True)
class ParsedPage:
    """One parsed HTML body. ``links`` (href, text, tag), first of each (href, tag), in
    document order; title, review date and links only when asked for (a crawled page)."""

    ids: frozenset[str]
    soft_404: bool
    title: str = ""
    review: ReviewDate | None = None
    base_url: str = ""
    links: tuple[tuple[str, str, str], ...] = ()
    #: The page's meta refresh: (delay in seconds, URL as written, None: itself), if any
    #: (``checks.refresh``; the first ``<meta http-equiv=refresh>`` a browser obeys).
    refresh: tuple[int, str | None] | None = None


def parser_for(encoding: str) -> etree.HTMLParser | None:
    """A parser for bytes in ``encoding``; None when libxml2 does not know the name
    (Python's "utf-16-le", say): the caller then parses the decoded text instead."""
    if encoding in _PARSERS:
        return _PARSERS[encoding]
    try:
        p: etree.HTMLParser | None = etree.HTMLParser(encoding=encoding, collect_ids=False)
    except LookupError:
        p = None
    _PARSERS[encoding] = p
    return p


def parse_html(body: bytes | str, encoding: str) -> etree._Element | None:
    """The document tree, or None when libxml2 gives up. ``str`` bodies are parsed as text."""
    try:
        if isinstance(body, str):
            return etree.fromstring(body, TEXT_PARSER)
        return etree.fromstring(body, parser_for(encoding))
    except (etree.ParserError, ValueError, etree.XMLSyntaxError):
        return None


def clean_text(s: str, limit: int = 300) -> str:
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def is_soft_404(root: etree._Element, phrases: tuple[str, ...]) -> bool:
    if not phrases:
        return False
    # Every heading's text is a contiguous run of this text, so a phrase found in one
    # heading is found here too: most pages stop at this one cheap test.
    every = " ".join("".join(XPATH_HEADING_TEXT(root)).split()).lower()
    if not any(p in every for p in phrases):
        return False
    for el in XPATH_HEADINGS(root):
        text = " ".join(text_of(el).split()).lower()
        if any(p in text for p in phrases):
            return True
    return False


def page_facts(
    root: etree._Element,
    url: str,
    last_modified: str | None,
    phrases: tuple[str, ...],
    links: bool,
    style_attrs: bool = True,
) -> ParsedPage:
    """Facts of a parsed body served at ``url`` (after redirects); with ``links`` also
    title, review date, ``<base>`` and every link (with ``style_attrs``, also those of
    ``style`` attributes)."""
    ids = frozenset(map(str, XPATH_IDS(root)))
    soft_404 = is_soft_404(root, phrases)
    refresh = meta_refresh(root)
    if not links:
        return ParsedPage(ids, soft_404, refresh=refresh)
    title_el = first_descendant(root, "title")
    title = clean_text(text_of(title_el)) if title_el is not None else ""
    review = find_review_date(root, last_modified)
    base_url = url
    for b in XPATH_BASE(root):
        base_url = resolve(url, str(b)).base or base_url
        break
    links_found = tuple(_links(root, style_attrs))
    return ParsedPage(ids, soft_404, title, review, base_url, links_found, refresh)


def meta_refresh(root: etree._Element) -> tuple[int, str | None] | None:
    """The first ``<meta http-equiv=refresh>`` whose content a browser obeys, if any."""
    for content in XPATH_REFRESH(root):
        found = parse_refresh(str(content))
        if found is not None:
            return found
    return None


def first_descendant(root: etree._Element, tag: str) -> etree._Element | None:
    """``root.find(".//" + tag)``, searched one child's subtree at a time. lxml's tag
    iterator looks for the next match before it hands out the current one, so on a page
    with one ``<title>`` ``find`` walked the whole document (~27 µs of ~570 µs reading a
    page of the PostgreSQL manual); here the walk ends with the subtree that holds the
    first match (``<head>``)."""
    for child in root:
        found = next(child.iter(tag), None)
        if found is not None:
            return found
    return None


def _links(root: etree._Element, style_attrs: bool = True) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    for el in root.iter(*LINK_ATTRS):
        tag = el.tag
        attrs = LINK_ATTRS[tag]
        if tag == "link":
            rel = (el.get("rel") or "").lower().split()
            if any(r in SKIP_LINK_RELS for r in rel):
                continue
            if "stylesheet" in rel:
                tag = "stylesheet"
        elif tag == "input":
            if (el.get("type") or "").strip().lower() != "image":
                continue
        elif tag == "style":
            _css(el.text or "", out, seen)
            continue
        for attr in attrs:
            value = el.get(attr)
            if not value:
                continue
            hrefs = srcset_urls(value) if attr == "srcset" else (value,)
            for href in hrefs:
                if (href, tag) in seen:
                    continue
                seen.add((href, tag))
                out.append((href, _link_text(el, tag), tag))
    if style_attrs:
        for style in XPATH_STYLE_URLS(root):
            _css(str(style), out, seen)
    return out


def _css(text: str, out: list[tuple[str, str, str]], seen: set[tuple[str, str]]) -> None:
    """The references of a ``<style>`` block or ``style`` attribute, tagged ``@import`` or
    ``css``, into ``out`` (link text: none)."""
    for href, kind in css_refs(text):
        if (href, kind) not in seen:
            seen.add((href, kind))
            out.append((href, "", kind))


def _link_text(el: etree._Element, tag: str) -> str:
    if tag in ("a", "area"):
        text = clean_text(text_of(el) if tag == "a" else el.get("alt", ""))
        if not text:
            text = clean_text(el.get("title") or el.get("aria-label") or "")
            if not text:
                img = el.find(".//img")
                if img is not None:
                    text = clean_text(img.get("alt") or "")
        return text
    return clean_text(el.get("alt") or el.get("title") or "")


def facts_from_body(
    body: bytes | str,
    encoding: str,
    url: str,
    last_modified: str | None,
    phrases: tuple[str, ...],
    links: bool,
) -> ParsedPage | None:
    """Parse and read one body; None when it cannot be parsed."""
    root = parse_html(body, encoding)
    if root is None:
        return None
    # Lower case "url(" only: an upper-case URL( in a style attribute is not read.
    style_attrs = links and ("url(" in body if isinstance(body, str) else b"url(" in body)
    return page_facts(root, url, last_modified, phrases, links, style_attrs)
