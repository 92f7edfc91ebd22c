"""Orchestration of one ``sitewatch audit``: config → crawl → checks → reports → exit code."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checks.evaluate import at_or_above
from checks.models import Report
from crawler.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from crawler.app.processes import Forked
    from crawler.history.runs import History

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def err(message: str) -> None:
    sys.stderr.write(f"sitewatch: {message}\n")


def load(config_path: str | None, overrides: dict[str, Any], site_id: str | None = None) -> Config:
    if site_id is not None:
        from crawler.app.sites import load_site

        if config_path is None:
            raise ConfigError(None, None, "--site needs --config (the file listing the sites)")
        cfg = load_site(config_path, site_id, overrides)
    else:
        cfg = load_config(config_path, overrides)
    if not cfg.site.start_urls:
        raise ConfigError(
            cfg.source, "site.start_urls", "no start URL: give START_URLS or site.start_urls"
        )
    return cfg


def summary_line(report: Report) -> str:
    c = report.counts()
    run = report.run
    secs = run.stats.get("seconds", 0)
    state = "complete" if run.complete else "INCOMPLETE: " + "; ".join(run.incomplete_reasons)
    notes = run.stats.get("notes")
    # A note (crawler.pages.refresh.dead_end_note) gets a line of its own.
    noted = "".join(f"\nnote: {n}" for n in notes) if isinstance(notes, list) else ""
    return (
        f"sitewatch: {run.pages_crawled} pages, {run.links_checked} link targets checked "
        f"in {secs} s ({state}) — {c['error']} errors, {c['warning']} warnings, "
        f"{c['info']} info{noted}"
    )


def exit_code(cfg: Config, report: Report, *, include_dismissed: bool = False) -> int:
    """1 when a finding is at or above ``--fail-on``; findings an editor acknowledged,
    dismissed or snoozed (``run.stats["decisions"]``) count only with ``include_dismissed``."""
    level, checks = cfg.fail_threshold()
    findings = report.findings
    decided = report.run.stats.get("decisions")
    if decided and not include_dismissed and isinstance(decided, list):
        hidden = {tuple(d[:3]) for d in decided}
        findings = tuple(f for f in findings if f.key not in hidden)
    return EXIT_FINDINGS if at_or_above(findings, level, checks) else EXIT_OK


def audit_command(
    *,
    config_path: str | None,
    overrides: dict[str, Any],
    as_of: dt.date,
    site_id: str | None = None,
    quiet: bool = False,
    verbose: bool = False,
    progress: bool = False,
    record: bool = True,
    use_cache: bool = True,
    include_dismissed: bool = False,
) -> int:
    try:
        cfg = load(config_path, overrides, site_id)
    except ConfigError as e:
        err(str(e))
        return EXIT_ERROR
    new_db = record and _new_database(cfg)  # before the schema child creates it
    from crawler.app.processes import collector_paused

    with collector_paused():
        from crawler.engine.audit import (
            AuditError,
            AuditOptions,
            load_scrapy,
            may_replay,
            run_audit,
        )
        from crawler.history.runs import History, HistoryError

    history = None
    if record:
        # The audit will crawl: import Scrapy while a child brings the schema up to date
        # (two cores busy, not one). Not when the previous run may be replayed
        # (crawler.rerun.replay): an unchanged site needs no Scrapy at all, and
        # History.open checks the schema itself.
        crawls = new_db or not (use_cache and may_replay(cfg))
        schema = _schema_ahead(cfg) if crawls else None
        if schema is not None:
            load_scrapy()
            schema.wait()  # its outcome does not matter: History.open says what is wrong
        try:
            history = History.open(cfg)
        except HistoryError as e:
            err(str(e))
            return EXIT_ERROR
    opts = AuditOptions(
        as_of=as_of,
        progress=progress,
        verbose=verbose,
        cache_run=history.run_id if history else None,
        no_cache=not use_cache,
    )
    try:
        report = run_audit(cfg, opts)
    except AuditError as e:
        if history:
            history.abandon(f"could not run: {e}")
        err(f"the audit could not run: {e}")
        return EXIT_ERROR
    except BaseException:
        if history:
            history.abandon("crashed")
        raise
    sitemap = report.run.stats.get("sitemap")
    for note in sitemap.get("notes", ()) if isinstance(sitemap, dict) else ():
        err(f"note: {note}")
    try:
        return _finish(cfg, report, history, quiet, include_dismissed)
    finally:
        close = getattr(report.links, "close", None)
        if close is not None:
            close()  # the crawl's reference spill (crawler.state.crawl_state.Links)


def _new_database(cfg: Config) -> bool:
    """Whether the history is a SQLite file that did not exist before this audit (it
    holds no run to replay). False for a database URL: that may hold one."""
    return not cfg.history.url and not Path(cfg.history.db).exists()


def _schema_ahead(cfg: Config) -> Forked | None:
    """Bring the history database to the current schema in a forked child while this
    process imports Scrapy (``load_scrapy``, ~0.25 s). A new database's migrations need
    Alembic (~0.15 s of imports and statements), which then never loads in the audit
    process. The child does what ``History.open`` does first (``migrate.ensure``:
    idempotent, and locked against a concurrent migration); should it fail,
    ``History.open`` fails the same way and says why. None: no child (no fork here).
    Forked after this process has imported SQLAlchemy, which the child then has already:
    forked before, both imported it at once, and on this project's 2-core machine the two
    imports slowed each other (docs/decisions/0009-schema-child.md).

    SQLite only: on PostgreSQL a server that does not answer would be waited for twice
    (by the child, then by ``History.open``); there the audit process migrates itself."""
    if cfg.history.url and not cfg.history.url.startswith("sqlite"):
        return None
    from crawler.app import processes

    def migrate(_sock: object) -> int:
        from crawler.history.store import Store

        Store.for_config(cfg).close()
        return 0

    return processes.fork(migrate)


def _finish(
    cfg: Config,
    report: Report,
    history: History | None,
    quiet: bool,
    include_dismissed: bool = False,
) -> int:
    """Store the run and write the reports."""
    from crawler.app.report_writer import start_reports
    from crawler.history.runs import HistoryError

    changes_line = ""
    history_failed = False
    if history:
        try:
            report = history.prepare(report)
        except HistoryError as e:  # the reports are still written; exit 2 says it
            err(str(e))
            history_failed = True
    out_dir = Path(cfg.report.out_dir)
    # The reports start rendering in a forked child (crawler.app.report_writer.PARALLEL) while this
    # process stores the run; then this process renders the formats the child has not
    # reached yet.
    pending = None
    write_error: OSError | None = None
    try:
        pending = start_reports(report, out_dir, cfg.report.formats)
    except OSError as e:
        write_error = e
    try:
        if history and not history_failed:
            try:
                changes = history.store_run(report)
            except HistoryError as e:
                err(str(e))
                history_failed = True
            else:
                c = changes.counts()
                changes_line = (
                    f"history: run {history.run_id} — {c.get('new', 0)} new, "
                    f"{c.get('still_open', 0)} still open, {c.get('fixed', 0)} fixed"
                    + ("" if changes.complete else " (incomplete run: nothing marked fixed)")
                )
    except BaseException:
        if pending is not None:
            pending.abort()
        raise
    try:
        if pending is None:
            assert write_error is not None
            raise write_error
        written = pending.finish()
    except OSError as e:
        err(f"cannot write reports to {out_dir}: {e.strerror or e}")
        return EXIT_ERROR
    finally:
        if history:
            history.wait_closed()  # closed while the reports rendered
    if not quiet:
        print(summary_line(report))
        if changes_line:
            print(changes_line)
        for fmt, path in written.items():
            print(f"  {fmt:<5} {path}")
    if history_failed:
        return EXIT_ERROR
    return exit_code(cfg, report, include_dismissed=include_dismissed)
