"""The history on SQLAlchemy/Alembic: upgrade in place of a database made by the release
before, the schema objects equal to what the migrations make, the scale-out's claims and
per-site lock with processes contending, exactly-once delivery claims across processes, the
re-run cache's rows, and the database password kept out of every message. Tests taking
``history_url`` run on SQLite and on PostgreSQL (``tests/pg.py``)."""

from __future__ import annotations

import datetime as dt
import signal
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from checks.models import Check, Finding, LinkResult, Page, Report, RunInfo, Severity, Verdict
from checks.policy import Policy
from checks.verdicts import Probe
from crawler.history import SiteBusy, Store, StoreError
from crawler.history.engine import HistoryURLError, resolve
from crawler.history.migrate import HEAD, SCRIPTS, script_head
from crawler.history.schema import metadata
from crawler.rerun.fetch_cache import FetchCache, Fetched

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "history_v1.sql"
T0 = dt.datetime(2024, 11, 18, 6, 0, tzinfo=dt.UTC)
GONE = Finding(Check.BROKEN_LINK, Severity.ERROR, "https://x.se/p", "https://x.se/gone", "http_404")


def old_database(tmp_path: Path) -> Path:
    """The fixture: a history written by sitewatch 0.1.0's store (schema_version 6)."""
    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    con.executescript(FIXTURE.read_text(encoding="utf-8"))
    con.close()
    return db


def report(at: dt.datetime, findings: list[Finding], site: str = "umea") -> Report:
    info = RunInfo(at, at, at.date(), ("https://x.se/",), (), True, 1, 0, site=site)
    return Report(info, (Page("https://x.se/p", 200, "P"),), (), tuple(findings))


def test_head_is_the_scripts_head_and_migrations_ship_as_package_data() -> None:
    assert script_head() == HEAD
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "crawler.history" in data["packages"]
    globs = data["package-data"]["crawler.history"]
    shipped = {p for g in globs for p in (ROOT / "crawler" / "history").glob(g)}
    needed = {p for p in SCRIPTS.rglob("*") if p.suffix in (".py", ".mako")}
    assert needed and needed <= shipped


def test_a_release_0_1_database_upgrades_in_place_and_keeps_its_history(tmp_path: Path) -> None:
    db = old_database(tmp_path)
    with Store(db) as s:
        assert s.schema_revision == HEAD
        rows = s.runs("umea")
        assert [(r.id, r.status) for r in rows] == [
            (3, "crashed"),
            (2, "complete"),
            (1, "complete"),
        ]
        assert rows[1].deliveries == {"pending": 1, "sent": 1}
        assert [f.target for f in s.findings(2)] == ["https://x.se/gone"]
        assert [i.finding.target for i in s.changes_for(2).fixed] == ["https://x.se/old"]
        assert s.pages(1)["https://x.se/p"].title == "Sida ä"
        links = s.snapshot(2)[1]
        assert links[1].redirect_chain[0].status == 301 and links[0].found_on[0].text == "Läs"
        assert s.delivery(2, "anna@x.se").message_id == "<m1@x.se>"  # type: ignore[union-attr]
        # The history goes on: the next complete run without the broken link fixes it.
        rid = s.begin_run("umea", T0 + dt.timedelta(days=21))
        changes = s.finish_run(rid, report(T0 + dt.timedelta(days=21), []))
        assert [i.finding.target for i in changes.fixed] == ["https://x.se/gone"]
        assert changes.fixed[0].since == T0
        assert s.claim_period("umea", "2024-W50")
    con = sqlite3.connect(db)
    # The release before refuses the upgraded file ("newer than this sitewatch").
    assert con.execute("SELECT version FROM schema_version").fetchone()[0] == 7
    fetched = con.execute("SELECT etag FROM fetch_cache").fetchall()
    con.close()
    assert fetched == [('"e1"',)]
    with Store(db) as s:  # opened again: nothing to do
        assert s.schema_revision == HEAD and s.last_run("umea") == rid


def test_a_database_newer_than_any_release_before_alembic_is_refused(tmp_path: Path) -> None:
    db = old_database(tmp_path)
    con = sqlite3.connect(db)
    con.execute("UPDATE schema_version SET version = 99")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        Store(db)


