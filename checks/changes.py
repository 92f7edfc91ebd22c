"""What changed since the last run: new, still open and fixed findings; flaky links.

Pure: current findings plus the previous *state* of each finding key in, plain values out.
The state is kept by ``crawler.history``; it is cumulative: every run adds and refreshes the
findings it saw, and only a *complete* run closes (marks fixed) the ones it did not see.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from checks.models import Check, Detail, Finding, LinkResult, Severity

#: A finding's stable identity: (check, page, target); see ``Finding.key``.
Key = tuple[str, str, str]

#: Broken-link details that may be transient (besides ``http_429`` and ``http_5xx``).
TRANSIENT_DETAILS = frozenset({Detail.TIMEOUT, Detail.REFUSED, Detail.CONNECTION})
_HTTP_TRANSIENT = re.compile(r"http_(429|5\d\d)")
#: Checks whose findings are about a link target that may fail transiently.
LINK_CHECKS = frozenset({Check.BROKEN_LINK, Check.MISSING_PDF})


@dataclass(frozen=True, slots=True)
class FindingState:
    """What the history knows about one open finding key before this run."""

    first_seen: dt.datetime
    last_seen: dt.datetime
    #: Runs in a row the finding was seen in (reset when a complete run closes it).
    consecutive_runs: int
    severity: Severity
    #: The finding as last stored (used to describe fixed findings); None if unknown.
    finding: Finding | None = None


@dataclass(frozen=True, slots=True)
class ChangeItem:
    """One finding in a report section, with its history."""

    finding: Finding
    #: When the finding was first seen (for a new finding: this run).
    since: dt.datetime
    #: Last run it was seen in (for new and open ones: this run).
    last_seen: dt.datetime
    #: Whole days between ``since`` and this run (for fixed ones: and ``last_seen``).
    days: int
    #: Runs in a row it has been seen, this run included (fixed/unchecked: as last stored).
    consecutive_runs: int = 1

    @property
    def key(self) -> Key:
        return self.finding.key


@dataclass(frozen=True)
class Changes:
    """A run compared with the history of its site."""

    new: tuple[ChangeItem, ...] = ()
    still_open: tuple[ChangeItem, ...] = ()
    #: Open before, not seen now. Always empty when the run is incomplete.
    fixed: tuple[ChangeItem, ...] = ()
    #: Open before, not seen by an *incomplete* run: neither fixed nor confirmed.
    unchecked: tuple[ChangeItem, ...] = ()
    complete: bool = True
    incomplete_reasons: tuple[str, ...] = ()

    @property
    def has_problems(self) -> bool:
        """Whether anything is new or still open (what decides if an email is due)."""
        return bool(self.new or self.still_open)

    def counts(self) -> dict[str, int]:
        return {
            "new": len(self.new),
            "still_open": len(self.still_open),
            "fixed": len(self.fixed),
            "unchecked": len(self.unchecked),
        }

    def filter(self, keep: Callable[[Finding], bool]) -> Changes:
        """The same comparison restricted to the findings ``keep`` accepts."""

        def sel(items: tuple[ChangeItem, ...]) -> tuple[ChangeItem, ...]:
            return tuple(i for i in items if keep(i.finding))

        return replace(
            self,
            new=sel(self.new),
            still_open=sel(self.still_open),
            fixed=sel(self.fixed),
            unchecked=sel(self.unchecked),
        )

    def __add__(self, other: Changes) -> Changes:
        return Changes(
            new=self.new + other.new,
            still_open=self.still_open + other.still_open,
            fixed=self.fixed + other.fixed,
            unchecked=self.unchecked + other.unchecked,
            complete=self.complete and other.complete,
            incomplete_reasons=tuple(
                dict.fromkeys(self.incomplete_reasons + other.incomplete_reasons)
            ),
        )


#: How far a run's as-of day may lie from the day it started and still be taken as the
#: same day (time zones: a run at 00:30 in Stockholm starts on the previous UTC day).
AS_OF_SLACK = dt.timedelta(days=1)


def observed_at(started: dt.datetime, as_of: dt.date | None) -> dt.datetime:
    """The time a run's findings are dated by (first seen, last seen, fixed): when it
    started; or, for a run audited as of another day (``--as-of`` more than a day from its
    start: a demo's second week, a back-dated audit), that day at the same time, so that
    "since" and "for N days" agree with the dates the run reports."""
    if as_of is None:
        return started
    day = started.date()
    if abs(as_of - day) <= AS_OF_SLACK:
        return started
    return started + (as_of - day)


def _days(start: dt.datetime, end: dt.datetime) -> int:
    return max(0, (end - start).days)


def dedupe(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """One finding per key: the most severe, the first among equals; order kept."""
    best: dict[Key, Finding] = {}
    for f in findings:
        old = best.get(f.key)
        if old is None or f.severity.rank > old.severity.rank:
            best[f.key] = f
    return tuple(best.values())


def _finding_from_state(key: Key, state: FindingState) -> Finding:
    if state.finding is not None:
        return state.finding
    return Finding(check=Check(key[0]), severity=state.severity, page=key[1], target=key[2])


def compute_changes(
    current: Iterable[Finding],
    previous: Mapping[Key, FindingState],
    *,
    now: dt.datetime,
    complete: bool = True,
    incomplete_reasons: Iterable[str] = (),
) -> Changes:
    """Compare this run's findings with the open findings of the history.

    ``previous`` holds the *open* finding keys before this run. ``now`` is the run's time.
    An incomplete run never fixes anything: keys it did not see go to ``unchecked``.
    """
    new: list[ChangeItem] = []
    still_open: list[ChangeItem] = []
    seen: set[Key] = set()
    for f in dedupe(current):
        seen.add(f.key)
        prev = previous.get(f.key)
        if prev is None:
            new.append(ChangeItem(f, since=now, last_seen=now, days=0, consecutive_runs=1))
        else:
            still_open.append(
                ChangeItem(
                    f,
                    since=prev.first_seen,
                    last_seen=now,
                    days=_days(prev.first_seen, now),
                    consecutive_runs=prev.consecutive_runs + 1,
                )
            )
    gone = [
        ChangeItem(
            _finding_from_state(key, st),
            since=st.first_seen,
            last_seen=st.last_seen,
            days=_days(st.first_seen, st.last_seen if complete else now),
            consecutive_runs=st.consecutive_runs,
        )
        for key, st in previous.items()
        if key not in seen
    ]
    return Changes(
        new=tuple(new),
        still_open=tuple(still_open),
        fixed=tuple(gone) if complete else (),
        unchecked=() if complete else tuple(gone),
        complete=complete,
        incomplete_reasons=tuple(incomplete_reasons),
    )


# --- flaky links -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlakyPolicy:
    """When a transient link failure counts as real (config ``history.flaky_*``)."""

    #: Consecutive runs, this one included, after which a transient failure is an error.
    runs: int = 2
    #: ... or hours since it was first seen.
    hours: float = 24.0


def is_transient(detail: str) -> bool:
    """Whether a broken-link detail may be a passing problem (timeout, 5xx, 429, refused)."""
    return detail in TRANSIENT_DETAILS or bool(_HTTP_TRANSIENT.fullmatch(detail))


def apply_flakiness(
    findings: Iterable[Finding],
    links: Iterable[LinkResult],
    state: Mapping[Key, FindingState],
    policy: FlakyPolicy,
    now: dt.datetime,
) -> tuple[Finding, ...]:
    """Downgrade transient link failures to ``warning`` until they persist.

    A failure persists when it has been seen in ``policy.runs`` consecutive runs (this one
    included) or was first seen at least ``policy.hours`` ago. 404/410 and every other
    detail are untouched, and so are watched links (config says they are always errors).
    ``links`` supplies the detail when a finding carries none. ``state`` is the open state
    *before* this run (``Store.previous_state``).
    """
    detail_by_url = {lr.url: lr.detail for lr in links}
    span = dt.timedelta(hours=policy.hours)
    out: list[Finding] = []
    for f in findings:
        if (
            f.check in LINK_CHECKS
            and not f.watched
            and f.severity.rank > Severity.WARNING.rank
            and is_transient(f.detail or detail_by_url.get(f.target, ""))
        ):
            prev = state.get(f.key)
            runs = prev.consecutive_runs + 1 if prev else 1
            persistent = runs >= policy.runs or (prev is not None and now - prev.first_seen >= span)
            if not persistent:
                f = replace(f, severity=Severity.WARNING)
        out.append(f)
    return tuple(out)
