"""The JSON contract (``sitewatch/report@2``) and the finding order every format shares.

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

from checks.groups import LINK_CHECKS, Group, group_findings, group_key
from checks.models import Check, Finding, LinkRef, LinkResult, Page, Report, RunInfo
from reports.messages import finding_message

SCHEMA_ID = "sitewatch/report@2"

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


class PageTable:
    """``found_on_pages``: every page a link is found on, once, numbered as first seen.

    ``links[].found_on`` items are ``[index, text]``: the page's URL is written once here
    instead of once per link on it (a navigation link is on every page)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, page: str) -> int:
        i = self.index.get(page)
        if i is None:
            i = self.index[page] = len(self.index)
        return i

    def urls(self) -> list[str]:
        return [clean_unicode(u) for u in self.index]


def link_to_dict(link: LinkResult, table: PageTable | None = None) -> dict[str, object]:
    s = clean_unicode
    table = PageTable() if table is None else table
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
        "found_on": [[table(r.page), s(r.text)] for r in link.found_on],
    }


def finding_to_dict(f: Finding, group: int | None = None) -> dict[str, object]:
    s = clean_unicode
    return {
        "check": f.check.value,
        "severity": f.severity.value,
        "page": s(f.page),
        "target": s(f.target),
        "detail": s(f.detail),
        "message": s(finding_message(f)),
        "link_text": s(f.link_text),
        "watched": bool(f.watched),
        "group": group,
    }


def group_to_dict(g: Group) -> dict[str, object]:
    s = clean_unicode
    return {
        "check": g.check.value,
        "severity": g.severity.value,
        "target": s(g.key),
        "detail": s(g.detail),
        "watched": g.watched,
        "links": g.links,
        "pages": g.pages,
        "targets": g.targets,
    }


def link_groups(findings: list[Finding]) -> list[Group]:
    """The ``groups`` view: link findings by check and target without #fragment."""
    return group_findings(f for f in findings if f.check in LINK_CHECKS)


def grouped_findings(findings: list[Finding]) -> tuple[list[Group], Iterator[dict[str, object]]]:
    """The ``groups`` view and the findings as dicts, each with its group's index (None
    for page checks)."""
    groups = link_groups(findings)
    index = {group_key(g.first): i for i, g in enumerate(groups)}
    dicts = (
        finding_to_dict(f, index.get(group_key(f)) if f.check in LINK_CHECKS else None)
        for f in findings
    )
    return groups, dicts


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
    table = PageTable()
    groups, findings = grouped_findings(ordered_findings(report.findings))
    return {
        "schema": SCHEMA_ID,
        "run": _run_dict(report.run),
        "pages": [page_to_dict(p, report.run.as_of, p.url in stale) for p in report.pages],
        "links": [link_to_dict(link, table) for link in report.links],
        "found_on_pages": table.urls(),
        "findings": list(findings),
        "groups": [group_to_dict(g) for g in groups],
        "summary": summary_dict(report),
    }


_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


#: A link's ``found_on`` is written this many items at a time (a navigation link is on
#: every page: ~100,000 items in one string otherwise).
FOUND_ON_CHUNK = 1000


#: A ``str`` as :data:`_ENCODE` writes it (``ensure_ascii=False``; C when available).
_STR: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]
_BOOL = ("false", "true")


class _LinkEncoder:
    """``_ENCODE(link_to_dict(link, table))``, written out directly: the same text
    (tested), in pieces for a long ``found_on``, without building dicts. Pages are
    numbered in ``table`` (written as ``found_on_pages`` after the links)."""

    def __init__(self, table: PageTable | None = None) -> None:
        self.table = PageTable() if table is None else table
        #: ``"[<index>, "`` per page, made once per page.
        self._heads: dict[str, str] = {}

    def _item(self, ref: LinkRef) -> str:
        head = self._heads.get(ref.page)
        if head is None:
            head = self._heads[ref.page] = f"[{self.table(ref.page)}, "
        return head + _STR(clean_unicode(ref.text)) + "]"

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
    encoder = _LinkEncoder()
    yield from _json_array("links", report.links, encode=encoder)
    yield from _json_array("found_on_pages", encoder.table.urls())
    encoder._heads.clear()
    groups, findings = grouped_findings(ordered_findings(report.findings))
    yield from _json_array("findings", findings)
    yield from _json_array("groups", (group_to_dict(g) for g in groups))
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
