"""The ``sitewatch`` command line: a thin click layer over library code.

Exit codes (README.md, docs/report-format.md): 0 nothing at or above ``--fail-on``; 1 findings at or
above it; 2 usage or configuration error, or the audit could not run.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import click

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2

FORMATS = ("html", "json", "csv", "junit", "md")


class UsageFailure(click.ClickException):
    """A message for the user and exit code 2."""

    exit_code = EXIT_ERROR

    def show(self, file: Any = None) -> None:
        click.echo(f"sitewatch: {self.format_message()}", err=True)


def _as_of(value: str | None) -> dt.date:
    if not value:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UsageFailure(f"--as-of: expected a date YYYY-MM-DD, got {value!r}") from None


def _overrides(**opts: Any) -> dict[str, Any]:
    """Command-line flags as a config overlay (only the flags that were given)."""
    out: dict[str, dict[str, Any]] = {}

    def put(section: str, key: str, value: Any) -> None:
        if value is not None and value != ():
            out.setdefault(section, {})[key] = value

    put("site", "start_urls", list(opts["start_urls"]) or None)
    put("site", "scopes", list(opts["scope"]) or None)
    put("site", "exclude", list(opts["exclude"]) or None)
    put("crawl", "sitemaps", list(opts.get("sitemap") or ()) or None)
    put("report", "out_dir", opts["out"])
    if opts["formats"]:
        put("report", "formats", [f.strip() for f in opts["formats"].split(",") if f.strip()])
    put("report", "fail_on", opts["fail_on"])
    put("freshness", "max_age_days", opts["max_age"])
    put("crawl", "max_pages", opts["max_pages"])
    put("crawl", "concurrency", opts["concurrency"])
    return out


#: Commands defined in ``crawler.app.commands`` (imported only when one of them is run or
#: listed, so an audit does not load the email and scheduling code).
LAZY_COMMANDS = ("send", "history", "schedule", "web", "worker")


class _Group(click.Group):
    """The ``sitewatch`` group: ``audit`` here, :data:`LAZY_COMMANDS` loaded on demand."""

    def _load_lazy(self) -> None:
        from crawler.app.commands import COMMANDS

        for cmd in COMMANDS:
            if cmd.name not in self.commands:
                self.add_command(cmd)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_lazy()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            self._load_lazy()
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sitewatch")
def main() -> None:
    """sitewatch: content-freshness and link audits for public-sector websites."""


@main.command()
@click.argument("start_urls", nargs=-1)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML file.")
@click.option("--site", "site_id", help="Audit this site of the config's schedule.sites (its ID).")
@click.option("--scope", multiple=True, help="URL prefix the crawl may follow (repeatable).")
@click.option("--out", help="Directory for the reports (default: out).")
@click.option("--format", "formats", help="Comma-separated: html,json,csv,junit,md.")
@click.option("--max-age", type=int, help="Days after which a page is stale (default 365).")
@click.option("--as-of", help="Pin 'today' (YYYY-MM-DD) for reproducible runs.")
@click.option("--max-pages", type=int, help="Stop after this many pages.")
@click.option("--exclude", multiple=True, help="Regex of URLs not to check (repeatable).")
@click.option(
    "--sitemap",
    multiple=True,
    help="Sitemap URL whose in-scope pages are audited too (repeatable; crawl.sitemaps).",
)
@click.option("--fail-on", help="A level (error, warning, info) or check names, comma-separated.")
@click.option("--concurrency", type=int, help="Requests in flight overall.")
@click.option("--quiet", "-q", is_flag=True, help="No progress line and no summary.")
@click.option("--verbose", "-v", is_flag=True, help="Show Scrapy's log.")
@click.option(
    "--no-history",
    is_flag=True,
    help="Do not record the run (no flaky-link grace, no re-run cache either).",
)
@click.option(
    "--no-cache",
    is_flag=True,
    help="Full run: reuse nothing from earlier runs (no conditional requests, every outside "
    "link checked again). What this run learns is still stored for the next one.",
)
@click.option(
    "--include-dismissed",
    is_flag=True,
    help="--fail-on counts findings editors acknowledged, dismissed or snoozed too.",
)
def audit(
    config_path: str | None,
    site_id: str | None,
    as_of: str | None,
    quiet: bool,
    verbose: bool,
    no_history: bool,
    no_cache: bool,
    include_dismissed: bool,
    **opts: Any,
) -> None:
    """Crawl START_URLS (or the config's start URLs) and write reports."""
    from crawler.app.run import audit_command

    code = audit_command(
        config_path=config_path,
        site_id=site_id,
        overrides=_overrides(**opts),
        as_of=_as_of(as_of),
        quiet=quiet,
        verbose=verbose,
        progress=not quiet and sys.stderr.isatty(),
        record=not no_history,
        use_cache=not no_cache,
        include_dismissed=include_dismissed,
    )
    sys.exit(code)


def entry() -> None:
    """The ``sitewatch`` console script and ``python -m crawler.app.cli``.

    Runs :func:`main`; once a command has finished (files written and closed, history
    committed and closed, output flushed), the process ends with
    ``crawler.app.processes.exit_now`` instead of tearing the interpreter down. Library
    callers and tests that invoke :func:`main` in-process are not affected.
    """
    try:
        main()
    except SystemExit as e:
        code = e.code
    else:  # pragma: no cover - click's standalone mode always ends with SystemExit
        code = 0
    import threading

    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon for t in threading.enumerate()):
        sys.exit(code)  # a thread still working: Python's own shutdown waits for it
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): Python prints it and exits 1
        sys.stderr.write(f"{code}\n")
        status = 1
    from crawler.app.processes import exit_now

    exit_now(status)


if __name__ == "__main__":  # pragma: no cover
    entry()
