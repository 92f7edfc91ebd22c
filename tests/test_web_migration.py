"""Revision 0003 (editors' decisions) upgrades databases in place: one made by the current
release (the 0.1.0 fixture, schema_version 6) and one at revision 0002 (the store before
the workspace), on SQLite; the decisions work on the upgraded file and the old history is
intact."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine

from checks.models import Check, Finding, Severity
from checks.suppress import Kind, newest_by_key, suppression_for
from crawler.history.migrate import HEAD, alembic_config
from crawler.history.store import Store
from tests.test_history_backends import T0, old_database, report

GONE = Finding(Check.BROKEN_LINK, Severity.ERROR, "https://x.se/p", "https://x.se/gone", "http_404")


def test_the_current_releases_database_gets_the_decision_tables(tmp_path: Path) -> None:
    db = old_database(tmp_path)
    with Store(db) as s:
        assert HEAD == "0003" and s.schema_revision == HEAD
        assert [f.target for f in s.findings(2)] == ["https://x.se/gone"]
        did = s.record_decision("umea", GONE, Kind.DISMISS, by="Anna", reason="Kept on purpose")
        (d,) = s.decisions_for("umea")
        assert (d.id, d.reason, d.detail) == (did, "Kept on purpose", "http_404")
        assert suppression_for(GONE, newest_by_key([d]), T0) == d
        assert [o.finding.target for o in s.open_findings("umea")] == ["https://x.se/gone"]
        assert s.revoke_decision(did, by="admin") and s.decisions_for("umea") == []
        assert [e.action for e in s.decision_log("umea")] == ["undo", "dismiss"]
    names = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}
    assert {"decisions", "decision_log"} <= names


def test_a_revision_0002_database_upgrades_in_place(tmp_path: Path) -> None:
    db = tmp_path / "r2.db"
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0002")
    engine.dispose()
    con = sqlite3.connect(db)
    assert con.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0002"
    con.execute(
        "INSERT INTO runs (site, status, started_at) VALUES ('umea', 'complete', ?)",
        (T0.isoformat(),),
    )
    con.commit()
    con.close()
    with Store(db) as s:
        assert s.schema_revision == "0003"
        assert [r.id for r in s.runs("umea")] == [1]
        rid = s.begin_run("umea", T0 + dt.timedelta(days=7))
        s.finish_run(rid, report(T0 + dt.timedelta(days=7), [GONE]))
        s.record_decision(
            "umea", GONE, Kind.ACKNOWLEDGE, by="Anna", until=T0 + dt.timedelta(days=30)
        )
        assert [t.errors for t in s.trend("umea")] == [0, 1]


def test_decisions_on_both_backends(history_url: str) -> None:
    with Store(history_url) as s:
        rid = s.begin_run("umea", T0)
        s.finish_run(rid, report(T0, [GONE]))
        did = s.record_decision(
            "umea", GONE, Kind.SNOOZE, by="Anna", until=T0 + dt.timedelta(days=9), now=T0
        )
        found = s.decision(did)
        assert found is not None
        site, d, revoked = found
        assert (site, d.kind, d.until, revoked) == (
            "umea",
            Kind.SNOOZE,
            T0 + dt.timedelta(days=9),
            False,
        )
        assert s.sites() == ["umea"] and [t.errors for t in s.trend("umea")] == [1]
        assert s.revoke_decision(did, by="Anna") and not s.revoke_decision(did, by="Anna")
        assert [e.action for e in s.decision_log("umea")] == ["undo", "snooze"]
