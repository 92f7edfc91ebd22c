"""Crash safety of the history: ``kill -9`` mid-audit, and audits running at the same time.

Everything goes through the real ``sitewatch`` CLI in child processes, against the gated
fixture site (``tests/watch_site.py``: a request for /sv/slow.html waits until the test
opens that crawler's gate, so an audit can be held mid-crawl without sleeps), a real
SQLite history and, for ``send``, a real aiosmtpd server on 127.0.0.1.

Editors must never get a wrong "fixed" or a duplicate email:

- a killed run stays out of the comparison: nothing is marked fixed by it, it is recorded
  ``crashed`` once the next run of the site begins, and ``send`` never sends it;
- two audits of the same site at once both land (neither is taken for a crash), two sites
  at once do not disturb each other, ``sitewatch history`` can read meanwhile, and
  ``PRAGMA integrity_check`` stays ``ok``;
- a run that finishes after another process wrongly marked it crashed is stored, not lost.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.history import RunOwner, Store
from tests.cli_runner import ROOT, CliResult, sitewatch
from tests.smtp_server import SmtpTestServer
from tests.watch_site import (
    AS_OF,
    ED,
    KARIN,
    WEBB,
    GatedSite,
    cli_env,
    db_rows,
    integrity,
    site_config,
    start_cli,
    wait_for,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BORTA_KEY = "borta.html"
GONE_KEY = "gone.html"


@pytest.fixture
def site() -> Iterator[GatedSite]:
    with GatedSite() as s:
        yield s


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpTestServer]:
    with SmtpTestServer(tmp_path / "certs") as server:
        yield server


def config(tmp_path: Path, site: GatedSite, ua: str, *, name: str = "kommun", **kw) -> Path:
    return site_config(
        tmp_path / f"{ua}.toml",
        start_url=kw.pop("start_url", site.start_url),
        base_url=site.server.base_url,
        db=tmp_path / "var" / "sw.db",
        out=tmp_path / f"out-{ua}",
        name=name,
        ua=ua,
        **kw,
    )


def audit(cfg: Path, cwd: Path) -> CliResult:
    return sitewatch("audit", "--config", str(cfg), "--as-of", AS_OF, cwd=cwd, timeout=180)


def run_statuses(db: Path, site: str = "kommun") -> dict[int, str]:
    return dict(db_rows(db, "SELECT id, status FROM runs WHERE site = ? ORDER BY id", (site,)))  # type: ignore[arg-type]


def changes(db: Path, run_id: int) -> dict[str, list[str]]:
    """change -> sorted link targets (file name only) of a run's stored comparison."""
    out: dict[str, list[str]] = {}
    for change, target in db_rows(
        db, "SELECT change, target FROM run_findings WHERE run_id = ?", (run_id,)
    ):
        out.setdefault(str(change), []).append(str(target).rsplit("/", 1)[-1])
    return {k: sorted(v) for k, v in out.items()}


def open_state(db: Path) -> dict[str, tuple[object, ...]]:
    """Open broken-link state: target -> (first_seen, last_run_id, consecutive_runs)."""
    return {
        str(t).rsplit("/", 1)[-1]: (fs, lr, n)
        for t, fs, lr, n in db_rows(
            db,
            "SELECT target, first_seen, last_run_id, consecutive_runs FROM finding_state "
            "WHERE open = 1 AND check_name = 'broken_link'",
        )
    }


def by_run(smtp: SmtpTestServer) -> dict[str, list[str]]:
    """recipient -> the ``run<id>`` part of each Message-ID received, in order."""
    out: dict[str, list[str]] = {}
    for m in smtp.messages:
        msg = m.message
        for r in m.rcpt_tos:
            out.setdefault(r, []).append(str(msg["Message-ID"]))
    return out


def smtp_table(smtp: SmtpTestServer) -> str:
    return f'host = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\nretries = 0\n'


