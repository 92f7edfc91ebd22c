"""The history's tables as SQLAlchemy Core ``Table`` objects (one ``MetaData``).

The same schema on SQLite and PostgreSQL: timestamps are aware UTC ISO strings (TEXT),
flags are 0/1 integers, lists and dicts are JSON text. These objects are what the store
queries with; the tables themselves are created and changed only by the Alembic revisions
in ``crawler/history/migrations/versions`` (the baseline is the schema of the last release
before Alembic, ``schema_version`` 6). A new column or table goes in a new revision *and*
here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)

metadata = MetaData()


def _text(name: str, *, default: str | None = "", nullable: bool = False) -> Column[str]:
    """A TEXT column, NOT NULL DEFAULT '' unless told otherwise."""
    server_default = None if default is None else text(repr(default))
    return Column(name, Text, nullable=nullable, server_default=server_default)


def _int(name: str, *, default: int | None = 0, nullable: bool = False) -> Column[int]:
    server_default = None if default is None else text(str(default))
    return Column(name, Integer, nullable=nullable, server_default=server_default)


runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _text("site", default=None),
    _text("status", default=None),
    _text("started_at", default=None),
    _text("finished_at", default=None, nullable=True),
    _text("as_of", default=None, nullable=True),
    _text("start_urls", default="[]"),
    _text("scopes", default="[]"),
    _int("pages_crawled"),
    _int("links_checked"),
    _text("incomplete_reasons", default="[]"),
    _text("stats", default="{}"),
    _int("errors"),
    _int("warnings"),
    _int("infos"),
    _int("new_count"),
    _int("open_count"),
    _int("fixed_count"),
    _int("unchecked_count"),
    _text("owner_host"),
    _int("owner_pid", default=None, nullable=True),
    _text("owner_token"),
    _text("crashed_by"),
    _text("replay_key"),
    _int("rows_run", default=None, nullable=True),
    CheckConstraint(
        "status IN ('running', 'complete', 'incomplete', 'crashed')", name="runs_status"
    ),
    Index("runs_site", "site", "id"),
    sqlite_autoincrement=True,
)


def _run_fk() -> Column[int]:
    return Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False)


pages = Table(
    "pages",
    metadata,
    _run_fk(),
    _text("url", default=None),
    _int("status", default=None, nullable=True),
    _text("title"),
    _text("final_url"),
    _text("content_type"),
    _int("depth"),
    _text("review_date", default=None, nullable=True),
    _text("review_date_source", default=None, nullable=True),
    _int("is_html", default=1),
    _text("error", default=None, nullable=True),
    _int("seq", default=None, nullable=True),
    PrimaryKeyConstraint("run_id", "url"),
    Index("pages_url", "url", "run_id"),
    sqlite_with_rowid=False,
)

links = Table(
    "links",
    metadata,
    _run_fk(),
    _text("url", default=None),
    _text("verdict", default=None),
    _text("detail"),
    _int("status", default=None, nullable=True),
    _text("final_url"),
    _text("content_type"),
    _int("pdf_link"),
    _int("pdf_magic", default=None, nullable=True),
    _int("watched"),
    _int("internal"),
    _text("redirect_chain", default="[]"),
    _text("found_on", default="[]"),
    _int("seq", default=None, nullable=True),
    _text("pdf_problem"),
    PrimaryKeyConstraint("run_id", "url"),
    sqlite_with_rowid=False,
)


def _finding_columns() -> list[Column[Any]]:
    """Columns a finding has wherever it is kept (``run_findings``, ``finding_state``)."""
    return [
        _text("first_seen", default=None),
        _text("last_seen", default=None),
        _int("consecutive_runs", default=None),
        _text("severity", default=None),
        _text("detail"),
        _text("message"),
        _text("link_text"),
        _int("watched"),
        _text("new_url"),
    ]


run_findings = Table(
    "run_findings",
    metadata,
    _run_fk(),
    _text("check_name", default=None),
    _text("page", default=None),
    _text("target", default=None),
    _text("change", default=None),
    *_finding_columns(),
    _int("seq", default=None),
    PrimaryKeyConstraint("run_id", "check_name", "page", "target"),
    CheckConstraint("change IN ('new', 'open', 'fixed', 'unchecked')", name="run_findings_change"),
    sqlite_with_rowid=False,
)

finding_state = Table(
    "finding_state",
    metadata,
    _text("site", default=None),
    _text("check_name", default=None),
    _text("page", default=None),
    _text("target", default=None),
    *_finding_columns(),
    _int("open", default=None),
    _int("last_run_id", default=None),
    _text("closed_at", default=None, nullable=True),
    _int("closed_run_id", default=None, nullable=True),
    PrimaryKeyConstraint("site", "check_name", "page", "target"),
    Index("finding_state_open", "site", "open"),
    sqlite_with_rowid=False,
)

deliveries = Table(
    "deliveries",
    metadata,
    _run_fk(),
    _text("recipient", default=None),
    _text("state", default=None),
    _int("attempts"),
    _text("message_id"),
    _text("last_error"),
    _text("created_at", default=None),
    _text("updated_at", default=None),
    _text("sent_at", default=None, nullable=True),
    PrimaryKeyConstraint("run_id", "recipient"),
    CheckConstraint(
        "state IN ('pending', 'sending', 'sent', 'failed')", name="deliveries_state_check"
    ),
    Index("deliveries_state", "state"),
)

delivery_log = Table(
    "delivery_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _int("run_id", default=None),
    _text("recipient", default=None),
    _text("at", default=None),
    _text("state", default=None),
    _text("detail"),
    Index("delivery_log_run", "run_id", "recipient"),
    sqlite_autoincrement=True,
)

#: The re-run cache (``crawler.rerun.fetch_cache``): per in-scope URL and probe mode, the
#: validators of the last 2xx answer and what was learnt from its body (zlib JSON).
fetch_cache = Table(
    "fetch_cache",
    metadata,
    _text("profile", default=None),
    _text("url", default=None),
    _int("mode", default=None),
    _int("run_id", default=None),
    _text("fetched_at", default=None),
    _text("etag"),
    _text("last_modified"),
    Column("facts", LargeBinary, nullable=False),
    PrimaryKeyConstraint("profile", "url", "mode"),
)

#: Per outside target, the last good probe and when it was made.
link_cache = Table(
    "link_cache",
    metadata,
    _text("profile", default=None),
    _text("url", default=None),
    _int("mode", default=None),
    _int("run_id", default=None),
    _text("checked_at", default=None),
    _text("probe", default=None),
    PrimaryKeyConstraint("profile", "url"),
)

# --- scale-out (revision 0002) ------------------------------------------------------------

#: Idempotent enqueue: one row per (site, period) ever enqueued (``Store.claim_period``).
claims = Table(
    "claims",
    metadata,
    _text("site", default=None),
    _text("period", default=None),
    _text("claimed_at", default=None),
    _text("claimed_by"),
    PrimaryKeyConstraint("site", "period"),
)

#: The per-site lock on SQLite (``Store.site_lock``): a lease renewed while the audit runs,
#: taken over once expired or its owner process is gone. (PostgreSQL: an advisory lock.)
site_leases = Table(
    "site_leases",
    metadata,
    _text("site", default=None),
    _text("owner_host", default=None),
    _int("owner_pid", default=None),
    _text("owner_token"),
    _text("acquired_at", default=None),
    _text("expires_at", default=None),
    PrimaryKeyConstraint("site"),
)

# --- editors' decisions (revision 0003) ----------------------------------------------------

#: Acknowledged / not a problem / snoozed findings (``checks.suppress``); never deleted:
#: undoing sets ``revoked_at``/``revoked_by``.
decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _text("site", default=None),
    _text("check_name", default=None),
    _text("page", default=None),
    _text("target", default=None),
    _text("detail"),
    _text("severity", default=None),
    _text("kind", default=None),
    _text("reason"),
    _text("until", default=None, nullable=True),
    _text("created_by", default=None),
    _text("created_at", default=None),
    _text("revoked_at", default=None, nullable=True),
    _text("revoked_by"),
    CheckConstraint("kind IN ('acknowledge', 'dismiss', 'snooze')", name="decisions_kind"),
    Index("decisions_site", "site", "revoked_at"),
    sqlite_autoincrement=True,
)

#: Append-only audit trail of the workspace's actions (decide, undo).
decision_log = Table(
    "decision_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _text("at", default=None),
    _text("actor", default=None),
    _text("action", default=None),
    _int("decision_id", default=None),
    _text("site", default=None),
    _text("check_name", default=None),
    _text("page", default=None),
    _text("target", default=None),
    _text("reason"),
    _text("until", default=None, nullable=True),
    Index("decision_log_site", "site", "id"),
    sqlite_autoincrement=True,
)

__all__ = [
    "claims",
    "decision_log",
    "decisions",
    "deliveries",
    "delivery_log",
    "fetch_cache",
    "finding_state",
    "link_cache",
    "links",
    "metadata",
    "pages",
    "run_findings",
    "runs",
    "site_leases",
]
