"""The scheduler: real APScheduler, real child-process audits, real SMTP on loopback."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.triggers.cron import CronTrigger

from crawler.app.schedule import build_scheduler, previous_fire, scheduled_audit
from crawler.history import Store
from demo.server import Route, SiteServer
from tests.cli_runner import ROOT
from tests.smtp_server import SmtpTestServer

TZ = "Europe/Stockholm"
#: The tests' clock for the scheduler's own decisions (never the real clock's day or minute):
#: a Thursday noon, three days after the weekly Monday 07:00 run.
THURSDAY = dt.datetime(2026, 11, 26, 12, 0, tzinfo=ZoneInfo(TZ))
PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
    "<body>{body}<footer>Sidan har granskats 2018-03-28</footer></body></html>"
)


@pytest.fixture
def site():
    s = SiteServer("127.0.0.1")
    s.add_route(
        "/sv/index.html",
        Route(body=PAGE.format(title="Vänorter", body='<a href="borta.html">Borta</a>')),
    )
    s.start()
    yield s
    s.stop()


@pytest.fixture
def smtp(tmp_path: Path):
    with SmtpTestServer(tmp_path) as server:
        yield server


def write_config(
    tmp_path: Path, site: SiteServer, smtp: SmtpTestServer, when: dict[str, object]
) -> Path:
    fields = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in when.items())
    cfg = tmp_path / "site.toml"
    cfg.write_text(
        f"""
[site]
name = "schematest"
start_urls = ["{site.url("/sv/index.html")}"]

[report]
out_dir = "{tmp_path / "out"}"

[history]
db = "{tmp_path / "var" / "sw.db"}"

[email]
from_addr = "sitewatch@kommun.example"
fallback_to = "webb@kommun.example"

[email.smtp]
host = "127.0.0.1"
port = {smtp.port}
security = "none"

[schedule]
timezone = "{TZ}"
{fields}

[[owners]]
match = ["{site.base_url}/sv/"]
name = "Karin"
emails = ["karin@kommun.example"]
language = "sv"
""",
        encoding="utf-8",
    )
    return cfg


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def jobs_done(scheduler: Any) -> tuple[threading.Event, list[JobExecutionEvent]]:
    """An event set when a job of ``scheduler`` has finished, and the finished jobs."""
    done = threading.Event()
    events: list[JobExecutionEvent] = []

    def listener(event: JobExecutionEvent) -> None:
        events.append(event)
        done.set()

    scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    return done, events


def runs(tmp_path: Path) -> list:
    db = tmp_path / "var" / "sw.db"
    if not db.exists():
        return []
    with Store(db) as store:
        return store.runs("schematest", limit=50)


@pytest.fixture
def in_root(monkeypatch):
    """Children run ``python -m crawler.app.cli``: make the project importable for them."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(ROOT)


def test_previous_fire_weekly() -> None:
    tz = ZoneInfo(TZ)
    trig = CronTrigger(day_of_week="mon", hour=7, minute=0, timezone=tz)
    now = dt.datetime(2026, 11, 26, 12, 0, tzinfo=tz)  # a Thursday
    assert previous_fire(trig, now) == dt.datetime(2026, 11, 23, 7, 0, tzinfo=tz)
    monday_early = dt.datetime(2026, 11, 23, 6, 59, tzinfo=tz)
    assert previous_fire(trig, monday_early) == dt.datetime(2026, 11, 16, 7, 0, tzinfo=tz)