def kill_mid_crawl(cfg: Path, cwd: Path, site: GatedSite, ua: str) -> int:
    """Start an audit, wait until it is recorded ``running`` and held mid-crawl, SIGKILL it.

    Returns the id of the killed run.
    """
    site.gate(ua).clear()
    db = cwd / "var" / "sw.db"
    before, seen = set(run_statuses(db)), site.arrived(ua)
    child = start_cli("audit", "--config", str(cfg), "--as-of", AS_OF, cwd=cwd)
    try:
        wait_for(lambda: site.arrived(ua) > seen, what="the audit to reach the slow page")
        new = {i: s for i, s in run_statuses(db).items() if i not in before}
        assert list(new.values()) == ["running"], new
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    site.gate(ua).set()
    return next(iter(new))


@pytest.mark.parametrize("fixed", [False, True], ids=["still-broken", "fixed"])
def test_kill_9_mid_audit_never_marks_fixed_and_is_never_sent(
    tmp_path: Path, site: GatedSite, smtp: SmtpTestServer, fixed: bool
) -> None:
    ua = "sitewatch-kill"
    cfg = config(tmp_path, site, ua, smtp=smtp_table(smtp))
    db = tmp_path / "var" / "sw.db"
    site.gate(ua).set()

    # Run 1: complete, two broken links (one per section), mailed once per owner.
    r1 = audit(cfg, tmp_path)
    assert r1.code == 1, r1.stderr
    assert "history: run 1 — 2 new, 0 still open, 0 fixed" in r1.stdout
    sent = sitewatch("send", "--config", str(cfg), cwd=tmp_path)
    assert sent.code == 0, sent.stderr
    assert smtp.handler.received_by() == {KARIN: 1, ED: 1, WEBB: 1}
    state_after_1 = open_state(db)
    assert set(state_after_1) == {BORTA_KEY, GONE_KEY}

    # Run 2: killed with SIGKILL while held on the slow page.
    killed = kill_mid_crawl(cfg, tmp_path, site, ua)
    assert killed == 2
    assert run_statuses(db)[2] == "running"  # nobody has looked yet
    assert open_state(db) == state_after_1  # the killed run touched no finding state
    assert changes(db, 2) == {}
    assert integrity(db) == "ok"

    # Meanwhile: history reads fine; send never sends the killed run.
    hist = sitewatch("history", "--config", str(cfg), cwd=tmp_path)
    assert hist.code == 0 and "running" in hist.stdout, hist.stdout + hist.stderr
    again = sitewatch("send", "--config", str(cfg), cwd=tmp_path)  # latest finished = run 1
    assert again.code == 0 and "run 1: 0 sent" in again.stdout, again.stdout + again.stderr
    forced = sitewatch("send", "--config", str(cfg), "--run", "2", cwd=tmp_path)
    assert forced.code == 2 and "run 2 is running" in forced.stderr
    assert smtp.handler.received_by() == {KARIN: 1, ED: 1, WEBB: 1}

    # Run 3: complete. The killed run is now recorded crashed; the comparison is with run 1.
    if fixed:
        site.fix_link()
    r3 = audit(cfg, tmp_path)
    assert r3.code == 1, r3.stderr
    statuses = run_statuses(db)
    assert statuses == {1: "complete", 2: "crashed", 3: "complete"}
    (reasons,) = db_rows(db, "SELECT incomplete_reasons FROM runs WHERE id = 2")[0]
    assert "crashed" in json.loads(str(reasons))
    if fixed:
        assert "history: run 3 — 0 new, 1 still open, 1 fixed" in r3.stdout
        assert changes(db, 3) == {"fixed": [BORTA_KEY], "open": [GONE_KEY]}
    else:
        assert "history: run 3 — 0 new, 2 still open, 0 fixed" in r3.stdout
        assert changes(db, 3) == {"open": [BORTA_KEY, GONE_KEY]}
    # still open since run 1 (first_seen kept), counted for runs 1 and 3 only
    assert open_state(db)[GONE_KEY] == (state_after_1[GONE_KEY][0], 3, 2)
    # the next run is clean: as many pages as run 1, nothing incomplete
    (p1, p3, why3) = (
        db_rows(db, "SELECT pages_crawled FROM runs WHERE id = 1")[0][0],
        db_rows(db, "SELECT pages_crawled FROM runs WHERE id = 3")[0][0],
        db_rows(db, "SELECT incomplete_reasons FROM runs WHERE id = 3")[0][0],
    )
    assert p3 == p1 and json.loads(str(why3)) == []

    hist = sitewatch("history", "--config", str(cfg), cwd=tmp_path)
    assert hist.code == 0
    line2 = next(ln for ln in hist.stdout.splitlines() if ln.strip().startswith("2 "))
    assert "crashed" in line2
    forced = sitewatch("send", "--config", str(cfg), "--run", "2", cwd=tmp_path)
    assert forced.code == 2 and "run 2 is crashed" in forced.stderr

    # Emails for run 3: one per owner; Karin's says "fixed" (or "still open"), never "new".
    sent = sitewatch("send", "--config", str(cfg), cwd=tmp_path)
    assert sent.code == 0, sent.stderr
    assert smtp.handler.received_by() == {KARIN: 2, ED: 2, WEBB: 2}
    karin3 = [m.message for m in smtp.messages if m.rcpt_tos == [KARIN]][-1]
    text = karin3.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Nya fel" not in text and "nytt fel" not in str(karin3["Subject"])
    if fixed:
        assert "Åtgärdat sedan förra veckan" in text and text.count("borta.html") == 1
    else:
        assert "Kvarstår" in text and "borta.html" in text

    # Run 4: the fix (or the open problem) is reported once, not again.
    r4 = audit(cfg, tmp_path)
    if fixed:
        assert "history: run 4 — 0 new, 1 still open, 0 fixed" in r4.stdout
    else:
        assert "history: run 4 — 0 new, 2 still open, 0 fixed" in r4.stdout
    assert db_rows(
        db,
        "SELECT COUNT(*) FROM run_findings WHERE change = 'fixed' AND target LIKE ?",
        ("%borta.html",),
    )[0][0] == (1 if fixed else 0)
    ids = [i for ms in by_run(smtp).values() for i in ms]
    assert len(ids) == len(set(ids)) == 6  # no message was sent twice
    assert integrity(db) == "ok"


