"""The history: runs, finding state across complete/incomplete/crashed runs, deliveries.

Tests that take ``history_url`` run on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from checks.changes import FlakyPolicy, apply_flakiness
from checks.models import (
    Check,
    Finding,
    LinkRef,
    LinkResult,
    Page,
    Report,
    RunInfo,
    Severity,
    Verdict,
)
from crawler.history import Store, StoreError
from crawler.history.legacy import MIGRATIONS
from crawler.history.migrate import HEAD

SITE = "umea"
T0 = dt.datetime(2024, 11, 18, 6, 0, tzinfo=dt.UTC)
WEEK = dt.timedelta(days=7)


def broken(target: str, detail: str = "http_404", page: str = "https://x.se/p") -> Finding:
    return Finding(Check.BROKEN_LINK, Severity.ERROR, page, target, detail, link_text="Läs")


def report(
    at: dt.datetime,
    findings: list[Finding],
    *,
    complete: bool = True,
    pages: tuple[Page, ...] = (),
    links: tuple[LinkResult, ...] = (),
) -> Report:
    return Report(
        run=RunInfo(
            started_at=at,
            finished_at=at + dt.timedelta(minutes=5),
            as_of=at.date(),
            start_urls=("https://x.se/",),
            scopes=("https://x.se/",),
            complete=complete,
            pages_crawled=len(pages),
            links_checked=len(links),
            site=SITE,
            incomplete_reasons=() if complete else ("max_pages reached",),
        ),
        pages=pages,
        links=links,
        findings=tuple(findings),
    )


def run(store: Store, at: dt.datetime, findings: list[Finding], **kw: object):
    rid = store.begin_run(SITE, at, ["https://x.se/"])
    changes = store.finish_run(rid, report(at, findings, **kw))  # type: ignore[arg-type]
    return rid, changes


def targets(items) -> list[str]:
    return sorted(i.finding.target for i in items)


def test_schema_created_and_versioned(tmp_path: Path) -> None:
    db = tmp_path / "var" / "sitewatch.db"
    with Store(db) as s:
        assert s.schema_revision == HEAD
        run(s, T0, [broken("https://t/a")])
    with Store(db) as s:  # reopening migrates nothing and keeps data
        assert s.schema_revision == HEAD and s.last_run(SITE) == 1
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # The release before Alembic refuses the database as newer than itself.
    assert con.execute("SELECT version FROM schema_version").fetchone()[0] > len(MIGRATIONS)
    con.execute("UPDATE alembic_version SET version_num = '9999'")  # made by a newer sitewatch
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="newer"):
        Store(db)


def test_new_open_fixed_across_runs(history_url: str) -> None:
    a, b, c = broken("https://t/a"), broken("https://t/b"), broken("https://t/c")
    with Store(history_url) as s:
        r1, ch1 = run(s, T0, [a, b])
        assert targets(ch1.new) == ["https://t/a", "https://t/b"]
        r2, ch2 = run(s, T0 + WEEK, [b, c])
        assert targets(ch2.new) == ["https://t/c"]
        assert targets(ch2.still_open) == ["https://t/b"]
        assert ch2.still_open[0].since == T0 and ch2.still_open[0].days == 7
        assert targets(ch2.fixed) == ["https://t/a"]
        # the stored comparison is the same, even after later runs
        run(s, T0 + 2 * WEEK, [])
        again = s.changes_for(r2)
        assert (targets(again.new), targets(again.still_open), targets(again.fixed)) == (
            ["https://t/c"],
            ["https://t/b"],
            ["https://t/a"],
        )
        assert again.fixed[0].finding.link_text == "Läs"
        state = s.previous_state(SITE)
        assert state == {}
        # a fixed finding that comes back is new again, with a fresh first_seen
        _, ch4 = run(s, T0 + 3 * WEEK, [a])
        assert targets(ch4.new) == ["https://t/a"] and ch4.new[0].since == T0 + 3 * WEEK
        assert s.run_info(r1).complete and s.run_info(r1).site == SITE


def test_incomplete_run_never_fixes_and_says_so(history_url: str) -> None:
    a, b, c = broken("https://t/a"), broken("https://t/b"), broken("https://t/c")
    with Store(history_url) as s:
        run(s, T0, [a, b])
        r2, ch2 = run(s, T0 + WEEK, [b, c], complete=False)
        assert ch2.fixed == () and targets(ch2.unchecked) == ["https://t/a"]
        assert not ch2.complete and ch2.incomplete_reasons == ("max_pages reached",)
        stored = s.changes_for(r2)
        assert stored.fixed == () and not stored.complete
        assert targets(stored.unchecked) == ["https://t/a"]
        state = s.previous_state(SITE)
        assert set(k[2] for k in state) == {"https://t/a", "https://t/b", "https://t/c"}
        assert state[a.key].consecutive_runs == 1  # not seen: untouched
        assert state[b.key].consecutive_runs == 2  # seen: counted
        # the next complete run compares with the open state: a fixed, c still open
        _, ch3 = run(s, T0 + 2 * WEEK, [b, c])
        assert targets(ch3.fixed) == ["https://t/a"]
        assert targets(ch3.still_open) == ["https://t/b", "https://t/c"]
        assert ch3.new == ()


def test_crashed_run_is_marked_by_next_begin(history_url: str) -> None:
    a = broken("https://t/a")
    with Store(history_url) as s:
        r1, _ = run(s, T0, [a])
        crashed = s.begin_run(SITE, T0 + WEEK)  # never finished
        other = s.begin_run("other-site", T0 + WEEK)
        r3, ch3 = run(s, T0 + 2 * WEEK, [a])
        assert s.run_status(crashed) == "crashed"
        assert s.run_status(other) == "running"  # other sites are not touched
        assert targets(ch3.still_open) == ["https://t/a"]
        with pytest.raises(StoreError):
            s.finish_run(crashed, report(T0 + WEEK, []))
        with pytest.raises(StoreError):
            s.changes_for(crashed)
        rows = s.runs(SITE)
        assert [r.id for r in rows] == [r3, crashed, r1]
        assert [r.status for r in rows] == ["complete", "crashed", "complete"]
        assert rows[0].changes["still_open"] == 1 and rows[0].counts["error"] == 1
        assert s.last_run(SITE) == r3


def test_pages_links_stored_and_page_fallback(history_url: str) -> None:
    p1 = Page("https://x.se/p", 200, "Första sidan", review_date=dt.date(2023, 1, 2))
    p2 = Page("https://x.se/q", 200, "Andra")
    link = LinkResult(
        "https://t/a",
        Verdict.BROKEN,
        "http_404",
        404,
        found_on=(LinkRef("https://x.se/p", "Läs"),),
    )
    with Store(history_url) as s:
        r1, _ = run(s, T0, [broken("https://t/a")], pages=(p1, p2), links=(link,))
        r2, _ = run(s, T0 + WEEK, [], pages=(p2,))
        assert s.pages(r1) == {p1.url: p1, p2.url: p2}
        # p1 was not crawled in r2: its title comes from the newest earlier run
        assert s.pages(r2, [p1.url, p2.url, "https://x.se/none"]) == {p1.url: p1, p2.url: p2}
        assert s.findings(r1) == (broken("https://t/a"),)


def test_flakiness_promotion_through_the_store(history_url: str) -> None:
    policy = FlakyPolicy(runs=2, hours=24)
    t = broken("https://t/slow", "timeout")
    with Store(history_url) as s:
        sev = []
        for i in range(2):
            at = T0 + i * dt.timedelta(hours=2)
            rid = s.begin_run(SITE, at)
            found = apply_flakiness([t], [], s.previous_state(SITE), policy, at)
            s.finish_run(rid, report(at, list(found)))
            sev.append(s.findings(rid)[0].severity)
        assert sev == [Severity.WARNING, Severity.ERROR]


def test_big_run_is_one_transaction(tmp_path: Path) -> None:
    pages = tuple(Page(f"https://x.se/p{i}", 200, f"Sida {i}") for i in range(100_000))
    findings = [broken(f"https://t/{i}", page=f"https://x.se/p{i}") for i in range(20_000)]
    with Store(tmp_path / "h.db") as s:
        rid = s.begin_run(SITE, T0, ["https://x.se/"])
        txs: list[str] = []
        raw = s._conn.connection.driver_connection
        raw.set_trace_callback(  # transaction statements only (not 120,000 inserts)
            lambda sql: txs.append(sql) if sql.startswith(("BEGIN", "COMMIT", "ROLLBACK")) else None
        )
        ch = s.finish_run(rid, report(T0, findings, pages=pages))
        raw.set_trace_callback(None)
        assert txs == ["BEGIN IMMEDIATE", "COMMIT"]
        assert len(ch.new) == 20_000 and len(s.pages(rid)) == 100_000
        _, ch2 = run(s, T0 + WEEK, findings[:10_000])
        assert len(ch2.still_open) == 10_000 and len(ch2.fixed) == 10_000


def test_delivery_rows(history_url: str) -> None:
    with Store(history_url) as s:
        rid, _ = run(s, T0, [])
        s.register_deliveries(rid, ["a@x.se", "b@x.se"])
        s.register_deliveries(rid, ["a@x.se"])  # idempotent
        assert [d.state for d in s.pending_deliveries(rid)] == ["pending", "pending"]
        assert s.claim_delivery(rid, "a@x.se", "<id@x>")
        assert not s.claim_delivery(rid, "a@x.se")  # already being sent
        s.mark_sent(rid, "a@x.se", "250 ok")
        assert not s.claim_delivery(rid, "a@x.se")  # sent: never again
        assert s.claim_delivery(rid, "b@x.se")
        s.mark_failed(rid, "b@x.se", "451 later")
        assert [d.recipient for d in s.pending_deliveries()] == ["b@x.se"]
        assert s.claim_delivery(rid, "b@x.se")  # failed: retried
        assert s.unconfirmed_deliveries() == [s.delivery(rid, "b@x.se")]
        assert s.release_delivery(rid, "b@x.se")
        d = s.delivery(rid, "b@x.se")
        assert d is not None and d.state == "failed" and d.attempts == 2
        sent = s.delivery(rid, "a@x.se")
        assert sent is not None and sent.message_id == "<id@x>" and sent.sent_at
        assert s.runs()[0].deliveries == {"sent": 1, "failed": 1}
        events = [(e.recipient, e.state) for e in reversed(s.delivery_log(rid))]
        assert events[:3] == [("a@x.se", "pending"), ("b@x.se", "pending"), ("a@x.se", "sending")]


def test_claims_are_exclusive_across_connections(history_url: str) -> None:
    with Store(history_url) as s1, Store(history_url) as s2:
        rid, _ = run(s1, T0, [])
        wins = [s.claim_delivery(rid, "a@x.se") for s in (s1, s2, s1, s2)]
        assert wins == [True, False, False, False]


def test_naive_datetimes_are_utc(history_url: str) -> None:
    naive = T0.replace(tzinfo=None)
    with Store(history_url) as s:
        rid = s.begin_run(SITE, naive)
        s.finish_run(rid, dataclasses.replace(report(T0, []), run=report(naive, []).run))
        assert s.run_info(rid).started_at == T0


def test_finish_run_reuses_the_state_read_only_while_nobody_wrote(history_url: str) -> None:
    """``previous_state`` (read for the flaky grace) is reused by ``finish_run`` unless
    another connection wrote in between: then the finding state is read again."""
    x, y, z = (broken(f"https://x.se/{n}") for n in "xyz")
    with Store(history_url) as s:
        run(s, T0, [x, y])
        # Unchanged in between: the same answer as reading again.
        rid = s.begin_run(SITE, T0 + WEEK, ["https://x.se/"])
        assert set(s.previous_state(SITE)) == {x.key, y.key}
        changes = s.finish_run(rid, report(T0 + WEEK, [x, y, z]))
        assert targets(changes.new) == [z.target]
        assert targets(changes.still_open) == [x.target, y.target]
        # Another connection closes y in between: finish_run must not use the old read.
        rid = s.begin_run(SITE, T0 + 2 * WEEK, ["https://x.se/"])
        assert set(s.previous_state(SITE)) == {x.key, y.key, z.key}
        with Store(history_url) as other, other._tx() as db:
            db.execute(text("UPDATE finding_state SET open = 0 WHERE target = :t"), {"t": y.target})
        changes = s.finish_run(rid, report(T0 + 2 * WEEK, [x, y, z]))
        assert targets(changes.new) == [y.target]
        assert targets(changes.still_open) == [x.target, z.target]


def _pages_in_file_alone(db: Path, rid: int, tmp: Path) -> int:
    """Pages of run ``rid`` in the database file itself, without its WAL."""
    copy = tmp / "file-alone.db"
    for old in (copy, Path(f"{copy}-wal"), Path(f"{copy}-shm")):
        old.unlink(missing_ok=True)
    shutil.copyfile(db, copy)
    con = sqlite3.connect(copy)
    try:
        return con.execute("SELECT count(*) FROM pages WHERE run_id = ?", (rid,)).fetchone()[0]
    except sqlite3.OperationalError:  # not even the tables are in the file yet
        return 0
    finally:
        con.close()


def test_stored_run_is_committed_at_once_and_checkpointed_as_the_store_closes(
    tmp_path: Path,
) -> None:
    db = tmp_path / "h.db"
    pages = tuple(Page(f"https://x.se/p{i}", 200, f"Sida {i}") for i in range(100_000))
    s = Store(db)
    rid, _ = run(s, T0, [broken("https://t/a")], pages=pages)
    # Committed: another connection reads the whole run (from the WAL) ...
    other = sqlite3.connect(db)
    assert other.execute("SELECT status FROM runs WHERE id = ?", (rid,)).fetchone()[0] == (
        "complete"
    )
    assert other.execute("SELECT count(*) FROM pages WHERE run_id = ?", (rid,)).fetchone()[0] == (
        100_000
    )
    other.close()
    # ... but the commit did not checkpoint (the run's WAL passed SQLite's 1,000-page mark):
    # the database file alone does not have it yet. Later commits checkpoint again.
    assert _pages_in_file_alone(db, rid, tmp_path) == 0
    raw = s._conn.connection.driver_connection
    assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000  # type: ignore[union-attr]
    s.close_in_background().join()
    # The last connection's close checkpointed it into the file.
    assert _pages_in_file_alone(db, rid, tmp_path) == 100_000


def test_snapshot_gives_the_stored_links_with_found_on_decoded_when_used(
    history_url: str,
) -> None:
    import pickle

    from crawler.history import StoredRefs

    refs = (LinkRef("https://x.se/p", 'Läs "mer"', "a"), LinkRef("https://x.se/q", "", "img"))
    links = (
        LinkResult("https://t/a", Verdict.BROKEN, "http_404", 404, found_on=refs),
        LinkResult("https://x.se/q", Verdict.OK, status=200, internal=True, found_on=refs[:1]),
        LinkResult("https://t/none", Verdict.OK, status=200),
    )
    pages = (Page("https://x.se/p", 200, "P"), Page("https://x.se/q", 200, "Q"))
    with Store(history_url) as s:
        rid, _ = run(s, T0, [], pages=pages, links=links)
        got_pages, got, checked = s.snapshot(rid)
    assert got_pages == pages and checked == len(links)
    lazy = got[0].found_on
    assert isinstance(lazy, StoredRefs) and lazy._refs is None  # not decoded yet
    assert got == links  # compares as the tuple
    assert lazy._refs == refs and lazy._json is None  # decoded once, then kept
    assert hash(got[1]) == hash(links[1])
    assert pickle.loads(pickle.dumps(got[0])).found_on == refs
    assert type(pickle.loads(pickle.dumps(got[0])).found_on) is tuple
    assert list(got[0].found_on) == list(refs) and len(got[2].found_on) == 0
