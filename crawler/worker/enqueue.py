"""``sitewatch schedule`` with ``schedule.backend = "dramatiq"``: enqueue, never audit.

- One message per site and period: the period is the cron trigger's latest fire time
  (``crawler.app.schedule.previous_fire``); ``Store.claim_period(site, period)`` is true only
  for the first claim ever of that pair, so a restart, a catch-up and the weekly fire never
  enqueue a period twice. A claim whose message could not be sent (Redis down) is
  released and tried again at the next start or fire.
- Exactly one scheduler: it holds the history's lock named :data:`SCHEDULER_LOCK` for its
  whole life (PostgreSQL advisory lock / SQLite lease); a second one started by mistake
  logs that and exits without doing anything. The APScheduler job store is in memory: the
  claims, not the job store, remember what was enqueued.
- At start-up the current period is enqueued if its fire time is within
  ``schedule.misfire_grace_time`` (a catch-up after downtime); then at every fire time.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from crawler.app.schedule import make_trigger, previous_fire
from crawler.app.sites import load_sites
from crawler.config import Config, load_config

log = logging.getLogger("sitewatch.schedule")

#: The lock the one scheduler holds (a name no site can have: site names have no "__").
SCHEDULER_LOCK = "__scheduler__"


def period_key(fire: dt.datetime) -> str:
    """A period's name: its fire time in UTC, ISO 8601."""
    return fire.astimezone(dt.UTC).isoformat(timespec="seconds")


def enqueue_period(
    config_path: str, period: str, send: Callable[[str, str], Any], store: Any
) -> list[str]:
    """Claim and send ``period`` for every site; returns the sites enqueued now."""
    sent: list[str] = []
    for site_id in load_sites(config_path):
        if not store.claim_period(site_id, period):
            continue
        try:
            send(site_id, period)
        except Exception as e:  # Redis down: forget the claim, try again later
            store.release_claim(site_id, period)
            log.error("%s %s: could not enqueue: %s", site_id, period, e)
            continue
        log.info("%s %s: enqueued", site_id, period)
        sent.append(site_id)
    return sent


def due_period(cfg: Config, now: dt.datetime, *, catch_up: bool) -> str | None:
    """The period to enqueue at ``now``: the latest fire time (at start-up only when it is
    within ``schedule.misfire_grace_time``)."""
    last = previous_fire(make_trigger(cfg), now)
    if last is None:
        return None
    if catch_up and (now - last).total_seconds() > cfg.schedule.misfire_grace_time:
        return None
    return period_key(last)


def run_scheduler(config_path: str) -> int:
    """Block until SIGTERM/SIGINT, enqueuing each period; 0 also when another scheduler
    holds the lock (this one then does nothing)."""
    from crawler.history import SiteBusy
    from crawler.history.runs import HistoryError, open_store

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = load_config(config_path)
    load_sites(config_path)  # a bad site file stops the start, with its message
    try:
        store = open_store(cfg)
    except HistoryError as e:
        log.error("%s", e)
        return 2
    with store:
        try:
            with store.site_lock(SCHEDULER_LOCK):
                return _serve(config_path, cfg)
        except SiteBusy:
            log.error(
                "another scheduler is running for this history (%s holds %r); this one does "
                "nothing and exits",
                store.shown,
                SCHEDULER_LOCK,
            )
            return 0


def _serve(config_path: str, cfg: Config) -> int:
    from apscheduler.schedulers.blocking import BlockingScheduler

    from crawler.history.runs import HistoryError, open_store
    from crawler.worker.actor import declare
    from crawler.worker.broker import make_broker

    actor = declare(make_broker(cfg), config_path, cfg)
    tz = ZoneInfo(cfg.schedule.timezone)

    def send(site_id: str, period: str) -> None:
        actor.send(site_id, period)

    def tick(catch_up: bool = False) -> None:
        period = due_period(cfg, dt.datetime.now(tz), catch_up=catch_up)
        if period is None:
            return
        try:  # a store of its own in the job's thread
            with open_store(cfg) as store:
                enqueue_period(config_path, period, send, store)
        except HistoryError as e:
            log.error("%s: nothing enqueued: %s", period, e)

    scheduler = BlockingScheduler(
        timezone=tz,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
    )
    scheduler.add_job(tick, make_trigger(cfg), id="enqueue", name="enqueue the sites' audits")

    def shutdown(signum: int, frame: object) -> None:
        log.info("signal %s: shutting down", signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    tick(catch_up=True)
    log.info("scheduler started (dramatiq backend, %d site(s))", len(load_sites(config_path)))
    scheduler.start()
    log.info("scheduler stopped")
    return 0
