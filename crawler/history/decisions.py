"""Editors' decisions in the history (revision 0003): acknowledge, dismiss, snooze, undo.

Decisions are rows of ``decisions`` (never deleted; undoing sets ``revoked_at``); every
action is also appended to ``decision_log`` (the audit trail: who did what, when, why).
Whether a decision still hides a finding is decided by the pure rules of
``checks.suppress``; this module only stores and reads. Also here: the reads the workspace
needs (open findings per site, the per-run trend).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from checks.models import Finding, Severity
from checks.suppress import Kind, Suppression
from crawler.history.connection import _Base
from crawler.history.rows import FINISHED, _dt, _finding_from_row, _now, _ts
from crawler.history.schema import decision_log, decisions, finding_state, runs


@dataclass(frozen=True, slots=True)
class OpenFinding:
    """A finding open in the site's state, with its history."""

    finding: Finding
    first_seen: dt.datetime
    last_seen: dt.datetime
    last_run_id: int


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One finished run's counts (the trend chart)."""

    run_id: int
    started_at: dt.datetime
    #: The run's "today" (``--as-of``), the date the chart shows.
    as_of: dt.date
    errors: int
    warnings: int
    open: int


@dataclass(frozen=True, slots=True)
class LogEntry:
    at: dt.datetime
    actor: str
    action: str
    check: str
    page: str
    target: str
    reason: str
    until: dt.datetime | None


def _suppression(r: Mapping[str, Any]) -> Suppression:
    return Suppression(
        kind=Kind(r["kind"]),
        check=r["check_name"],
        page=r["page"],
        target=r["target"],
        detail=r["detail"],
        severity=Severity(r["severity"]),
        by=r["created_by"],
        at=_dt(r["created_at"]),
        reason=r["reason"],
        until=_dt(r["until"]) if r["until"] else None,
        id=int(r["id"]),
    )


class DecisionsMixin(_Base):
    def record_decision(
        self,
        site: str,
        finding: Finding,
        kind: Kind,
        *,
        by: str,
        reason: str = "",
        until: dt.datetime | None = None,
        now: dt.datetime | None = None,
    ) -> int:
        """Store a decision about ``finding`` (its key and detail); returns its id."""
        return self.record_decisions(
            site, [finding], kind, by=by, reason=reason, until=until, now=now
        )[0]

    def record_decisions(
        self,
        site: str,
        findings: Sequence[Finding],
        kind: Kind,
        *,
        by: str,
        reason: str = "",
        until: dt.datetime | None = None,
        now: dt.datetime | None = None,
    ) -> list[int]:
        """One decision for each finding (one problem's places), in one transaction."""
        at = _ts(now or _now())
        end = _ts(until) if until else None
        ids: list[int] = []
        with self._tx() as db:
            for finding in findings:
                check, page, target = finding.key
                where = {"site": site, "check_name": check, "page": page, "target": target}
                result = db.execute(
                    decisions.insert().values(
                        **where,
                        detail=finding.detail,
                        severity=finding.severity.value,
                        kind=kind.value,
                        reason=reason,
                        until=end,
                        created_by=by,
                        created_at=at,
                    )
                )
                pk = result.inserted_primary_key
                assert pk is not None
                ids.append(int(pk[0]))
                db.execute(
                    decision_log.insert().values(
                        **where,
                        at=at,
                        actor=by,
                        action=kind.value,
                        decision_id=ids[-1],
                        reason=reason,
                        until=end,
                    )
                )
        return ids

    def decision(self, decision_id: int) -> tuple[str, Suppression, bool] | None:
        """(site, decision, revoked) for an id, or None."""
        r = self._one(select(decisions).where(decisions.c.id == decision_id))
        if r is None:
            return None
        return r["site"], _suppression(r), r["revoked_at"] is not None

    def revoke_decision(self, decision_id: int, *, by: str, now: dt.datetime | None = None) -> bool:
        """Undo a decision (the finding shows again); False if unknown or already undone."""
        at = _ts(now or _now())
        d = decisions.c
        with self._tx() as db:
            r = db.execute(select(decisions).where(d.id == decision_id)).mappings().first()
            if r is None or r["revoked_at"] is not None:
                return False
            db.execute(
                update(decisions).where(d.id == decision_id).values(revoked_at=at, revoked_by=by)
            )
            db.execute(
                decision_log.insert().values(
                    at=at,
                    actor=by,
                    action="undo",
                    decision_id=decision_id,
                    site=r["site"],
                    check_name=r["check_name"],
                    page=r["page"],
                    target=r["target"],
                )
            )
        return True

    def decisions_for(self, site: str) -> list[Suppression]:
        """The site's decisions not undone, oldest first (``checks.suppress.newest_by_key``
        picks the one that counts; whether it is in force depends on the finding)."""
        d = decisions.c
        rows = self._rows(
            select(decisions).where(d.site == site, d.revoked_at.is_(None)).order_by(d.id)
        )
        return [_suppression(r) for r in rows]

    def decision_log(self, site: str, limit: int = 200) -> list[LogEntry]:
        c = decision_log.c
        rows = self._rows(
            select(decision_log).where(c.site == site).order_by(c.id.desc()).limit(limit)
        )
        return [
            LogEntry(
                at=_dt(r["at"]),
                actor=r["actor"],
                action=r["action"],
                check=r["check_name"],
                page=r["page"],
                target=r["target"],
                reason=r["reason"],
                until=_dt(r["until"]) if r["until"] else None,
            )
            for r in rows
        ]

    def open_findings(self, site: str) -> list[OpenFinding]:
        """The site's open findings (``finding_state``), page by page."""
        fs = finding_state.c
        rows = self._rows(
            select(finding_state)
            .where(fs.site == site, fs.open == 1)
            .order_by(fs.page, fs.check_name, fs.target)
        )
        return [
            OpenFinding(
                finding=_finding_from_row(r),
                first_seen=_dt(r["first_seen"]),
                last_seen=_dt(r["last_seen"]),
                last_run_id=int(r["last_run_id"]),
            )
            for r in rows
        ]

    def sites(self) -> list[str]:
        """Every site with a run, by name."""
        rows = self._rows(select(runs.c.site).distinct().order_by(runs.c.site))
        return [str(r["site"]) for r in rows]

    def trend(self, site: str, limit: int = 26) -> list[TrendPoint]:
        """The site's last ``limit`` finished runs, oldest first, with their counts."""
        r = runs.c
        rows = self._rows(
            select(runs)
            .where(r.site == site, r.status.in_(FINISHED))
            .order_by(r.id.desc())
            .limit(limit)
        )
        return [
            TrendPoint(
                run_id=int(x["id"]),
                started_at=_dt(x["started_at"]),
                as_of=dt.date.fromisoformat(x["as_of"])
                if x["as_of"]
                else _dt(x["started_at"]).date(),
                errors=int(x["errors"]),
                warnings=int(x["warnings"]),
                open=int(x["new_count"]) + int(x["open_count"]),
            )
            for x in reversed(rows)
        ]
