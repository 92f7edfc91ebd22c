"""An audit's life in the history: begun before the crawl, finished (or abandoned) after.

A run is recorded as ``running`` (with this process as its owner) before the crawl starts,
so a crash or ``kill -9`` leaves a run that is never complete; the next run of the site
marks it ``crashed`` once its process is gone, and only complete runs can mark findings
fixed. Audits of the same site may run at the same time: neither is taken for a crash.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

from sqlalchemy.exc import SQLAlchemyError

from checks.changes import Changes, FlakyPolicy, apply_flakiness, observed_at
from checks.evaluate import sort_key
from checks.models import Report
from checks.suppress import Key, Suppression, newest_by_key, split
from crawler.config import Config
from crawler.engine.audit import site_name
from crawler.history.rows import StoreError
from crawler.history.store import Store
from crawler.rerun.replay import replay_key

#: Set by a worker, in its audit child's environment, to the site whose lock it holds.
SITE_LOCKED_ENV = "SITEWATCH_SITE_LOCKED"


def with_decisions(
    report: Report, decisions: Mapping[Key, Suppression], now: dt.datetime
) -> Report:
    """The report with the editors' decisions in force on its findings recorded in
    ``run.stats["decisions"]`` (shown in report.html; left out of ``--fail-on``)."""
    hidden = split(report.findings, decisions, now)[1]
    if not hidden:
        return report
    rows = [
        [*s.key, s.kind.value, s.by, s.reason, s.until.isoformat() if s.until else ""]
        for _f, s in hidden
    ]
    return replace(report, run=replace(report.run, stats={**report.run.stats, "decisions": rows}))


class HistoryError(Exception):
    """The history database cannot be used (exit code 2)."""


def history_error(cfg: Config, e: BaseException) -> str:
    """A message for a history that cannot be opened: where (a path, or the URL with its
    password masked) and why (with the password, should the driver echo it, masked)."""
    from crawler.history.engine import HistoryURLError, resolve, scrub

    h = cfg.history
    try:
        target = resolve(h.url or h.db, h.password_env)
    except HistoryURLError as bad:
        return str(bad)  # shows the URL masked
    detail = str(e)
    if isinstance(e, SQLAlchemyError):
        detail = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
    return f"history database {target.shown}: {scrub(detail, target)}"


def open_store(cfg: Config) -> Store:
    """The store ``cfg`` names; :class:`HistoryError` (a clear message) if it cannot be used."""
    try:
        return Store.for_config(cfg)
    except (SQLAlchemyError, StoreError, OSError, ValueError) as e:
        raise HistoryError(history_error(cfg, e)) from None


@dataclass
class History:
    store: Store
    site: str
    run_id: int
    flaky: FlakyPolicy
    started: dt.datetime
    #: The store's background close after ``store_run``.
    _closing: threading.Thread | None = field(default=None, init=False, repr=False)

    @classmethod
    def open(cls, cfg: Config) -> History:
        started = dt.datetime.now(dt.UTC)
        try:
            store = open_store(cfg)
            site = site_name(cfg)
            run_id = store.begin_run(
                site,
                started,
                cfg.site.start_urls,
                cfg.effective_scopes(),
                replay_key=replay_key(cfg),
                # A worker's audit: the worker holds the site's lock (crawler/worker/job.py)
                site_locked=os.environ.get(SITE_LOCKED_ENV) == site,
            )
        except (SQLAlchemyError, StoreError, OSError, ValueError) as e:
            raise HistoryError(history_error(cfg, e)) from None
        flaky = FlakyPolicy(runs=cfg.history.flaky_runs, hours=cfg.history.flaky_hours)
        return cls(store, site, run_id, flaky, started)

    def finish(self, report: Report) -> tuple[Report, Changes]:
        """Apply flaky-link grace from the history, store the run, return what changed."""
        report = self.prepare(report)
        changes = self.store_run(report)
        self.wait_closed()
        return report, changes

    @contextlib.contextmanager
    def _or_closed(self) -> Iterator[None]:
        """Close the store if the block fails; a database error becomes :class:`HistoryError`."""
        try:
            yield
        except (SQLAlchemyError, StoreError) as e:
            self.store.close()
            raise HistoryError(
                f"run {self.run_id} could not be stored in the history: {self.store.scrub(str(e))}"
            ) from None
        except BaseException:
            self.store.close()
            raise

    def prepare(self, report: Report) -> Report:
        """The report with flaky-link grace from the history applied (nothing stored yet).

        On failure the store is closed and :class:`HistoryError` raised.
        """
        with self._or_closed():
            state = self.store.previous_state(self.site)
            # Dated as the store dates the findings (first seen: ``observed_at``); the
            # editors' decisions below are made in real time.
            now = observed_at(self.started, report.run.as_of)
            findings = apply_flakiness(report.findings, report.links, state, self.flaky, now)
            decided = self.store.decisions_for(self.site)
        report = replace(report, findings=tuple(sorted(findings, key=sort_key)))
        return with_decisions(report, newest_by_key(decided), self.started)

    def store_run(self, report: Report) -> Changes:
        """Store the run (``report`` from :meth:`prepare`) and close the store: in the
        background once the run is stored (:meth:`wait_closed`), at once on failure."""
        with self._or_closed():
            changes = self.store.finish_run(self.run_id, report)
        self._closing = self.store.close_in_background()
        return changes

    def wait_closed(self) -> None:
        """Wait until the store is closed (its checkpoint done; see ``store_run``)."""
        closing, self._closing = self._closing, None
        if closing is not None:
            closing.join()

    def abandon(self, reason: str) -> None:
        self.store.mark_crashed(self.run_id, reason)
        self.store.close()
