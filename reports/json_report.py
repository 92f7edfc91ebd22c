"""The JSON contract (``sitewatch/report@1``) and the finding order every format shares.

``report_to_dict`` is the canonical projection of a :class:`checks.models.Report`; it is
documented in ``docs/report-format.md`` and ``docs/report.schema.json``.  The other
renderers take their ordering (:func:`ordered_findings`) and text hygiene
(:func:`clean_unicode`) from here so that every format lists problems the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import Enum
from typing import Any

from checks.models import Check, Finding, LinkRef, LinkResult, Page, Report, RunInfo

SCHEMA_ID = "sitewatch/report@1"

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_unicode(text: str) -> str:
    """Replace lone surrogates (undecodable bytes smuggled into ``str``) with U+FFFD."""
    if text.isascii():  # most URLs: nothing to look for (and ~10 times cheaper)
        return text
    return _LONE_SURROGATE.sub("\ufffd", text)


def finding_sort_key(f: Finding) -> tuple[object, ...]:
    """Watched targets first, then severity (error, warning, info), then page URL.

    Check name, target and detail break the remaining ties so the order is total and
    stable (the same order as ``checks.evaluate.sort_key``, plus detail).
    """
    return (not f.watched, -f.severity.rank, f.page, f.check.value, f.target, f.detail)


def ordered_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=finding_sort_key)


def stale_pages(report: Report) -> set[str]:
    """URLs of pages that carry a ``stale_page`` finding (by page URL)."""
    return {f.page for f in report.findings if f.check is Check.STALE_PAGE}


def age_days(page: Page, as_of: dt.date) -> int | None:
    """Days from the page's review date to ``as_of`` (negative if dated in the future)."""
    return None if page.review_date is None else (as_of - page.review_date).days


