"""A finished run as rows to insert, as generators: pages and links as tuples streamed
into the driver, findings and their state as dicts executed in :func:`batches`. A big
run's rows never exist all at once (s20000 under ``bench/phase_rss.py``: peak RSS 192 MB
with lists, 172 MB with pages and links streamed, 139 MB with the batches too)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterator
from typing import Any

from checks.changes import ChangeItem, Changes
from checks.models import Finding, Report
from crawler.history.rows import _found_on_json, _ts

Rows = Iterator[dict[str, Any]]
#: Rows per ``executemany`` of :func:`finding_rows` and :func:`state_rows` (SQLAlchemy
#: keeps its own copy of each batch's parameters).
BATCH = 2_000


def batches(rows: Rows, size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    """``rows`` in lists of at most ``size``."""
    while batch := list(itertools.islice(rows, size)):
        yield batch


def finding_cols(f: Finding) -> dict[str, Any]:
    return {
        "severity": f.severity.value,
        "detail": f.detail,
        "message": f.message,
        "link_text": f.link_text,
        "watched": int(f.watched),
        "new_url": f.new_url,
    }


#: Columns of :func:`page_rows` and :func:`link_rows` tuples, in order.
PAGE_COLUMNS = (
    "run_id", "url", "status", "title", "final_url", "content_type", "depth", "review_date",
    "review_date_source", "is_html", "error", "seq",
)  # fmt: skip
LINK_COLUMNS = (
    "run_id", "url", "verdict", "detail", "status", "final_url", "content_type", "pdf_link",
    "pdf_magic", "watched", "internal", "redirect_chain", "found_on", "pdf_problem", "seq",
)  # fmt: skip


def page_rows(run_id: int, report: Report) -> Iterator[tuple[Any, ...]]:
    """The run's pages as tuples of :data:`PAGE_COLUMNS` (a big run's many rows are
    inserted through the driver's ``executemany``: no per-row work of SQLAlchemy's)."""
    return (
        (
            run_id,
            p.url,
            p.status,
            p.title,
            p.final_url,
            p.content_type,
            p.depth,
            p.review_date.isoformat() if p.review_date else None,
            p.review_date_source,
            int(p.is_html),
            p.error,
            seq,
        )
        for seq, p in enumerate(report.pages)
    )


def link_rows(run_id: int, report: Report) -> Iterator[tuple[Any, ...]]:
    """The run's links as tuples of :data:`LINK_COLUMNS`."""
    return (
        (
            run_id,
            lr.url,
            lr.verdict.value,
            lr.detail,
            lr.status,
            lr.final_url,
            lr.content_type,
            int(lr.pdf_link),
            None if lr.pdf_magic is None else int(lr.pdf_magic),
            int(lr.watched),
            int(lr.internal),
            (
                json.dumps([[h.url, h.status] for h in lr.redirect_chain])
                if lr.redirect_chain
                else "[]"  # json.dumps([]), for the many links never redirected
            ),
            _found_on_json(lr.found_on),
            lr.pdf_problem,
            seq,
        )
        for seq, lr in enumerate(report.links)
    )


def finding_rows(run_id: int, changes: Changes) -> Rows:
    """``run_findings`` rows: every item of the comparison, in report order."""
    sections = (
        ("new", changes.new),
        ("open", changes.still_open),
        ("fixed", changes.fixed),
        ("unchecked", changes.unchecked),
    )
    items = ((change, item) for change, section in sections for item in section)
    return (
        {
            "run_id": run_id,
            "check_name": item.key[0],
            "page": item.key[1],
            "target": item.key[2],
            "change": change,
            **finding_cols(item.finding),
            "first_seen": _ts(item.since),
            "last_seen": _ts(item.last_seen),
            "consecutive_runs": item.consecutive_runs,
            "seq": seq,
        }
        for seq, (change, item) in enumerate(items)
    )


def state_rows(site: str, run_id: int, now: dt.datetime, items: tuple[ChangeItem, ...]) -> Rows:
    """``finding_state`` rows (open, seen by run ``run_id`` at ``now``)."""
    return (
        {
            "site": site,
            "check_name": item.key[0],
            "page": item.key[1],
            "target": item.key[2],
            "first_seen": _ts(item.since),
            "last_seen": _ts(now),
            "consecutive_runs": item.consecutive_runs,
            **finding_cols(item.finding),
            "open": 1,
            "last_run_id": run_id,
            "closed_at": None,
            "closed_run_id": None,
        }
        for item in items
    )