def _release_and_finish(proc: subprocess.Popen[str], gate: threading.Event) -> tuple[int, str, str]:
    gate.set()
    out, err = proc.communicate(timeout=180)
    return proc.returncode, out, err


def test_two_audits_of_one_site_and_another_site_at_once(tmp_path: Path, site: GatedSite) -> None:
    """Same site twice and a second site, all held mid-crawl together; history reads meanwhile.

    The audit of "kommun" that began second finishes first; the one that began first is
    then an older observation arriving last: stored, but incomplete ("overtaken"), so it
    marks nothing fixed and leaves the finding state to the newer run.
    """
    a1 = config(tmp_path, site, "sw-a1")
    a2 = config(tmp_path, site, "sw-a2")
    other = GatedSite()
    with other:
        b = config(tmp_path, other, "sw-b", name="annan")
        db = tmp_path / "var" / "sw.db"
        for ua in ("sw-a1", "sw-a2"):
            site.gate(ua).clear()
        other.gate("sw-b").clear()
        procs: dict[str, subprocess.Popen[str]] = {}
        try:
            # a1 starts on a database that does not exist yet; a2 and b while it runs
            procs["sw-a1"] = start_cli("audit", "--config", str(a1), "--as-of", AS_OF, cwd=tmp_path)
            wait_for(lambda: site.arrived("sw-a1") > 0, what="the first audit mid-crawl")
            procs["sw-a2"] = start_cli("audit", "--config", str(a2), "--as-of", AS_OF, cwd=tmp_path)
            procs["sw-b"] = start_cli("audit", "--config", str(b), "--as-of", AS_OF, cwd=tmp_path)
            wait_for(
                lambda: site.arrived("sw-a2") > 0 and other.arrived("sw-b") > 0,
                what="three audits held mid-crawl",
            )
            rows = db_rows(db, "SELECT id, site, status FROM runs ORDER BY id")
            assert rows[0] == (1, "kommun", "running")
            assert sorted(rows[1:]) == [
                (2, "annan", "running"),
                (3, "kommun", "running"),
            ] or sorted(rows[1:]) == [(2, "kommun", "running"), (3, "annan", "running")]
            a2_id = next(i for i, s, _ in rows[1:] if s == "kommun")
            for _ in range(3):  # readers are never blocked and never see a half-written run
                hist = sitewatch("history", "--config", str(a1), "--all-sites", cwd=tmp_path)
                assert hist.code == 0, hist.stderr
                assert hist.stdout.count("running") == 3, hist.stdout
            results = {"sw-a2": _release_and_finish(procs["sw-a2"], site.gate("sw-a2"))}
            hist = sitewatch("history", "--config", str(a1), cwd=tmp_path)
            assert hist.code == 0 and hist.stdout.count("running") == 1, hist.stdout
            results["sw-a1"] = _release_and_finish(procs["sw-a1"], site.gate("sw-a1"))
            results["sw-b"] = _release_and_finish(procs["sw-b"], other.gate("sw-b"))
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
                    p.communicate()
    for ua, (code, out, err) in results.items():
        assert code == 1, f"{ua}: exit {code}\n{out}\n{err}"  # 1: broken links found
        assert "Traceback" not in err and "history: run" in out, f"{ua}: {out}\n{err}"
    assert f"history: run {a2_id} — 2 new, 0 still open, 0 fixed\n" in results["sw-a2"][1]
    assert "(incomplete run: nothing marked fixed)" in results["sw-a1"][1]
    rows = db_rows(db, "SELECT id, site, status, pages_crawled, incomplete_reasons FROM runs")
    by_id = {i: (s, st, n, json.loads(str(why))) for i, s, st, n, why in rows}
    assert by_id[1][:2] == ("kommun", "incomplete")
    assert by_id[1][3] == [f"overtaken: run {a2_id} of this site began later and finished first"]
    assert by_id[a2_id][:2] == ("kommun", "complete")
    assert sorted(v[:2] for k, v in by_id.items() if k not in (1, a2_id)) == [("annan", "complete")]
    assert len({v[2] for v in by_id.values()}) == 1  # every run crawled the whole site
    assert integrity(db) == "ok"
    # the finding state is the newer run's; the overtaken one neither fixed nor counted
    assert {v[1:] for v in open_state_for(db, "kommun").values()} == {(a2_id, 1)}
    assert {v[2] for v in open_state_for(db, "annan").values()} == {1}