def test_near_future_trigger_audits_in_child_and_sends(tmp_path, site, smtp, in_root) -> None:
    """The weekly job, moved to fire now, runs a real audit and sends the email."""
    cfg = write_config(tmp_path, site, smtp, {"day_of_week": "mon", "hour": 7, "minute": 0})
    scheduler = build_scheduler(str(cfg), blocking=False, now=THURSDAY)
    # Monday 07:00 is more than misfire_grace_time (a day) before Thursday noon.
    assert scheduler.get_job("catch-up:schematest") is None
    done, events = jobs_done(scheduler)
    scheduler.start()
    try:
        job = scheduler.get_job("audit:schematest")
        assert job is not None and job.coalesce and job.max_instances == 1
        assert job.misfire_grace_time == 86400
        scheduler.modify_job("audit:schematest", next_run_time=dt.datetime.now(ZoneInfo(TZ)))
        assert done.wait(90), "the job did not run"
    finally:
        scheduler.shutdown(wait=True)
    assert [(e.job_id, e.exception) for e in events] == [("audit:schematest", None)]
    assert (events[0].retval.audit_code, events[0].retval.send_code) == (1, 0)
    done_runs = runs(tmp_path)
    assert [r.status for r in done_runs] == ["complete"]
    assert len(smtp.messages) == 1
    msg = smtp.messages[0].message
    assert msg["To"].addresses[0].addr_spec == "karin@kommun.example"
    assert {p.get_content_type() for p in msg.walk()} >= {"text/plain", "text/html"}
    # The job is stored persistently in the same SQLite database.
    import sqlite3

    with sqlite3.connect(tmp_path / "var" / "sw.db") as db:
        ids = [r[0] for r in db.execute("SELECT id FROM apscheduler_jobs")]
    assert ids == ["audit:schematest"]
    # Once per period: calling the job again in the same period does nothing.
    again = scheduled_audit(str(cfg), now=done_runs[0].started_at + dt.timedelta(minutes=1))
    assert again.ran is False and len(runs(tmp_path)) == 1


def test_missed_run_is_caught_up_exactly_once(tmp_path, site, smtp, in_root) -> None:
    """A daily 07:00 run missed (the scheduler starts at 07:03) is caught up once."""
    when = {"day_of_week": "mon-sun", "hour": 7, "minute": 0}
    cfg = write_config(tmp_path, site, smtp, when)
    at = THURSDAY.replace(hour=7, minute=3)

    first = build_scheduler(str(cfg), blocking=False, now=at)
    assert first.get_job("catch-up:schematest") is not None
    # Only the catch-up may run here, whatever the real clock says.
    first.pause_job("audit:schematest")
    done, events = jobs_done(first)
    first.start()
    try:
        assert done.wait(90), "the catch-up did not run"
    finally:
        first.shutdown(wait=True)
    assert [(e.job_id, e.exception) for e in events] == [("catch-up:schematest", None)]
    assert len(runs(tmp_path)) == 1 and len(smtp.messages) == 1
    assert first.get_job("catch-up:schematest") is None  # a date job runs once

    # A restart in the same period: no second catch-up, and the weekly job, should it
    # fire for the period that already ran, does nothing.
    later = at + dt.timedelta(minutes=10)
    second = build_scheduler(str(cfg), blocking=False, now=later)
    assert second.get_job("catch-up:schematest") is None
    assert scheduled_audit(str(cfg), now=later).ran is False
    assert len(runs(tmp_path)) == 1
    assert len(smtp.messages) == 1


def test_failed_audit_is_reported_and_scheduler_survives(tmp_path, smtp, in_root) -> None:
    """An unreachable start URL fails the child; the fallback address hears of it."""
    dead = SiteServer("127.0.0.1")
    dead_url = dead.url("/sv/index.html")
    dead.stop()
    site_stub = type("S", (), {"url": lambda self, p: dead_url, "base_url": "http://127.0.0.1:1"})()
    cfg = write_config(tmp_path, site_stub, smtp, {"day_of_week": "mon", "hour": 7, "minute": 0})
    outcome = scheduled_audit(str(cfg))
    assert outcome.ran and outcome.audit_code == 2
    assert [r.status for r in runs(tmp_path)] == ["crashed"]
    assert wait_for(lambda: len(smtp.messages) == 1, 10)
    notice = smtp.messages[0].message
    assert notice["To"].addresses[0].addr_spec == "webb@kommun.example"
    assert "failed" in notice["Subject"]


def test_schedule_command_stops_cleanly_on_sigterm(tmp_path, site, smtp) -> None:
    cfg = write_config(tmp_path, site, smtp, {"day_of_week": "mon", "hour": 7, "minute": 0})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Pretend this period already ran so that no catch-up audit starts.
    with Store(tmp_path / "var" / "sw.db") as store:
        rid = store.begin_run("schematest", dt.datetime.now(dt.UTC))
        store.mark_crashed(rid, "test")
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler.app.cli", "schedule", "--config", str(cfg)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Scheduler started" in line:  # APScheduler's log: its loop is next
                break
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(lines) + out
    assert "scheduler stopped" in "".join(lines) + out
    assert "Traceback" not in "".join(lines) + out
