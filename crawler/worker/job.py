"""One ``audit_site`` message: the site's lock, one audit in a child process, the emails.

- The site's lock (``Store.site_lock``: a PostgreSQL advisory lock, or a SQLite lease row)
  is held by this worker for the audit: a second message for the site (a duplicate, or
  one redelivered while the first still runs) finds it busy and is looked at again later.
  So are the locks of the hosts the site crawls (:func:`lock_names`): per-host politeness
  across workers.
- Under the lock, a period that already has a finished run (complete or incomplete) is not
  audited again; a crashed run (a worker killed mid-crawl) does not count, so the
  redelivered message audits the site.
- The audit is ``sitewatch audit --config MAIN --site ID`` in a child process
  (``crawler.app.processes``: one audit per process, stopped after ``worker.time_limit``, killed
  with its worker).
- Then ``sitewatch send`` for the site, whatever happened: deliveries are claimed once per
  (run, recipient) in the history, so a send repeated by a duplicate or a redelivered
  message sends nothing twice, and one that was cut short is completed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from crawler.app import processes
from crawler.app.sites import load_site, site_args
from crawler.config import Config, ConfigError

if TYPE_CHECKING:
    from crawler.history.store import Store

log = logging.getLogger("sitewatch.worker")

#: Seconds ``sitewatch send`` may take.
SEND_LIMIT = 600


@dataclass
class JobOutcome:
    #: "audited", "done" (the period had a finished run), "busy" (the site's lock is held
    #: elsewhere), "failed" (the audit's child failed) or "rejected" (bad message/config).
    action: str
    audit_code: int | None = None
    send_code: int | None = None
    reason: str = ""
    #: Whether Dramatiq should try the message again (failed audits, not time limits).
    retry: bool = False


def parse_period(period: str) -> dt.datetime:
    """The period's start (an ISO 8601 time; UTC when it names no zone)."""
    when = dt.datetime.fromisoformat(period)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def lock_names(cfg: Config, site_id: str) -> list[str]:
    """The locks an audit of the site holds: the site's, then one per host it crawls
    (``host:NAME``), so two sites on one host are never crawled at once and the host sees
    at most one audit's ``crawl.per_host_concurrency`` (docs/scaling.md)."""
    hosts = sorted({urlsplit(s).hostname or "" for s in cfg.effective_scopes()} - {""})
    return [site_id, *(f"host:{h}" for h in hosts)]


def finished_since(store: Store, site_id: str, since: dt.datetime) -> bool:
    """Whether ``site_id`` has a complete or incomplete run started at or after ``since``."""
    runs = store.runs(site_id, limit=50)
    return any(r.status in ("complete", "incomplete") and r.started_at >= since for r in runs)


def run_job(config_path: str, site_id: str, period: str) -> JobOutcome:
    """Handle one message (never raises for a bad site or period: those are logged)."""
    from crawler.history import SiteBusy
    from crawler.history.runs import HistoryError, open_store

    try:
        cfg = load_site(config_path, site_id)
        since = parse_period(period)
    except (ConfigError, ValueError) as e:
        log.error("%s %s: message dropped: %s", site_id, period, e)
        return JobOutcome("rejected", reason=str(e))
    try:
        with open_store(cfg) as store, contextlib.ExitStack() as locks:
            for name in lock_names(cfg, site_id):
                locks.enter_context(store.site_lock(name))
            outcome = _audit_once(store, cfg, config_path, site_id, period, since)
    except SiteBusy as e:
        return JobOutcome("busy", reason=str(e))
    except HistoryError as e:
        log.error("%s %s: %s", site_id, period, e)
        return JobOutcome("failed", reason=str(e), retry=True)
    if processes.shutting_down.is_set():
        return outcome  # the worker is being stopped: the retried message sends
    send_args = ["send", *site_args(config_path, site_id)]
    outcome.send_code = processes.run_sitewatch(send_args, SEND_LIMIT)
    log.info("%s %s: send exit %s", site_id, period, outcome.send_code)
    return outcome


def _audit_once(
    store: Store, cfg: Config, config_path: str, site_id: str, period: str, since: dt.datetime
) -> JobOutcome:
    if finished_since(store, site_id, since):
        log.info("%s %s: already audited this period; no audit", site_id, period)
        return JobOutcome("done")
    log.info("%s %s: audit started (worker %d)", site_id, period, os.getpid())
    args = ["audit", *site_args(config_path, site_id), "--quiet"]
    from crawler.history.runs import SITE_LOCKED_ENV

    # Under the site's lock: the child's begin_run marks every earlier running run of the
    # site crashed, also one left by a worker killed on another machine.
    code = processes.run_sitewatch(args, cfg.worker.time_limit, env={SITE_LOCKED_ENV: site_id})
    log.info("%s %s: audit finished, exit %d (worker %d)", site_id, period, code, os.getpid())
    if code in (0, 1):
        return JobOutcome("audited", audit_code=code)
    if processes.shutting_down.is_set():  # SIGTERM to the worker: try again later
        why = "stopped with its worker"
        log.warning("%s %s: audit %s; the message is retried", site_id, period, why)
        store.reap_runs(site_id, f"audit process {why}")
        return JobOutcome("failed", audit_code=code, reason=why, retry=True)
    why = "stopped after worker.time_limit" if code == -9 else f"exit code {code}"
    log.error("%s %s: audit failed (%s)", site_id, period, why)
    store.reap_runs(site_id, f"audit process {why}")
    from crawler.app.schedule import _report_failure

    _report_failure(cfg, why)
    return JobOutcome("failed", audit_code=code, reason=why, retry=code != -9)
