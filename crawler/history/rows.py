"""The history's rows as the rest of sitewatch sees them: plain dataclasses and the
converters from database rows (any mapping of column name to value) to ``checks`` models.
Timestamps are stored as aware UTC ISO strings, lists as JSON text."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from checks.models import (
    Check,
    Finding,
    LinkRef,
    LinkResult,
    Page,
    RedirectHop,
    Severity,
    Verdict,
)
from crawler.history.owners import _row_owner
from crawler.state.lazy_tuple import LazyTuple

UTC = dt.UTC
FINISHED = ("complete", "incomplete")
_MAX_ERROR = 1000

Row = Mapping[Any, Any]


class StoreError(RuntimeError):
    """The history cannot do what was asked (unknown run, wrong state, newer schema)."""


def _found_on_json(refs: Sequence[LinkRef], chunk: int = 1000) -> str:
    """``json.dumps([[page, text, tag], ...])`` of a link's references, encoded ``chunk``
    at a time: a navigation link's references are not all held as lists at once."""
    if len(refs) <= chunk:
        return json.dumps([[r.page, r.text, r.tag] for r in refs])
    parts: list[str] = []
    rows: list[list[str]] = []
    for r in refs:
        rows.append([r.page, r.text, r.tag])
        if len(rows) == chunk:
            parts.append(json.dumps(rows)[1:-1])
            rows = []
    if rows:
        parts.append(json.dumps(rows)[1:-1])
    return "[" + ", ".join(parts) + "]"


def _ts(value: dt.datetime) -> str:
    """Aware UTC ISO string; naive datetimes are taken to be UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _dt(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as ``sitewatch history`` lists it."""

    id: int
    site: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    pages_crawled: int
    links_checked: int
    incomplete_reasons: tuple[str, ...]
    #: Findings per severity (error, warning, info).
    counts: Mapping[str, int]
    #: new / still_open / fixed / unchecked against the history.
    changes: Mapping[str, int]
    #: Deliveries of this run per state (pending, sending, sent, failed).
    deliveries: Mapping[str, int]

    @property
    def complete(self) -> bool:
        return self.status == "complete"


@dataclass(frozen=True, slots=True)
class Delivery:
    run_id: int
    recipient: str
    state: str
    attempts: int
    message_id: str
    last_error: str
    created_at: dt.datetime
    updated_at: dt.datetime
    sent_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    run_id: int
    recipient: str
    at: dt.datetime
    state: str
    detail: str


def _wrongly_crashed(run: Row) -> bool:
    """A run marked crashed by a process other than its owner (a guess that was wrong, since
    the run is being finished): it may still be finished. Its owner's own word is final."""
    owner = _row_owner(run)
    return (
        run["status"] == "crashed"
        and owner is not None
        and run["crashed_by"] != ""
        and run["crashed_by"] != owner.key
    )


def _finding_cols(f: Finding) -> tuple[object, ...]:
    return (f.severity.value, f.detail, f.message, f.link_text, int(f.watched), f.new_url)


def _finding_from_row(r: Row) -> Finding:
    return Finding(
        check=Check(r["check_name"]),
        severity=Severity(r["severity"]),
        page=r["page"],
        target=r["target"],
        detail=r["detail"],
        message=r["message"],
        link_text=r["link_text"],
        watched=bool(r["watched"]),
        new_url=r["new_url"],
    )


def _rows_of(run: Row) -> int:
    """The run whose pages and links rows are those of ``run`` (a ``runs`` row)."""
    return int(run["id"] if run["rows_run"] is None else run["rows_run"])


def _page_from_row(r: Row) -> Page:
    return Page(
        url=r["url"],
        status=r["status"],
        title=r["title"],
        final_url=r["final_url"],
        content_type=r["content_type"],
        depth=r["depth"],
        review_date=dt.date.fromisoformat(r["review_date"]) if r["review_date"] else None,
        review_date_source=r["review_date_source"],
        is_html=bool(r["is_html"]),
        error=r["error"],
    )


class StoredRefs(LazyTuple[LinkRef]):
    """``found_on`` of a link read back from the history (``Store.snapshot``): its stored
    JSON, decoded when first used, then kept. A replayed run's report needs most links'
    references only for report.json, which renders after the run is read back (beside
    the child's HTML); the findings need them only for the links with a problem.
    Compares equal to (and hashes like) the tuple of the same ``LinkRef`` items; pickles
    as that tuple."""

    __slots__ = ("_json", "_refs")

    def __init__(self, stored: str) -> None:
        self._json: str | None = stored
        self._refs: tuple[LinkRef, ...] | None = None

    def _decoded(self) -> tuple[LinkRef, ...]:
        if self._refs is None:
            assert self._json is not None
            self._refs = tuple(LinkRef(p, t, g) for p, t, g in json.loads(self._json))
            self._json = None
        return self._refs

    def __iter__(self) -> Iterator[LinkRef]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())

    def __repr__(self) -> str:
        return repr(self._decoded())


def _link_from_row(r: Row) -> LinkResult:
    return LinkResult(
        url=r["url"],
        verdict=Verdict(r["verdict"]),
        detail=r["detail"],
        status=r["status"],
        final_url=r["final_url"],
        redirect_chain=tuple(RedirectHop(u, int(s)) for u, s in json.loads(r["redirect_chain"])),
        content_type=r["content_type"],
        found_on=StoredRefs(r["found_on"]),
        pdf_link=bool(r["pdf_link"]),
        pdf_magic=None if r["pdf_magic"] is None else bool(r["pdf_magic"]),
        watched=bool(r["watched"]),
        internal=bool(r["internal"]),
        pdf_problem=r["pdf_problem"],
    )


def _delivery_from_row(r: Row) -> Delivery:
    return Delivery(
        run_id=r["run_id"],
        recipient=r["recipient"],
        state=r["state"],
        attempts=r["attempts"],
        message_id=r["message_id"],
        last_error=r["last_error"],
        created_at=_dt(r["created_at"]),
        updated_at=_dt(r["updated_at"]),
        sent_at=_dt(r["sent_at"]) if r["sent_at"] else None,
    )