def open_state_for(db: Path, site_name: str) -> dict[str, tuple[object, ...]]:
    return {
        str(t).rsplit("/", 1)[-1]: (fs, lr, n)
        for t, fs, lr, n in db_rows(
            db,
            "SELECT target, first_seen, last_run_id, consecutive_runs FROM finding_state "
            "WHERE open = 1 AND check_name = 'broken_link' AND site = ?",
            (site_name,),
        )
    }


def test_failed_scheduled_audit_does_not_crash_a_running_adhoc_audit(
    tmp_path: Path, site: GatedSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler's clean-up after a failed child must not touch a live run of the site.

    An ad-hoc audit started before the weekly fire time is held mid-crawl; the scheduled
    audit of the same site fires (its start URL is unreachable: the child exits 2), and the
    scheduler marks the failed run crashed. The ad-hoc audit then finishes and is stored.
    """
    import crawler.app.schedule as schedule

    ua = "sw-adhoc"
    adhoc = config(tmp_path, site, ua)
    db = tmp_path / "var" / "sw.db"
    site.gate(ua).clear()
    proc = start_cli("audit", "--config", str(adhoc), "--as-of", AS_OF, cwd=tmp_path)
    try:
        wait_for(lambda: site.arrived(ua) >= 1, what="the ad-hoc audit mid-crawl")
        dead = GatedSite()
        dead_url = dead.start_url
        dead.server.stop()  # never started: the port refuses connections
        sched = config(tmp_path, site, "sw-sched", start_url=dead_url)
        # The weekly period began just now, after the ad-hoc audit started.
        monkeypatch.setattr(schedule, "previous_fire", lambda trig, now: now)
        monkeypatch.setenv("PYTHONPATH", str(ROOT))
        monkeypatch.chdir(tmp_path)
        outcome = schedule.scheduled_audit(str(sched))
        assert outcome.ran and outcome.audit_code == 2
        statuses = run_statuses(db)
        assert sorted(statuses.values()) == ["crashed", "running"], statuses
        code, out, err = _release_and_finish(proc, site.gate(ua))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert code == 1 and "Traceback" not in err, out + err
    assert "history: run 1 — 2 new" in out
    assert run_statuses(db) == {1: "complete", 2: "crashed"}
    assert integrity(db) == "ok"


MARK_CRASHED = r"""
import sys
from crawler.history import Store
with Store(sys.argv[1]) as s:
    s.mark_crashed(int(sys.argv[2]), "marked by another process")
"""


def test_run_wrongly_marked_crashed_by_another_process_is_not_lost(
    tmp_path: Path, site: GatedSite
) -> None:
    """Another process (an admin, an older sitewatch) marks a live audit crashed; the audit
    finishes anyway and its run is stored complete, with its comparison and emails."""
    ua = "sw-live"
    cfg = config(tmp_path, site, ua)
    db = tmp_path / "var" / "sw.db"
    site.gate(ua).clear()
    proc = start_cli("audit", "--config", str(cfg), "--as-of", AS_OF, cwd=tmp_path)
    try:
        wait_for(lambda: site.arrived(ua) >= 1, what="the audit mid-crawl")
        subprocess.run(
            [sys.executable, "-c", MARK_CRASHED, str(db), "1"],
            cwd=ROOT,
            env=cli_env(),
            check=True,
        )
        assert run_statuses(db) == {1: "crashed"}
        code, out, err = _release_and_finish(proc, site.gate(ua))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert code == 1 and "Traceback" not in err, out + err
    assert "history: run 1 — 2 new, 0 still open, 0 fixed" in out
    assert run_statuses(db) == {1: "complete"}
    assert changes(db, 1) == {"new": [BORTA_KEY, GONE_KEY]}
    sent = sitewatch("send", "--config", str(cfg), cwd=tmp_path)
    assert sent.code == 0 and "run 1: 3 sent" in sent.stdout, sent.stdout + sent.stderr


STORE_WORKER = r"""
import datetime as dt, sys
from checks.models import Check, Finding, Page, Report, RunInfo, Severity
from crawler.history import Store

db, site, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)
for i in range(n):
    with Store(db) as s:
        at = t0 + dt.timedelta(hours=i)
        rid = s.begin_run(site, at, ["https://x.se/"])
        pages = tuple(Page(f"https://x.se/{site}/p{k}", 200, f"Sida {k}") for k in range(1500))
        found = tuple(
            Finding(Check.BROKEN_LINK, Severity.ERROR, pages[k].url, f"https://t/{k}", "http_404")
            for k in range(0, 1500, 3 + i % 2)
        )
        info = RunInfo(started_at=at, finished_at=at, as_of=at.date(), start_urls=(),
                       scopes=(), complete=True, pages_crawled=len(pages), links_checked=0,
                       site=site)
        s.finish_run(rid, Report(info, pages, (), found))
        s.runs(None, limit=50)
