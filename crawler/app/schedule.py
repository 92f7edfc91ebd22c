"""``sitewatch schedule``: weekly audits and emails under APScheduler 3.x.

- One ``BlockingScheduler`` with a persistent SQLAlchemy job store in the history database
  (table ``apscheduler_jobs``), a ``CronTrigger`` from ``[schedule]``, ``coalesce=True``,
  ``max_instances=1`` and a generous ``misfire_grace_time``.
- Exactly once per period: before an audit starts, the history is asked whether this site
  already has a run that started since the period's fire time; if so the job does
  nothing. At start-up, a period whose fire time passed while the scheduler was down (and
  is within ``misfire_grace_time``) gets one catch-up run. Re-registering the job with
  ``replace_existing=True`` resets APScheduler's stored next run time, so the history,
  not the job store, is what decides.
- Every audit runs in a child process (Scrapy's reactor cannot restart in one process)
  with ``schedule.time_limit``; a failure is logged, mailed to ``email.fallback_to`` and
  the scheduler keeps running. SIGTERM/SIGINT shut down cleanly (the child is stopped).
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from crawler.app import processes
from crawler.config import Config, load_config

log = logging.getLogger("sitewatch.schedule")

#: Look-back windows for finding the latest fire time of a cron trigger.
_WINDOWS = (
    dt.timedelta(hours=2),
    dt.timedelta(days=2),
    dt.timedelta(days=9),
    dt.timedelta(days=33),
    dt.timedelta(days=370),
)


def make_trigger(cfg: Config) -> CronTrigger:
    s = cfg.schedule
    return CronTrigger(
        day_of_week=s.day_of_week, hour=s.hour, minute=s.minute, timezone=ZoneInfo(s.timezone)
    )


def previous_fire(trigger: CronTrigger, now: dt.datetime) -> dt.datetime | None:
    """The latest fire time of ``trigger`` at or before ``now`` (None if none in a year)."""
    for window in _WINDOWS:
        t = now - window
        last = None
        nxt = trigger.get_next_fire_time(None, t)
        steps = 0
        while nxt is not None and nxt <= now and steps < 100_000:
            last = nxt
            nxt = trigger.get_next_fire_time(nxt, nxt + dt.timedelta(seconds=1))
            steps += 1
        if last is not None:
            return last
    return None


def site_key(cfg: Config) -> str:
    from crawler.engine.audit import site_name

    return site_name(cfg)


def ran_since(cfg: Config, since: dt.datetime) -> bool:
    """Whether this site has a run (of any outcome) that started at or after ``since``."""
    from crawler.history.store import Store

    with Store.for_config(cfg) as store:
        return any(r.started_at >= since for r in store.runs(site_key(cfg), limit=5))


@dataclass
class JobOutcome:
    ran: bool
    audit_code: int | None = None
    send_code: int | None = None
    reason: str = ""


def _child(args: list[str], timeout: float) -> int:
    """Run ``sitewatch ARGS`` in a child process; -9 when it was stopped for time."""
    return processes.run_command([sys.executable, "-m", "crawler.app.cli", *args], timeout)


def scheduled_audit(
    config_path: str, fire_time: str | None = None, now: dt.datetime | None = None
) -> JobOutcome:
    """The scheduled job: audit once per period in a child, then send the emails.

    Importable by name (APScheduler stores jobs by reference, no lambdas). ``now``: the
    moment whose period is asked about (default: the clock; tests pass one).
    """
    cfg = load_config(config_path)
    if now is None:
        now = dt.datetime.now(ZoneInfo(cfg.schedule.timezone))
    period = previous_fire(make_trigger(cfg), now) or now
    if ran_since(cfg, period):
        log.info("%s: already audited since %s; nothing to do", site_key(cfg), period)
        return JobOutcome(False, reason="already ran this period")
    log.info("%s: audit starting (period %s)", site_key(cfg), period)
    code = _child(["audit", "--config", config_path, "--quiet"], cfg.schedule.time_limit)
    outcome = JobOutcome(True, audit_code=code)
    if code not in (0, 1):
        why = "stopped after the time limit" if code == processes.TIMED_OUT else f"exit code {code}"
        log.error("%s: audit failed (%s)", site_key(cfg), why)
        _mark_crashed(cfg, why)
        _report_failure(cfg, why)
        outcome.reason = why
    outcome.send_code = _child(["send", "--config", config_path], 600)
    return outcome


def _mark_crashed(cfg: Config, why: str) -> None:
    """Record the failed child's run as crashed. Only runs whose process is gone are
    touched: an ad-hoc audit of the same site running meanwhile is left alone."""
    from crawler.history.store import Store

    with Store.for_config(cfg) as store:
        store.reap_runs(site_key(cfg), f"audit process {why}")


def _report_failure(cfg: Config, why: str) -> None:
    """Tell the site's fallback address that a scheduled audit failed."""
    try:
        from crawler.app.commands import send_failure_notice

        send_failure_notice(cfg, f"The scheduled sitewatch audit of {site_key(cfg)} failed: {why}.")
    except Exception as exc:  # the scheduler must keep running
        log.error("could not report the failure: %s", exc)


