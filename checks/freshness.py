"""Find a page's review date, and say where it came from.

The crawler calls :func:`find_review_date` once per HTML page with the already-parsed
``lxml.html`` document and the raw HTTP ``Last-Modified`` header. The module is pure: no Scrapy,
no Jinja2, no network; it never re-parses the page and never raises on hostile input.

Sources, in order of trust (the first source that yields a date wins). The ``source`` string
of the returned :class:`ReviewDate` is the quoted value:

1. ``"text"`` -- a review/update/publish phrase in the visible page text, followed closely by a
   date. Visible text excludes ``<head>``, ``<script>``, ``<style>``, ``<noscript>``,
   ``<template>`` and comments. Block elements (``p``, ``div``, ``li``, ``td``, ``br`` ...) are
   separated by a line break.
2. ``"time"`` -- ``<time datetime="...">`` inside a ``<footer>`` or an element whose id/class
   contains ``footer``, ``review``, ``updated`` or ``modified``, or right after a review phrase
   in its parent/ancestor element ("Senast uppdaterad: <time ...>igår</time>").
3. ``"json-ld"`` -- ``dateModified`` in ``<script type="application/ld+json">`` (top-level
   object, lists, and ``@graph`` lists; invalid JSON is ignored).
4. ``<meta>`` tags, names matched case-insensitively against ``name`` and ``property``, in
   this order: ``"meta:article:modified_time"``, ``"meta:og:updated_time"``,
   ``"meta:dcterms.modified"`` (for ``dcterms.modified``, ``dcterms:modified``,
   ``DC.date.modified``), ``"meta:govuk:updated-at"``.
5. ``"http:last-modified"`` -- the RFC 7231 ``Last-Modified`` header; weakest, since CMSs often
   send the render time.

A date that merely appears in body text ("I februari 1997 antog kommunfullmäktige ...",
"avtal tecknat 2019-05-01") is never used.

Phrases (case-insensitive; the words before the keyword do not matter, so "Sidan har
granskats", "Senast granskad:", "Page last reviewed:" all hit on their keyword):

- reviewed (strongest): ``granskad``, ``granskade``, ``granskades``, ``granskat``,
  ``granskats``, ``reviewed``
- updated: ``uppdaterad(e/es)``, ``uppdaterat``, ``ändrad(e/es)``, ``ändrat``,
  ``reviderad(e/es)``, ``updated``, ``modified``, ``revised``
- published (weakest): ``publicerad(e/es)``, ``publicerat``, ``published``

Between the keyword and the date only whitespace, punctuation (``: . , ; | - – — ( [``) and the
filler words ``den``, ``senast``, ``on``, ``the``, ``at``, ``last`` and weekday names (sv/en,
full or abbreviated) may stand, at most 40 characters. A keyword preceded by ``next``,
``nästa``, ``be``, ``ska``, ``skall`` or ``bör`` ("will be reviewed on ...") does not count, and
"Next review due: ..." has no keyword at all. With several hits on a page, reviewed beats
updated beats published; among equals the last one in document order wins (footers come last).

Date forms (:func:`parse_date_text`), Swedish and English month names, full or abbreviated
(``jan feb mar/mars apr maj/may jun jul aug sep/sept okt/oct nov dec``, optional trailing dot),
any case:

- ISO ``2013-12-13`` (also ``2013/12/13``, ``2013.12.13``; a trailing time is ignored)
- ``13 december 2013``, ``13. december 2013``, ``15 March 2021``, ``1st March 2021``
- ``March 15, 2021``, ``Nov 26, 2026``
- ``13.12.2013`` (day.month.year)
- ``24/10 2023`` and ``24/10/2023`` (day/month)

Machine values (``time``, JSON-LD, meta) are ISO 8601 dates or datetimes; the date part is
taken as written, i.e. in the stated zone. Dates are rejected when they are not real calendar
dates (2023-02-30) or their year is outside 1990..2100.

Not supported: two-digit years, month/day order for numeric dates, relative dates ("igår",
"3 days ago"), sitemap ``<lastmod>`` (not visible to this function), microdata ``itemprop``.
"""