@pytest.mark.parametrize("made", ["new", "upgraded"])
def test_schema_objects_match_what_the_migrations_make_on_sqlite(tmp_path: Path, made: str) -> None:
    db = old_database(tmp_path) if made == "upgraded" else tmp_path / "new.db"
    with Store(db) as s, s.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts=_OPTS), metadata)
    # SQLite's reflection does not read back what its own quirks hide: ON DELETE of a
    # column's inline REFERENCES, and the NOT NULL implied by INTEGER PRIMARY KEY.
    kinds = {d[0] if isinstance(d, tuple) else d[0][0] for d in diff}
    assert kinds <= {"remove_fk", "add_fk", "modify_nullable"}, diff
    fks = [d for d in diff if isinstance(d, tuple)]
    assert {(k, fk.parent.name) for k, fk in fks} == {
        (k, t) for k in ("remove_fk", "add_fk") for t in _RUN_CHILDREN
    }
    assert {d[0][2] for d in diff if isinstance(d, list)} == {"runs", "delivery_log"}


_RUN_CHILDREN = ("pages", "links", "run_findings", "deliveries")
#: The old release's marker table is not part of the schema objects.
_OPTS = {"include_name": lambda name, kind, parent: name != "schema_version"}


@pytest.mark.postgres
def test_schema_objects_match_what_the_migrations_make_on_postgres(pg_empty_url: str) -> None:
    with Store(pg_empty_url) as s, s.engine.connect() as conn:  # migrated from nothing
        assert s.schema_revision == HEAD
        diff = compare_metadata(MigrationContext.configure(conn, opts=_OPTS), metadata)
    assert diff == []


def test_the_history_url_selects_the_backend_and_never_holds_a_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert resolve("var/sw.db").path == Path("var/sw.db")
    assert resolve("sqlite:///var/sw.db").path == Path("var/sw.db")
    monkeypatch.setenv("SW_PW", "s3cret-pw")
    pg = resolve("postgresql://sw@db.example:5433/history", "SW_PW")
    assert pg.url.drivername == "postgresql+psycopg" and pg.url.password == "s3cret-pw"
    assert "s3cret-pw" not in pg.shown and "***" in pg.shown
    with pytest.raises(HistoryURLError) as e:
        resolve("postgresql://sw:hunter22@db.example/history", "SW_PW")
    assert "hunter22" not in str(e.value) and "SW_PW" in str(e.value)
    with pytest.raises(HistoryURLError, match="unknown database"):
        resolve("mysql://sw@db.example/history")


@pytest.mark.postgres
def test_a_wrong_password_is_a_clear_error_without_the_password(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from crawler.history.runs import HistoryError, open_store
    from tests.cli_runner import write_config

    monkeypatch.setenv("SW_WRONG_PW", "Wr0ng-Pass-4711")
    cfg_path = write_config(
        tmp_path / "sw.toml",
        '[site]\nstart_urls = ["https://x.se/"]\n'
        f'[history]\nurl = "{pg_url}"\npassword_env = "SW_WRONG_PW"\n',
    )
    from crawler.config import load_config

    with pytest.raises(HistoryError) as e:
        open_store(load_config(cfg_path))
    message = str(e.value)
    assert "password authentication failed" in message and "127.0.0.1" in message
    assert "Wr0ng-Pass-4711" not in message


# --- scale-out: claims and the per-site lock -------------------------------------------------

CLAIMER = """
import sys
from crawler.history import Store
with Store(sys.argv[1]) as s:
    won = [p for p in range(int(sys.argv[2])) if s.claim_period("umea", f"2026-W{p:02}")]
print(" ".join(map(str, won)))
"""


def _python(code: str, *args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=ROOT, text=True, stdout=subprocess.PIPE, **kw
    )  # type: ignore[call-overload]


def test_claim_period_is_granted_once_across_processes(history_url: str) -> None:
    Store(history_url).close()
    procs = [_python(CLAIMER, history_url, "30") for _ in range(3)]
    won = [int(p) for proc in procs for p in proc.communicate(timeout=120)[0].split()]
    assert all(proc.returncode == 0 for proc in procs)
    assert sorted(won) == list(range(30))  # each period exactly once, whoever won it
    with Store(history_url) as s:
        assert not s.claim_period("umea", "2026-W07")
        assert s.release_claim("umea", "2026-W07") and s.claim_period("umea", "2026-W07")


HOLDER = """
import sys
from crawler.history import Store
with Store(sys.argv[1]) as s, s.site_lock("umea"):
    print("locked", flush=True)
    if sys.stdin.readline().strip() == "exit":
        pass
print("released", flush=True)
"""


@pytest.mark.parametrize("end", ["released", "killed"])
def test_site_lock_excludes_other_processes_until_released_or_its_holder_dies(
    history_url: str, end: str
) -> None:
    Store(history_url).close()
    holder = _python(HOLDER, history_url, stdin=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline().strip() == "locked"
    with Store(history_url) as s:
        with pytest.raises(SiteBusy, match="umea"), s.site_lock("umea"):
            pass
        with s.site_lock("other-site"):  # other sites are free
            pass
        if end == "released":
            holder.stdin.write("exit\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == "released"
        else:
            holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
        if end == "killed" and s.dialect == "postgresql":
            _wait_for_the_dead_backend(s)
        with (
            s.site_lock("umea"),  # free again (a dead owner's lock with it)
            pytest.raises(SiteBusy),
            Store(history_url) as other,
            other.site_lock("umea"),
        ):
            pass
        with s.site_lock("umea"):  # and released by the block's end
            pass
    holder.stdin.close()
    holder.stdout.close()


def _wait_for_the_dead_backend(s: Store) -> None:
    """PostgreSQL ends a killed client's session (and its advisory locks) once it reads
    the closed socket: wait for that by taking the lock blocking, then let it go."""
    from crawler.history.connection import lock_key

    with s.engine.connect() as conn:
        conn.execute(text("SET lock_timeout = '60s'"))
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key("site", "umea")})
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key("site", "umea")})
        conn.rollback()