print("ok")
"""


def test_many_writers_and_readers_on_a_fresh_database(tmp_path: Path) -> None:
    """Six processes (three sites, two writers each) create, migrate and write one new
    database at once: every run lands (complete, or incomplete because a run of its site
    that began later finished first) and the file passes integrity_check."""
    db = tmp_path / "var" / "fresh.db"
    sites = ["s1", "s1", "s2", "s2", "s3", "s3"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STORE_WORKER, str(db), s, "4"],
            cwd=ROOT,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in sites
    ]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0 and out.strip() == "ok", err
    assert integrity(db) == "ok"
    rows = db_rows(db, "SELECT site, status, incomplete_reasons FROM runs")
    assert sorted(s for s, *_ in rows) == sorted(s for s in sites for _ in range(4))
    for site_name, status, why in rows:  # every run landed; incomplete only if overtaken
        reasons = json.loads(str(why))
        assert (status == "complete" and reasons == []) or (
            status == "incomplete" and len(reasons) == 1 and "overtaken" in reasons[0]
        ), (site_name, status, reasons)
    assert db_rows(db, "PRAGMA journal_mode") == [("wal",)]


@pytest.mark.postgres
def test_many_writers_and_readers_on_a_fresh_postgres_database(pg_empty_url: str) -> None:
    """The same on PostgreSQL: six processes migrate one empty database at once (an
    advisory lock makes it happen once) and write their runs concurrently."""
    sites = ["s1", "s1", "s2", "s2", "s3", "s3"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STORE_WORKER, pg_empty_url, s, "3"],
            cwd=ROOT,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in sites
    ]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0 and out.strip() == "ok", err
    with Store(pg_empty_url) as s:
        rows = s.runs(None, limit=100)
        for r in rows:
            assert (r.status == "complete" and r.incomplete_reasons == ()) or (
                r.status == "incomplete" and "overtaken" in r.incomplete_reasons[0]
            ), r
        assert sorted(r.site for r in rows) == sorted(s for s in sites for _ in range(3))
        for site_name in ("s1", "s2", "s3"):  # the newest complete run's state is kept
            last = s.last_run(site_name, statuses=("complete",))
            assert last is not None and s.findings(last)


def test_owner_liveness_rules(history_url: str) -> None:
    """Which ``running`` runs the next begin of a site marks crashed: owners that are gone
    (or a pid now used by another process), never a live process; the same process
    beginning again abandons its own earlier run; a foreign host's run only when stale."""
    now = dt.datetime.now(dt.UTC)
    me = RunOwner.current()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    gone = RunOwner(me.host, child.pid, "")
    live_parent = RunOwner(me.host, os.getppid(), "")
    reused = RunOwner(me.host, os.getppid(), "not-the-same-process")
    foreign_new = RunOwner("other-host", 4242, "x")
    foreign_old = RunOwner("other-host", 4343, "y")
    with Store(history_url) as s:
        ids = {
            "gone": s.begin_run("s", now, owner=gone),
            "live": s.begin_run("s", now, owner=live_parent),
            "foreign-new": s.begin_run("s", now, owner=foreign_new),
            "foreign-old": s.begin_run("s", now - dt.timedelta(days=30), owner=foreign_old),
            "mine": s.begin_run("s", now),
        }
        if RunOwner.for_pid(os.getppid()).token:  # /proc tells a pid's start time apart
            ids["reused"] = s.begin_run("s", now, owner=reused)
        ids["next"] = s.begin_run("s", now)
        status = {k: s.run_status(v) for k, v in ids.items()}
    assert status.pop("gone") == "crashed"
    assert status.pop("live") == "running"
    assert status.pop("foreign-new") == "running"
    assert status.pop("foreign-old") == "crashed"
    assert status.pop("mine") == "crashed"  # this process began another run of the site
    if "reused" in status:
        assert status.pop("reused") == "crashed"
    assert status == {"next": "running"}