from __future__ import annotations

import datetime
import email.utils
import functools
import json
import re
from dataclasses import dataclass
from typing import cast

import lxml.html
from lxml import etree

from checks.models import DateSource
from checks.review_phrases import (
    _GAP_RE,
    _NEGATED_BEFORE_RE,
    _PHRASE_RE,
    _RANKS,
    MAX_GAP,
    MAX_YEAR,
    MIN_YEAR,
    _has_stem,
    _make_date,
    _parse_machine,
    _text_has_stem,
    find_phrase_date,
    parse_date_text,
)

__all__ = [
    "MAX_GAP",
    "MAX_YEAR",
    "MIN_YEAR",
    "SOURCES",
    "ReviewDate",
    "_has_stem",
    "_text_has_stem",
    "find_phrase_date",
    "find_review_date",
    "parse_date_text",
]

#: Every value :attr:`ReviewDate.source` this module gives, strongest first (a sitemap's
#: ``sitemap:lastmod`` is added by ``checks.sitemap_checks``).
SOURCES: tuple[DateSource, ...] = (
    DateSource.TEXT,
    DateSource.TIME,
    DateSource.JSON_LD,
    DateSource.META_ARTICLE_MODIFIED,
    DateSource.META_OG_UPDATED,
    DateSource.META_DCTERMS_MODIFIED,
    DateSource.META_GOVUK_UPDATED,
    DateSource.HTTP_LAST_MODIFIED,
)


@dataclass(frozen=True, slots=True)
class ReviewDate:
    """A page's review date and the source it was read from (one of :data:`SOURCES`)."""

    date: datetime.date
    source: DateSource


# --------------------------------------------------------------------------- visible text

#: All text under an element, scripts included; C-speed, used as a cheap pre-check.
_all_text = etree.XPath("string()")
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "head", "title"})
_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "br",
        "caption",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "html",
        "li",
        "main",
        "nav",
        "ol",
        "option",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    }
)


def _visible_text(
    el: etree._Element, cap: int | None = None, stop: etree._Element | None = None
) -> str:
    """Visible text of ``el`` (not its tail), block elements separated by newlines.

    Stops after about ``cap`` characters, or on reaching the element ``stop`` (whose own text
    is not included). Tags are expected lower-case and without namespace, as ``lxml.html``
    produces them.
    """
    parts: list[str] = []
    add = parts.append
    size = 0
    walker = etree.iterwalk(el, events=("start", "end", "comment", "pi"))
    for event, node in walker:
        if event == "start":
            if node is stop:
                break
            tag = node.tag
            if tag in _SKIP_TAGS:
                walker.skip_subtree()
                continue
            if tag in _BLOCK_TAGS:
                add("\n")
            text = node.text
        else:
            if event == "end" and node.tag in _BLOCK_TAGS:
                add("\n")
            if node is el:
                continue
            text = node.tail
        if text:
            add(text)
            if cap is not None:
                size += len(text)
                if size > cap:
                    break
    return "".join(parts)


#: Every date form holds a four-digit year from 1990 to 2100 (``MIN_YEAR``..``MAX_YEAR``).
_YEAR_ASCII = re.compile(r"(?:19|20|21)[0-9][0-9]")


def _may_hold_year(text: str) -> bool:
    """Whether ``text`` may hold a phrase date's year: "19dd", "20dd" or "21dd", or a
    digit of another script (Python's ``\\d`` reads "٢٠١٣" too). Text without one holds
    no phrase date, and its visible text (0.38 ms a page of the PostgreSQL manual, best of
    7) need not be made: there 160 of the 209 pages holding a keyword hold no year. The one thing
    this misses is a year split by a skipped element ("20<script>…</script>13"), which no
    page writes."""
    if _YEAR_ASCII.search(text):
        return True
    if text.isascii():
        return False
    return any(c.isdigit() for c in set(text) if not c.isascii())


