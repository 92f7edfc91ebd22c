"""Editors' decisions about findings: acknowledged, not a problem, snoozed (pure rules).

A :class:`Suppression` is what an editor decided in the workspace (``sitewatch web``) about
one finding: its key (check, page, target) plus the *detail* the finding had then (e.g.
``http_403``). It hides the finding from the weekly email's action list and from
``--fail-on`` while it is in force:

- ``acknowledge``: until ``until`` (now + ``web.acknowledge_weeks``);
- ``snooze``: until ``until`` (a date the editor chose);
- ``dismiss`` ("not a problem", with a reason): with no end.

A suppression *lapses* when the finding changes: a different detail (a dismissed
``http_403`` that turns ``http_404``) or a higher severity is a new problem, and the
finding comes back. Undoing (``revoked``) ends it at once. Everything here takes plain data
(no database, no clock: ``now`` is passed in).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from checks.models import Finding, Severity

#: A finding's identity, as ``Finding.key``: (check, page, target).
Key = tuple[str, str, str]


class Kind(StrEnum):
    """What the editor said about the finding."""

    ACKNOWLEDGE = "acknowledge"
    DISMISS = "dismiss"
    SNOOZE = "snooze"


#: Longest reason kept (characters); the workspace form says so too.
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class Suppression:
    """One decision about one finding (who, when, why, until when)."""

    kind: Kind
    check: str
    page: str
    target: str
    #: The finding's detail when the decision was made (``http_403``, ``3165_days``...).
    detail: str
    severity: Severity
    by: str
    at: dt.datetime
    reason: str = ""
    #: End of an acknowledgement or snooze (aware UTC); None for a dismissal.
    until: dt.datetime | None = None
    id: int = 0

    @property
    def key(self) -> Key:
        return (self.check, self.page, self.target)


def validate(kind: Kind, reason: str, until: dt.datetime | None, now: dt.datetime) -> str:
    """Why a new decision is not acceptable ("" when it is): the rules of the form."""
    if kind is Kind.DISMISS and not reason.strip():
        return "reason_required"
    if len(reason) > MAX_REASON:
        return "reason_too_long"
    if kind in (Kind.SNOOZE, Kind.ACKNOWLEDGE):
        if until is None:
            return "until_required"
        if until <= now:
            return "until_past"
        if until > now + dt.timedelta(days=366):
            return "until_too_far"
    return ""


def _same_problem(s: Suppression, f: Finding) -> bool:
    """The finding is the one decided about: same detail, no worse severity. (Stale pages
    grow older every week: their ``N_days`` detail is compared by kind, not by value.)"""
    if f.severity.rank > s.severity.rank:
        return False
    if s.detail.endswith("_days") and f.detail.endswith("_days"):
        return True
    return f.detail == s.detail


def in_force(s: Suppression, f: Finding, now: dt.datetime) -> bool:
    """Whether the decision ``s`` still hides the finding ``f`` at ``now``."""
    if s.key != f.key or not _same_problem(s, f):
        return False
    return s.until is None or now < s.until


def suppression_for(
    f: Finding, active: Mapping[Key, Suppression], now: dt.datetime
) -> Suppression | None:
    """The decision that hides ``f`` now, if any (``active``: the newest one per key)."""
    s = active.get(f.key)
    return s if s is not None and in_force(s, f, now) else None


def newest_by_key(items: Iterable[Suppression]) -> dict[Key, Suppression]:
    """The newest decision per finding key (the one that counts)."""
    out: dict[Key, Suppression] = {}
    for s in items:
        old = out.get(s.key)
        if old is None or (s.at, s.id) > (old.at, old.id):
            out[s.key] = s
    return out


def split(
    findings: Iterable[Finding], active: Mapping[Key, Suppression], now: dt.datetime
) -> tuple[list[Finding], list[tuple[Finding, Suppression]]]:
    """(findings still to act on, findings hidden by a decision in force)."""
    shown: list[Finding] = []
    hidden: list[tuple[Finding, Suppression]] = []
    for f in findings:
        s = suppression_for(f, active, now)
        if s is None:
            shown.append(f)
        else:
            hidden.append((f, s))
    return shown, hidden