def test_a_run_begun_under_the_site_lock_crashes_every_earlier_running_run(
    history_url: str,
) -> None:
    from crawler.history import RunOwner

    elsewhere = RunOwner("worker-2.example", 4242, "t")  # another host: cannot be asked
    now = dt.datetime.now(dt.UTC)  # its runs are not stale yet
    with Store(history_url) as s:
        other_site = s.begin_run("other", now, owner=elsewhere)
        stuck = s.begin_run("umea", now, owner=elsewhere)
        s.begin_run("umea", now + dt.timedelta(hours=1))
        assert s.run_status(stuck) == "running"  # without the lock: maybe alive
        with s.site_lock("umea"):
            rid = s.begin_run("umea", now + dt.timedelta(hours=2), site_locked=True)
            s.finish_run(rid, report(now + dt.timedelta(hours=2), [GONE]))
        assert s.run_status(stuck) == "crashed" and s.run_status(rid) == "complete"
        assert s.run_status(other_site) == "running"  # other sites are not touched


def test_a_sqlite_lease_is_taken_over_once_expired(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    with Store(db) as s, s._tx() as conn:
        row = "('umea', 'far-away-host', 4242, '', :at, :until)"
        conn.execute(
            text(f"INSERT INTO site_leases VALUES {row}"),
            {"at": "2026-01-01T00:00:00+00:00", "until": "9999-01-01T00:00:00+00:00"},
        )
    with Store(db) as s:
        # Another host's live lease: its pid cannot be asked.
        with pytest.raises(SiteBusy), s.site_lock("umea"):
            pass
        with s._tx() as conn:
            past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
            conn.execute(text("UPDATE site_leases SET expires_at = :p"), {"p": past})
        with s.site_lock("umea", lease=dt.timedelta(hours=1)):
            (until,) = s._one(text("SELECT expires_at FROM site_leases")).values()  # type: ignore[union-attr]
            assert dt.datetime.fromisoformat(until) > dt.datetime.now(dt.UTC)
        assert s._one(text("SELECT count(*) AS n FROM site_leases"))["n"] == 0  # type: ignore[index]
        with s.site_lock("umea"), s.engine.connect() as conn:  # what the renewer does
            assert s._extend(conn, "umea", dt.timedelta(minutes=5))
        with s.engine.connect() as conn:  # released: nothing left to renew
            assert not s._extend(conn, "umea", dt.timedelta(minutes=5))


# --- deliveries: exactly once per (run, recipient) with several senders -----------------------

SENDER = """
import sys
from crawler.history import Store
with Store(sys.argv[1]) as s:
    for i in range(40):
        rcpt = f"r{i}@x.se"
        if s.claim_delivery(int(sys.argv[2]), rcpt, f"<{i}@x>"):
            s.mark_sent(int(sys.argv[2]), rcpt, sys.argv[3])
"""


def test_several_senders_claim_each_delivery_exactly_once(history_url: str) -> None:
    with Store(history_url) as s:
        rid = s.begin_run("umea", T0)
        s.finish_run(rid, report(T0, [GONE]))
    procs = [_python(SENDER, history_url, str(rid), f"sender {n}") for n in range(3)]
    for proc in procs:
        proc.communicate(timeout=120)
        assert proc.returncode == 0
    with Store(history_url) as s:
        rows = s.deliveries(rid)
        assert len(rows) == 40 and {d.state for d in rows} == {"sent"}
        assert {d.attempts for d in rows} == {1}
        log = s.delivery_log(rid, limit=1000)
        assert sorted(e.state for e in log) == ["sending"] * 40 + ["sent"] * 40


# --- the re-run cache's rows ------------------------------------------------------------------


def _fetched(body: bytes) -> Fetched:
    return Fetched(200, "text/html", "GET", True, True, False, body, frozenset({"a"}), False, None)


def test_the_rerun_cache_rows_on_both_backends(history_url: str) -> None:
    Store(history_url).close()
    first = FetchCache(history_url, "p", 1, max_age_days=7)
    assert not first.failed and first.stored() == []  # a first run asks nothing
    first.record("https://x.se/a", 4, '"ea"', "", _fetched(b"a"))
    first.record("https://x.se/gone", 4, '"eg"', "", _fetched(b"g"))
    first.note_link("https://ext.se/ok", 1)
    first.note_link("https://ext.se/bad", 1)
    probes: dict[str, Probe | None] = {
        "https://ext.se/ok": Probe("https://ext.se/ok", 200, content_type="text/html"),
        "https://ext.se/bad": Probe("https://ext.se/bad", 404),
    }
    bad = LinkResult("https://ext.se/bad", Verdict.BROKEN, "http_404", 404)
    first.finish(probes, [bad], Policy(), complete=True)
    assert not first.failed and first.written == 3
    first.close()
    second = FetchCache(history_url, "p", 2, max_age_days=7)
    assert sorted(second.stored()) == [
        ("https://x.se/a", 4, '"ea"', ""),
        ("https://x.se/gone", 4, '"eg"', ""),
    ]
    assert second.validators("https://x.se/a", 4) == ('"ea"', "")
    assert second.validators("https://x.se/a", 1) is None
    got = second.fetched("https://x.se/a", 4)
    assert got is not None and got.head_bytes == b"a" and got.ids == frozenset({"a"})
    ok = second.cached_link("https://ext.se/ok", 1)
    assert ok is not None and ok.status == 200
    assert second.cached_link("https://ext.se/bad", 1) is None
    assert second.written_since(0) and not second.written_since(1)
    second.finish({}, [], Policy(), complete=True)  # replayed only /a: /gone is dropped
    assert not second.failed
    second.close()
    third = FetchCache(history_url, "p", 3, max_age_days=7)
    assert [r[0] for r in third.stored()] == ["https://x.se/a"]
    assert third.fetched("https://x.se/other", 4) is None
    third.close()


def test_a_cache_on_an_unusable_database_is_off_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    cache = FetchCache(tmp_path / "dir.db", "p", 1, max_age_days=7)
    assert cache.failed and cache.validators("https://x.se/", 4) is None
    cache.close()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://sw:Hemligt-77@db.example/h", "holds a password"),
        ("mysql://sw@db.example/h", "unknown database"),
        (42, "expected a string"),
    ],
)
def test_config_history_url_is_checked_and_a_password_in_it_never_shown(
    url: object, says: str
) -> None:
    from crawler.config import ConfigError, load_config

    with pytest.raises(ConfigError) as e:
        load_config(None, {"history": {"url": url}})
    assert says in str(e.value) and "history.url" in str(e.value)
    assert "Hemligt-77" not in str(e.value)


def test_config_history_defaults_are_the_sqlite_file() -> None:
    from crawler.config import load_config

    h = load_config(None, {"site": {"start_urls": ["https://x.se/"]}}).history
    assert (h.db, h.url, h.password_env) == ("var/sitewatch.db", "", "SITEWATCH_DB_PASSWORD")
    pg = load_config(None, {"history": {"url": "postgresql://sw@db.example/h"}}).history
    assert pg.url == "postgresql://sw@db.example/h"
