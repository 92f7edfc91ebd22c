"""The weekly email's workspace parts (``sitewatch web``): decisions applied, problems
grouped by page, one-click links into the workspace, the trend line.

- :func:`apply_decisions`: findings an editor acknowledged, dismissed or snoozed (in force,
  ``checks.suppress``) are taken out of the new/still-open lists and counted.
- :func:`order_by_page`: the email's problems (``checks.groups``: one per missing resource)
  page by page, pages in order of their worst problem; the first problem of each page
  carries the heading "Internationellt arbete – 4 problem".
- :class:`OwnerExtras`: per owner, the count left out, the trend and the workspace URL
  (a signed link made by the caller: ``reports`` never sees the key).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from checks.changes import Changes
from checks.groups import group_key
from checks.owners import Owner
from checks.suppress import Key, Suppression, newest_by_key, suppression_for
from reports import web_messages as W

T = TypeVar("T")


def finding_id(key: Key) -> str:
    """A short stable id of a finding key (anchors, form fields, email links)."""
    return hashlib.sha256("\0".join(key).encode("utf-8", "surrogatepass")).hexdigest()[:20]


@dataclass(frozen=True)
class OwnerExtras:
    """What one owner's email says beside the problems."""

    #: Problems left out because of a decision in force.
    left_out: int = 0
    #: Open problems now and in the previous run (None: no previous run).
    open_now: int = 0
    open_last: int | None = None
    #: The owner's workspace address with its signed token ("" : no workspace links).
    workspace_url: str = ""


def apply_decisions(
    changes: Changes, decisions: Mapping[Key, Suppression], now: dt.datetime
) -> tuple[Changes, int]:
    """``changes`` without the new/still-open findings a decision hides, and their count."""
    hidden = 0

    def keep(items: Iterable[T]) -> tuple[T, ...]:
        nonlocal hidden
        out = []
        for item in items:
            if suppression_for(item.finding, decisions, now) is None:  # type: ignore[attr-defined]
                out.append(item)
            else:
                hidden += 1
        return tuple(out)

    kept = replace(changes, new=keep(changes.new), still_open=keep(changes.still_open))
    return kept, hidden


def order_by_page(
    groups: Sequence[T], page: Callable[[T], str], rank: Callable[[T], int]
) -> list[T]:
    """Groups page by page: pages by their best (lowest) rank then address, groups in the
    order given within a page."""
    best: dict[str, int] = {}
    for g in groups:
        p = page(g)
        best[p] = min(best.get(p, rank(g)), rank(g))
    indexed = list(enumerate(groups))
    indexed.sort(key=lambda ig: (best[page(ig[1])], page(ig[1]), ig[0]))
    return [g for _, g in indexed]


def page_headings(lang: str, pages: Sequence[str], titles: Sequence[str]) -> list[str]:
    """The heading to show before each item ("" when the page is the previous one's)."""
    counts: dict[str, int] = {}
    for p in pages:
        counts[p] = counts.get(p, 0) + 1
    out: list[str] = []
    previous = None
    for p, title in zip(pages, titles, strict=True):
        out.append("" if p == previous else f"{title} – {W.plural(lang, 'problems', counts[p])}")
        previous = p
    return out


def trend_line(lang: str, extras: Sequence[OwnerExtras]) -> str:
    """One line for the recipient's owners together ("" when nothing is known)."""
    if not extras:
        return ""
    now = sum(e.open_now for e in extras)
    lasts = [e.open_last for e in extras]
    last = None if any(x is None for x in lasts) else sum(x or 0 for x in lasts)
    return W.trend_line(lang, now, last)


def item_link(base: str, key: Key) -> str:
    """The one-click link of one problem: the owner's workspace, that finding only."""
    return f"{base.rstrip('/')}/f/{finding_id(key)}" if base else ""


def problems(changes: Changes) -> int:
    """New and still-open problems, as the email counts them (``checks.groups``: links to
    one missing resource are one problem)."""
    return len({group_key(i.finding) for i in (*changes.new, *changes.still_open)})


def _previous_run(store: Any, site: str, run_id: int) -> int | None:
    for r in store.runs(site, limit=60):
        if r.id < run_id and r.status in ("complete", "incomplete"):
            return int(r.id)
    return None


def prepare(
    store: Any,
    run_id: int,
    changes: Changes,
    routed: Callable[[Changes], Mapping[Owner, Changes]],
    workspace: Callable[[Owner], str] | None,
    now: dt.datetime,
) -> tuple[dict[Owner, Changes], dict[Owner, OwnerExtras]]:
    """The run's changes per owner with editors' decisions applied, and each owner's extras
    (left out, this and last run's open counts, workspace URL)."""
    site = store.run_info(run_id).site
    decisions = newest_by_key(store.decisions_for(site)) if site else {}
    per_owner: dict[Owner, Changes] = {}
    extras: dict[Owner, OwnerExtras] = {}
    previous = _previous_run(store, site, run_id)
    last = routed(store.changes_for(previous)) if previous is not None else None
    for owner, c in routed(changes).items():
        kept, hidden = apply_decisions(c, decisions, now)
        per_owner[owner] = kept
        open_last = None
        if last is not None:
            before = apply_decisions(last.get(owner, Changes()), decisions, now)[0]
            open_last = problems(before)
        extras[owner] = OwnerExtras(
            left_out=hidden,
            open_now=problems(kept),
            open_last=open_last,
            workspace_url=workspace(owner) if workspace else "",
        )
    return per_owner, extras
