"""Administrator commands beside ``audit``: ``send``, ``history`` and ``schedule``.

Exit codes as for ``audit``: 0 done; 1 some emails failed or are unconfirmed (the next
``send`` retries failures); 2 usage or configuration error.
"""

from __future__ import annotations

import datetime as dt
import sys
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from crawler.config import Config, ConfigError, load_config
from crawler.engine.audit import site_name
from crawler.history.runs import HistoryError, history_error, open_store
from crawler.history.store import Store, StoreError

EXIT_OK, EXIT_PROBLEMS, EXIT_ERROR = 0, 1, 2


def _fail(message: str) -> None:
    click.echo(f"sitewatch: {message}", err=True)
    sys.exit(EXIT_ERROR)


def _config(path: str | None, site_id: str | None = None) -> Config:
    try:
        if site_id is not None:
            from crawler.app.sites import load_site

            if path is None:
                _fail("--site needs --config (the file listing the sites)")
            return load_site(str(path), site_id)
        return load_config(path)
    except ConfigError as e:
        _fail(str(e))
        raise AssertionError from e  # unreachable


def _sites(path: str) -> None:
    """Check a deployment's site files (``schedule.sites``) before starting on them."""
    from crawler.app.sites import load_sites

    try:
        load_sites(path)
    except ConfigError as e:
        _fail(str(e))


def _copy_history(cfg: Config, url: str) -> None:
    """``sitewatch history --copy-to URL`` (docs/scaling.md: moving to PostgreSQL)."""
    from dataclasses import replace

    from crawler.history.copy import CopyError, copy_history

    target_cfg = replace(cfg, history=replace(cfg.history, url=url))
    with _store(cfg) as source, _store(target_cfg) as target:
        try:
            counts = copy_history(source, target)
        except CopyError as e:
            _fail(str(e))
        except SQLAlchemyError as e:
            _fail(history_error(target_cfg, e))
    click.echo(f"copied {source.shown} to {target.shown}:")
    for table, n in counts.items():
        click.echo(f"  {table:<16} {n:>9} rows")


def _store(cfg: Config) -> Store:
    try:
        return open_store(cfg)
    except HistoryError as e:
        _fail(str(e))
        raise AssertionError from e  # unreachable


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML file.")
@click.option("--site", "site_id", help="A site of the config's schedule.sites (its ID).")
@click.option("--run", "run_id", type=int, help="Run to send (default: the latest finished).")
@click.option("--dry-run", is_flag=True, help="Show who would get what; send nothing.")
def send(config_path: str | None, site_id: str | None, run_id: int | None, dry_run: bool) -> None:
    """Email each page owner the problems on their pages (once per run and recipient)."""
    from crawler.app.email_setup import setup_from_config
    from reports.delivery import deliver_run, make_transport, messages_for_run

    cfg = _config(config_path, site_id)
    try:
        setup = setup_from_config(cfg)
    except ValueError as e:  # e.g. security = "none" for a host that is not loopback
        _fail(f"config error in {cfg.source}: {e}" if cfg.source else f"config error: {e}")
    setup = _with_workspace(cfg, setup)
    with _store(cfg) as store:
        rid = run_id if run_id is not None else store.last_run(site_name(cfg))
        if rid is None:
            click.echo("sitewatch: no finished run to send; run `sitewatch audit` first")
            sys.exit(EXIT_OK)
        try:
            status = store.run_status(rid)
        except StoreError as e:
            _fail(str(e))
        if status not in ("complete", "incomplete"):
            _fail(f"run {rid} is {status}; only finished runs are sent")
        messages = messages_for_run(store, rid, setup)
        if dry_run:
            click.echo(f"run {rid}: {len(messages)} message(s) would be sent")
            for rcpt, msg in messages.items():
                d = store.delivery(rid, rcpt)
                state = d.state if d else "new"
                click.echo(f"  {rcpt:<40} [{state}] {msg['Subject']}")
            sys.exit(EXIT_OK)
        try:
            transport = make_transport(setup)
        except ValueError as e:
            _fail(str(e))
        result = deliver_run(store, rid, messages, transport)
    where = f" to {setup.outbox}" if setup.smtp is None else ""
    click.echo(
        f"run {rid}: {len(result.sent)} sent{where}, {len(result.already_sent)} already sent, "
        f"{len(result.failed)} failed, {len(result.unconfirmed)} unconfirmed"
    )
    for rcpt, why in result.failed.items():
        click.echo(f"  failed: {rcpt}: {why}", err=True)
    for rcpt in result.unconfirmed:
        click.echo(f"  unconfirmed (not re-sent): {rcpt}", err=True)
    sys.exit(EXIT_OK if result.ok else EXIT_PROBLEMS)