def test_upgrade_from_schema_2_reaps_ownerless_running_runs(tmp_path: Path) -> None:
    """A database written before runs had owners: migration 3 keeps its rows; a run left
    ``running`` by the old version has no owner to ask and is crashed by the next begin,
    for good (its own process cannot come back to finish it under the new rules)."""
    import sqlite3

    from crawler.history import StoreError
    from crawler.history.legacy import MIGRATIONS
    from crawler.history.migrate import HEAD

    db = tmp_path / "old.db"
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    con.execute("INSERT INTO schema_version VALUES (2)")
    for statements in MIGRATIONS[:2]:
        for sql in statements:
            con.execute(sql)
    con.execute(
        "INSERT INTO runs (site, status, started_at) VALUES ('s', 'running', ?)",
        (dt.datetime.now(dt.UTC).isoformat(),),
    )
    con.close()
    with Store(db) as s:
        assert s.schema_revision == HEAD
        assert s.run_status(1) == "running"
        rid = s.begin_run("s", dt.datetime.now(dt.UTC))
        assert (s.run_status(1), s.run_status(rid)) == ("crashed", "running")
        from checks.models import Report, RunInfo

        now = dt.datetime.now(dt.UTC)
        info = RunInfo(now, now, now.date(), (), (), True, 0, 0, site="s")
        with pytest.raises(StoreError, match="crashed"):
            s.finish_run(1, Report(info, (), (), ()))
        s.finish_run(rid, Report(info, (), (), ()))
        assert s.run_status(rid) == "complete"