# --------------------------------------------------------------------------- <time>

_MAX_TIME_ELEMENTS = 200
_CLASS_KEYWORDS = (("review", 3), ("updated", 2), ("modified", 2), ("footer", 0))
_NEXT_REVIEW_RE = re.compile(
    r"(?:next|nästa|kommande)\s+(?:review|granskning)|review\s+due|granskas", re.IGNORECASE
)
_PHRASE_TAIL_RE = re.compile(
    rf"(?:{_PHRASE_RE.pattern})(?P<gap>(?:{_GAP_RE.pattern}))$",
    re.IGNORECASE | re.VERBOSE,
)


def _phrase_rank_before(time_el: etree._Element) -> int | None:
    """Rank of a review phrase standing right before ``time_el`` in its nearest ancestors.

    Returns -1 when the preceding text announces a *next* review; None when there is no
    phrase there.
    """
    anc = time_el.getparent()
    for _ in range(3):
        if anc is None:
            return None
        before = _visible_text(anc, cap=2000, stop=time_el)
        if len(before) > 2000:
            return None
        tail = before[-80:]
        if _NEXT_REVIEW_RE.search(tail[-40:]):
            return -1
        m = _PHRASE_TAIL_RE.search(tail)
        if m and len(m["gap"]) <= MAX_GAP:
            if _NEGATED_BEFORE_RE.search(tail, max(0, m.start() - 12), m.start()):
                return -1
            return _RANKS[next(k for k in _RANKS if m[k])]
        if tail.strip():
            return None
        anc = anc.getparent()
    return None


def _class_rank(time_el: etree._Element) -> int | None:
    """Rank from the footer/review/updated/modified context of ``time_el``, if any."""
    best: int | None = None
    node: etree._Element | None = time_el
    depth = 0
    while node is not None and depth < 64:
        tag = node.tag
        if tag == "footer":
            best = max(best or 0, 0)
        if tag not in ("body", "html"):
            words = f"{node.get('class') or ''} {node.get('id') or ''}".lower()
            if "next" in words and "review" in words:
                return -1
            for word, rank in _CLASS_KEYWORDS:
                if word in words:
                    best = rank if best is None else max(best, rank)
        node = node.getparent()
        depth += 1
    return best


def _from_time(root: etree._Element) -> datetime.date | None:
    elements = [t for t in root.iter("time") if t.get("datetime")]
    best: tuple[int, datetime.date] | None = None
    for t in elements[-_MAX_TIME_ELEMENTS:]:
        d = _parse_machine(t.get("datetime"))
        if d is None:
            continue
        rank = _phrase_rank_before(t)
        if rank is None:
            rank = _class_rank(t)
        if rank is None or rank < 0:
            continue
        if best is None or rank >= best[0]:
            best = (rank, d)
    return best[1] if best else None


# --------------------------------------------------------------------------- JSON-LD

_MAX_JSON_CHARS = 2_000_000
_MAX_JSON_NODES = 2_000


def _json_value_date(value: object) -> datetime.date | None:
    if isinstance(value, dict):
        value = value.get("@value")
    if isinstance(value, list):
        for item in value[:10]:
            d = _json_value_date(item) if not isinstance(item, list) else None
            if d is not None:
                return d
        return None
    return _parse_machine(value)


def _json_ld_date(data: object) -> datetime.date | None:
    """First ``dateModified`` among the top-level nodes and their ``@graph`` members."""
    queue = [data]
    seen = 0
    while queue and seen < _MAX_JSON_NODES:
        node = queue.pop(0)
        seen += 1
        if isinstance(node, list):
            queue.extend(node[:_MAX_JSON_NODES])
        elif isinstance(node, dict):
            if "dateModified" in node:
                d = _json_value_date(node["dateModified"])
                if d is not None:
                    return d
            graph = node.get("@graph")
            if isinstance(graph, list | dict):
                queue.append(graph)
    return None