def _with_workspace(cfg: Config, setup: Any) -> Any:
    """The email setup with signed workspace links (``web.base_url``), if configured."""
    from dataclasses import replace

    from crawler.web.links import workspace_links
    from crawler.web.tokens import SecretMissing

    try:
        return replace(setup, workspace=workspace_links(cfg))
    except SecretMissing as e:
        click.echo(f"sitewatch: warning: no workspace links in the emails: {e}", err=True)
        return setup


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML file.")
@click.option("--site", "site_id", help="A site of the config's schedule.sites (its ID).")
@click.option("--limit", default=20, show_default=True, help="How many runs to list.")
@click.option("--all-sites", is_flag=True, help="List runs of every site in the database.")
@click.option(
    "--copy-to",
    metavar="URL",
    help="Copy the whole history into this empty one (postgresql://user@host/db; its "
    "password from the variable named by history.password_env), then stop.",
)
def history(
    config_path: str | None, site_id: str | None, limit: int, all_sites: bool, copy_to: str | None
) -> None:
    """List recent runs: status, counts, what changed and what was delivered."""
    cfg = _config(config_path, site_id)
    if copy_to is not None:
        _copy_history(cfg, copy_to)
        return
    with _store(cfg) as store:
        rows = store.runs(None if all_sites else site_name(cfg), limit=limit)
        unconfirmed = store.unconfirmed_deliveries()
        failed = {r.id: store.deliveries(r.id, ("failed",)) for r in rows if r.deliveries}
    if not rows:
        click.echo("no runs recorded yet")
        return
    click.echo(
        f"{'run':>5}  {'started (UTC)':<16}  {'status':<10} {'pages':>6} {'links':>6} "
        f"{'err':>4} {'warn':>4} {'new':>4} {'open':>4} {'fixed':>5}  deliveries"
    )
    for r in rows:
        deliveries = ", ".join(f"{n} {s}" for s, n in sorted(r.deliveries.items())) or "-"
        started = r.started_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
        click.echo(
            f"{r.id:>5}  {started:<16}  {r.status:<10} {r.pages_crawled:>6} "
            f"{r.links_checked:>6} {r.counts.get('error', 0):>4} {r.counts.get('warning', 0):>4} "
            f"{r.changes.get('new', 0):>4} {r.changes.get('still_open', 0):>4} "
            f"{r.changes.get('fixed', 0):>5}  {deliveries}"
        )
        if r.incomplete_reasons:
            click.echo(f"{'':>7}incomplete: {'; '.join(r.incomplete_reasons)}")
        for d in failed.get(r.id, ()):
            error = d.last_error if len(d.last_error) <= 200 else d.last_error[:197] + "..."
            click.echo(f"{'':>7}not delivered to {d.recipient}: {error} (the next send retries)")
    for d in unconfirmed:
        click.echo(
            f"warning: run {d.run_id} to {d.recipient} was being sent when sitewatch stopped; "
            "it is not re-sent automatically (check the mail server's log)",
            err=True,
        )


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML file.")
def schedule(config_path: str | None) -> None:
    """Run audits and send emails on the configured schedule until stopped (SIGTERM/SIGINT)."""
    from crawler.app.schedule import run_forever

    cfg = _config(config_path)
    if config_path is None:
        _fail("--config: the schedule needs a config file")
    if cfg.schedule.backend == "dramatiq":
        from crawler.worker.enqueue import run_scheduler

        _sites(config_path)
        sys.exit(run_scheduler(config_path))
    if cfg.schedule.sites:
        _fail('schedule.sites: several sites need schedule.backend = "dramatiq"')
    if not cfg.site.start_urls:
        _fail("site.start_urls: a scheduled audit needs start URLs in the config file")
    sys.exit(run_forever(config_path))


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML file.")
@click.option("--processes", default=1, show_default=True, type=click.IntRange(1, 256))
@click.option(
    "--threads",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Audits at once per process (each audit is a child process of its own).",
)
def worker(config_path: str | None, processes: int, threads: int) -> None:
    """Run audits taken from the Redis queue (Dramatiq) until stopped (SIGTERM/SIGINT)."""
    from crawler.worker.run import run_workers

    if config_path is None:
        _fail("--config: the worker needs the deployment's config file")
    _config(config_path)
    _sites(config_path)
    sys.exit(run_workers(str(config_path), processes=processes, threads=threads))


def send_failure_notice(cfg: Config, text: str) -> None:
    """Email the site's fallback address that a scheduled audit failed (once per run)."""
    from crawler.app.email_setup import setup_from_config
    from reports.delivery import deliver_run, make_transport
    from reports.email_build import header_safe

    if not cfg.email.fallback_to:
        return
    setup = setup_from_config(cfg)
    with _store(cfg) as store:
        runs = store.runs(site_name(cfg), limit=1)
        if not runs:
            return
        rid = runs[0].id
        msg = EmailMessage()
        msg["From"] = setup.email.from_addr
        msg["To"] = cfg.email.fallback_to
        msg["Subject"] = header_safe(f"sitewatch: scheduled audit failed – {site_name(cfg)}")
        msg["Date"] = format_datetime(dt.datetime.now(dt.UTC))
        msg["Message-ID"] = make_msgid("sitewatch-failure")
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(text + "\n\nSee `sitewatch history` on the server for details.\n")
        deliver_run(store, rid, {cfg.email.fallback_to: msg}, make_transport(setup))


def _web() -> click.Command:
    from crawler.web.serve import web

    return web


COMMANDS = (send, history, schedule, worker, _web())