def test_overtaken_run_neither_fixes_nor_reopens(history_url: str) -> None:
    """Two audits of one site overlap; the one that began later finishes first. The older
    observation, finishing last, must not undo the newer one: it marks nothing fixed (X is
    still broken now), reopens nothing (Y was fixed), and is recorded incomplete."""
    from checks.models import Check, Finding, Report, RunInfo, Severity

    def broken(target: str) -> Finding:
        return Finding(Check.BROKEN_LINK, Severity.ERROR, "https://x.se/p", target, "http_404")

    def report(at: dt.datetime, found: list[Finding]) -> Report:
        info = RunInfo(at, at, at.date(), (), (), True, 1, len(found), site="s")
        return Report(info, (), (), tuple(found))

    x, y, z = broken("https://t/x"), broken("https://t/y"), broken("https://t/z")
    t0 = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)
    week = dt.timedelta(days=7)
    with Store(history_url) as s:
        r1 = s.begin_run("s", t0)
        s.finish_run(r1, report(t0, [y, z]))
        older = s.begin_run("s", t0 + week)  # sees y and z (x is not broken yet)
        newer = s.begin_run("s", t0 + week, owner=RunOwner("other-host", 1, "t"))
        ch_newer = s.finish_run(newer, report(t0 + week, [x, z]))  # x broke, y fixed
        assert [i.finding.target for i in ch_newer.fixed] == ["https://t/y"]
        ch_older = s.finish_run(older, report(t0 + week, [y, z]))
        assert ch_older.fixed == () and not ch_older.complete
        assert any("overtaken" in r and str(newer) in r for r in ch_older.incomplete_reasons)
        assert s.run_status(older) == "incomplete"
        assert s.last_run("s") == newer
        open_now = {k[2] for k in s.previous_state("s")}
        assert open_now == {"https://t/x", "https://t/z"}  # y stays fixed, x stays open
        r4 = s.begin_run("s", t0 + 2 * week)
        ch4 = s.finish_run(r4, report(t0 + 2 * week, [x, z]))
        assert ch4.new == () and ch4.fixed == ()  # x still open (not fixed-then-new)
        assert sorted(i.finding.target for i in ch4.still_open) == ["https://t/x", "https://t/z"]
        x_item = next(i for i in ch4.still_open if i.finding.target == "https://t/x")
        assert x_item.since == t0 + week


DELETE_RUN = r"""
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
con.execute("PRAGMA foreign_keys = ON")
con.execute("DELETE FROM runs WHERE id = ?", (int(sys.argv[2]),))
"""


def test_history_write_failure_keeps_the_reports_and_exits_2(
    tmp_path: Path, site: GatedSite
) -> None:
    """The run cannot be stored at the end (here an admin deleted its row mid-audit): the
    audit says so, still writes its reports, exits 2, and no traceback."""
    ua = "sw-deleted"
    cfg = config(tmp_path, site, ua)
    db = tmp_path / "var" / "sw.db"
    site.gate(ua).clear()
    proc = start_cli("audit", "--config", str(cfg), "--as-of", AS_OF, cwd=tmp_path)
    try:
        wait_for(lambda: site.arrived(ua) >= 1, what="the audit mid-crawl")
        subprocess.run(
            [sys.executable, "-c", DELETE_RUN, str(db), "1"], cwd=ROOT, env=cli_env(), check=True
        )
        code, out, err = _release_and_finish(proc, site.gate(ua))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert code == 2, out + err
    assert "run 1 could not be stored in the history: no run 1" in err
    assert "Traceback" not in err
    report = json.loads((tmp_path / f"out-{ua}" / "report.json").read_text(encoding="utf-8"))
    assert report["run"]["complete"] is True
    assert run_statuses(db) == {}
    assert integrity(db) == "ok"