def _from_json_ld(root: etree._Element) -> datetime.date | None:
    for script in root.iter("script"):
        kind = (script.get("type") or "").strip().lower()
        if "ld+json" not in kind:
            continue
        raw = script.text
        if not raw or len(raw) > _MAX_JSON_CHARS:
            continue
        try:
            data = json.loads(raw)
        except Exception:  # ValueError, RecursionError on absurd nesting
            continue
        d = _json_ld_date(data)
        if d is not None:
            return d
    return None


# --------------------------------------------------------------------------- <meta>

_META_SOURCES: dict[str, DateSource] = {
    "article:modified_time": DateSource.META_ARTICLE_MODIFIED,
    "og:updated_time": DateSource.META_OG_UPDATED,
    "dcterms.modified": DateSource.META_DCTERMS_MODIFIED,
    "dcterms:modified": DateSource.META_DCTERMS_MODIFIED,
    "dc.date.modified": DateSource.META_DCTERMS_MODIFIED,
    "govuk:updated-at": DateSource.META_GOVUK_UPDATED,
}
_META_ORDER = {source: i for i, source in enumerate(SOURCES)}


def _from_meta(root: etree._Element) -> ReviewDate | None:
    best: ReviewDate | None = None
    for meta in root.iter("meta"):
        for attr in ("property", "name"):
            key = meta.get(attr)
            if not key:
                continue
            source = _META_SOURCES.get(key.strip().lower())
            if source is None:
                continue
            if best is not None and _META_ORDER[source] >= _META_ORDER[best.source]:
                continue
            d = _parse_machine(meta.get("content"))
            if d is not None:
                best = ReviewDate(d, source)
    return best


# --------------------------------------------------------------------------- HTTP


def _from_last_modified(value: str | None) -> datetime.date | None:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        return None
    return _http_date(value)


@functools.lru_cache(maxsize=256)
def _http_date(value: str) -> datetime.date | None:
    """The date of an HTTP date; remembered, as a site's pages often share one (a release
    unpacked at one moment): parsing it was ~4 % of reading a page of the PostgreSQL
    manual."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except Exception:
        return None
    if when is None:  # pragma: no cover - older Pythons returned None
        return None
    return _make_date(when.year, when.month, when.day)


# --------------------------------------------------------------------------- entry point


def find_review_date(
    root: lxml.html.HtmlElement | None, last_modified: str | None = None
) -> ReviewDate | None:
    """The page's review date from the most trusted source that has one, else None.

    ``root`` is the parsed document (``lxml.html.fromstring``/``document_fromstring``);
    ``last_modified`` the raw HTTP header value. Never raises.
    """
    if root is not None:
        try:
            if hasattr(root, "getroot"):  # an ElementTree rather than an element
                root = root.getroot()
        except Exception:
            root = None
    if root is not None:
        try:
            # Cheap pre-checks on all text (scripts included; string() always gives a
            # string): no keyword or no year, no phrase date.
            text = cast(str, _all_text(root))
            if _text_has_stem(text) and _may_hold_year(text):
                hit = find_phrase_date(_visible_text(root))
                if hit is not None:
                    return ReviewDate(hit[0], DateSource.TEXT)
        except Exception:
            pass
        finders = ((_from_time, DateSource.TIME), (_from_json_ld, DateSource.JSON_LD))
        for finder, source in finders:
            try:
                d = finder(root)
            except Exception:
                d = None
            if d is not None:
                return ReviewDate(d, source)
        try:
            found = _from_meta(root)
        except Exception:
            found = None
        if found is not None:
            return found
    try:
        d = _from_last_modified(last_modified)
    except Exception:
        d = None
    return ReviewDate(d, DateSource.HTTP_LAST_MODIFIED) if d is not None else None