def build_scheduler(
    config_path: str, *, blocking: bool = True, now: dt.datetime | None = None
) -> Any:
    """A scheduler with the site's weekly job (and a catch-up run if one was missed).

    ``now``: the moment the missed-run check is made at (default: the clock; tests pass
    one). APScheduler itself runs on the clock: a catch-up job runs at once."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    from crawler.history import engine as engines
    from crawler.history.store import Store

    cfg = load_config(config_path)
    config_path = str(Path(config_path).resolve())
    h = cfg.history
    where = h.url or Path(h.db).resolve()
    Store(where, password_env=h.password_env).close()  # create and migrate the history first
    target = engines.resolve(where, h.password_env)
    # The job store lives in the history database, through an engine made like the
    # store's (SQLite: WAL and the same busy timeout, since the history's writers hold the
    # lock for a whole run; PostgreSQL: the same URL and password variable).
    jobs_engine = engines.create(target)
    tz = ZoneInfo(cfg.schedule.timezone)
    cls = BlockingScheduler if blocking else BackgroundScheduler
    scheduler = cls(
        jobstores={
            # The history's writers hold the lock for a whole run: wait like they do.
            "default": SQLAlchemyJobStore(engine=jobs_engine),
            "memory": MemoryJobStore(),
        },
        executors={"default": ThreadPoolExecutor(2)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": cfg.schedule.misfire_grace_time,
        },
        timezone=tz,
    )
    trigger = make_trigger(cfg)
    job_id = f"audit:{site_key(cfg)}"
    scheduler.add_job(
        scheduled_audit,
        trigger,
        args=[config_path],
        id=job_id,
        name=f"weekly audit of {site_key(cfg)}",
        replace_existing=True,
    )
    if now is None:
        now = dt.datetime.now(tz)
    last = previous_fire(trigger, now)
    if (
        last is not None
        and (now - last).total_seconds() <= cfg.schedule.misfire_grace_time
        and not ran_since(cfg, last)
    ):
        log.info("%s: the run due %s was missed; catching up now", site_key(cfg), last)
        scheduler.add_job(
            scheduled_audit,
            "date",  # no run_date: now, by the scheduler's clock
            args=[config_path],
            id=f"catch-up:{site_key(cfg)}",
            jobstore="memory",
            replace_existing=True,
        )
    return scheduler


def run_forever(config_path: str) -> int:
    """``sitewatch schedule``: block until SIGTERM/SIGINT; returns an exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    scheduler = build_scheduler(config_path, blocking=True)

    def shutdown(signum: int, frame: object) -> None:
        log.info("signal %s: shutting down", signum)
        processes.stop_commands()
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    for job in scheduler.get_jobs():
        log.info("scheduled: %s", job)
    scheduler.start()
    log.info("scheduler stopped")
    return 0