def aware(value: dt.datetime) -> dt.datetime:
    """``value`` with a time zone; a naive datetime is taken to be UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def iso_datetime(value: dt.datetime) -> str:
    """ISO 8601 with a UTC offset (naive datetimes are taken to be UTC)."""
    return aware(value).isoformat()


def _jsonable(value: object) -> object:
    """Make a free-form ``stats`` value JSON-safe (recursively)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, str):
        return clean_unicode(value)
    if isinstance(value, Enum):
        return _jsonable(value.value)
    if isinstance(value, dt.datetime):
        return iso_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {clean_unicode(str(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    return clean_unicode(str(value))


def _run_dict(run: RunInfo) -> dict[str, object]:
    s = clean_unicode
    return {
        "site": s(run.site),
        "started_at": iso_datetime(run.started_at),
        "finished_at": iso_datetime(run.finished_at),
        "as_of": run.as_of.isoformat(),
        "start_urls": [s(u) for u in run.start_urls],
        "scopes": [s(u) for u in run.scopes],
        "complete": bool(run.complete),
        "incomplete_reasons": [s(r) for r in run.incomplete_reasons],
        "pages_crawled": int(run.pages_crawled),
        "links_checked": int(run.links_checked),
        "stats": _jsonable(dict(run.stats)),
    }


def page_to_dict(page: Page, as_of: dt.date, stale: bool) -> dict[str, object]:
    s = clean_unicode
    return {
        "url": s(page.url),
        "status": page.status,
        "title": s(page.title),
        "final_url": s(page.final_url),
        "review_date": page.review_date.isoformat() if page.review_date else None,
        "review_date_source": None
        if page.review_date_source is None
        else s(page.review_date_source),
        "age_days": age_days(page, as_of),
        "stale": stale,
        "depth": int(page.depth),
    }


def link_to_dict(link: LinkResult) -> dict[str, object]:
    s = clean_unicode
    return {
        "url": s(link.url),
        "verdict": link.verdict.value,
        "detail": s(link.detail),
        "status": link.status,
        "final_url": s(link.final_url),
        "redirect_chain": [{"url": s(h.url), "status": int(h.status)} for h in link.redirect_chain],
        "content_type": s(link.content_type),
        "internal": bool(link.internal),
        "watched": bool(link.watched),
        "pdf_link": bool(link.pdf_link),
        "found_on": [{"page": s(r.page), "text": s(r.text)} for r in link.found_on],
    }


def finding_to_dict(f: Finding) -> dict[str, object]:
    s = clean_unicode
    return {
        "check": f.check.value,
        "severity": f.severity.value,
        "page": s(f.page),
        "target": s(f.target),
        "detail": s(f.detail),
        "message": s(f.message),
        "link_text": s(f.link_text),
        "watched": bool(f.watched),
    }


def summary_dict(report: Report) -> dict[str, object]:
    out: dict[str, object] = dict(report.counts())
    by_check = {c.value: 0 for c in Check}
    for f in report.findings:
        by_check[f.check.value] += 1
    out["by_check"] = by_check
    return out


def report_to_dict(report: Report) -> dict[str, object]:
    """The JSON contract ``sitewatch/report@1`` as plain Python data.

    Pages and links keep the order the crawler gave them; findings are ordered by
    :func:`finding_sort_key`.
    """
    stale = stale_pages(report)
    return {
        "schema": SCHEMA_ID,
        "run": _run_dict(report.run),
        "pages": [page_to_dict(p, report.run.as_of, p.url in stale) for p in report.pages],
        "links": [link_to_dict(link) for link in report.links],
        "findings": [finding_to_dict(f) for f in ordered_findings(report.findings)],
        "summary": summary_dict(report),
    }


_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


#: A link's ``found_on`` is written this many items at a time (a navigation link is on
#: every page: ~100,000 items in one string otherwise).
FOUND_ON_CHUNK = 1000


#: A ``str`` as :data:`_ENCODE` writes it (``ensure_ascii=False``; C when available).
_STR: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]
_BOOL = ("false", "true")
#: Distinct pages whose start of a ``found_on`` item :class:`_LinkEncoder` keeps at once.
_HEADS_KEPT = 65_536


class _LinkEncoder:
    """``_ENCODE(link_to_dict(link))``, written out directly: the same text (tested), in
    pieces for a long ``found_on``, in ~60 % of the time (s2000's 4,631 links: 55 -> 34 ms,
    best of 7 in one process). No dicts are built, and the
    start of a ``found_on`` item (``{"page": "…", "text": ``) is made once per page, since
    every page refers to many targets (s2000: 40,000 items from 2,362 pages)."""

    def __init__(self) -> None:
        self._heads: dict[str, str] = {}

    def _item(self, ref: LinkRef) -> str:
        head = self._heads.get(ref.page)
        if head is None:
            if len(self._heads) >= _HEADS_KEPT:
                self._heads.clear()
            head = '{"page": ' + _STR(clean_unicode(ref.page)) + ', "text": '
            self._heads[ref.page] = head
        return head + _STR(clean_unicode(ref.text)) + "}"

    def __call__(self, link: LinkResult) -> Iterator[str]:
        s = clean_unicode
        chain = ", ".join(
            '{"url": ' + _STR(s(h.url)) + ', "status": ' + str(int(h.status)) + "}"
            for h in link.redirect_chain
        )
        yield (
            '{"url": '
            + _STR(s(link.url))
            + ', "verdict": '
            + _STR(link.verdict.value)
            + ', "detail": '
            + _STR(s(link.detail))
            + ', "status": '
            + ("null" if link.status is None else str(int(link.status)))
            + ', "final_url": '
            + _STR(s(link.final_url))
            + ', "redirect_chain": ['
            + chain
            + '], "content_type": '
            + _STR(s(link.content_type))
            + ', "internal": '
            + _BOOL[bool(link.internal)]
            + ', "watched": '
            + _BOOL[bool(link.watched)]
            + ', "pdf_link": '
            + _BOOL[bool(link.pdf_link)]
            + ', "found_on": ['
        )
        # Iterated, never indexed: a crawl's long found_on is read from disk as it goes.
        item = self._item
        pieces: list[str] = []
        sep = ""
        for ref in link.found_on:
            pieces.append(item(ref))
            if len(pieces) == FOUND_ON_CHUNK:
                yield sep + ", ".join(pieces)
                sep, pieces = ", ", []
        if pieces:
            yield sep + ", ".join(pieces)
        yield "]}"


def _one(item: object) -> Iterator[str]:
    yield _ENCODE(item)


def _json_array(
    key: str,
    items: Iterable[Any],
    last: bool = False,
    encode: Callable[[Any], Iterator[str]] = _one,
) -> Iterator[str]:
    """``"key": [`` then one item per line, each encoded on its own (``encode``: with the C
    encoder unless given)."""
    yield f"  {_ENCODE(key)}: ["
    sep = "\n    "
    empty = True
    for item in items:
        yield sep
        yield from encode(item)
        sep = ",\n    "
        empty = False
    yield "]" if empty else "\n  ]"
    yield "\n" if last else ",\n"


def iter_json(report: Report) -> Iterator[str]:
    """``report.json`` in chunks: the contract's object, one page/link/finding per line.

    Each item is encoded on its own (``json.dumps`` with ``indent`` uses the pure-Python
    encoder, which holds millions of string pieces for a big site), so a writer can send
    the chunks to a file as they come and memory does not grow with the report.
    """
    stale = stale_pages(report)
    as_of = report.run.as_of
    yield "{\n"
    yield f'  "schema": {_ENCODE(SCHEMA_ID)},\n'
    yield '  "run": '
    yield json.dumps(_run_dict(report.run), ensure_ascii=False, allow_nan=False, indent=2).replace(
        "\n", "\n  "
    )
    yield ",\n"
    yield from _json_array("pages", (page_to_dict(p, as_of, p.url in stale) for p in report.pages))
    yield from _json_array("links", report.links, encode=_LinkEncoder())
    yield from _json_array(
        "findings", (finding_to_dict(f) for f in ordered_findings(report.findings))
    )
    yield '  "summary": '
    yield _ENCODE(summary_dict(report))
    yield "\n}\n"


def render_json(report: Report) -> str:
    """``report.json``: UTF-8 (not ASCII-escaped), keys in contract order.

    The top level is indented; each page, link and finding is one line (see
    :func:`iter_json`).
    """
    return "".join(iter_json(report))


__all__ = [
    "SCHEMA_ID",
    "clean_unicode",
    "finding_sort_key",
    "iter_json",
    "ordered_findings",
    "render_json",
    "report_to_dict",
]
