"""The history's schema before Alembic (sitewatch 0.1.0: ``schema_version`` 1..6), kept for
two jobs:

- the Alembic baseline revision (``0001_baseline``) creates exactly these tables, so a new
  database and an upgraded old one are the same (on PostgreSQL with the few spellings
  SQLite alone has translated by :func:`for_dialect`);
- ``crawler.history.migrate`` upgrades a SQLite database made by an older release in
  place: the statements after its ``schema_version`` are applied, then Alembic takes over.

Frozen: never edit. New schema changes are Alembic revisions.
"""

from __future__ import annotations

import re

from sqlalchemy import Connection

#: Schema migrations; version N is MIGRATIONS[N - 1]. Append only.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            site TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('running', 'complete', 'incomplete', 'crashed')),
            started_at TEXT NOT NULL,
            finished_at TEXT,
            as_of TEXT,
            start_urls TEXT NOT NULL DEFAULT '[]',
            scopes TEXT NOT NULL DEFAULT '[]',
            pages_crawled INTEGER NOT NULL DEFAULT 0,
            links_checked INTEGER NOT NULL DEFAULT 0,
            incomplete_reasons TEXT NOT NULL DEFAULT '[]',
            stats TEXT NOT NULL DEFAULT '{}',
            errors INTEGER NOT NULL DEFAULT 0,
            warnings INTEGER NOT NULL DEFAULT 0,
            infos INTEGER NOT NULL DEFAULT 0,
            new_count INTEGER NOT NULL DEFAULT 0,
            open_count INTEGER NOT NULL DEFAULT 0,
            fixed_count INTEGER NOT NULL DEFAULT 0,
            unchecked_count INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX runs_site ON runs (site, id)",
        """CREATE TABLE pages (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            url TEXT NOT NULL,
            status INTEGER,
            title TEXT NOT NULL DEFAULT '',
            final_url TEXT NOT NULL DEFAULT '',
            content_type TEXT NOT NULL DEFAULT '',
            depth INTEGER NOT NULL DEFAULT 0,
            review_date TEXT,
            review_date_source TEXT,
            is_html INTEGER NOT NULL DEFAULT 1,
            error TEXT,
            PRIMARY KEY (run_id, url)
        ) WITHOUT ROWID""",
        "CREATE INDEX pages_url ON pages (url, run_id)",
        """CREATE TABLE links (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            url TEXT NOT NULL,
            verdict TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            status INTEGER,
            final_url TEXT NOT NULL DEFAULT '',
            content_type TEXT NOT NULL DEFAULT '',
            pdf_link INTEGER NOT NULL DEFAULT 0,
            pdf_magic INTEGER,
            watched INTEGER NOT NULL DEFAULT 0,
            internal INTEGER NOT NULL DEFAULT 0,
            redirect_chain TEXT NOT NULL DEFAULT '[]',
            found_on TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (run_id, url)
        ) WITHOUT ROWID""",
        """CREATE TABLE run_findings (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            check_name TEXT NOT NULL,
            page TEXT NOT NULL,
            target TEXT NOT NULL,
            change TEXT NOT NULL CHECK (change IN ('new', 'open', 'fixed', 'unchecked')),
            severity TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            message TEXT NOT NULL DEFAULT '',
            link_text TEXT NOT NULL DEFAULT '',
            watched INTEGER NOT NULL DEFAULT 0,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            consecutive_runs INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (run_id, check_name, page, target)
        ) WITHOUT ROWID""",
        """CREATE TABLE finding_state (
            site TEXT NOT NULL,
            check_name TEXT NOT NULL,
            page TEXT NOT NULL,
            target TEXT NOT NULL,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            consecutive_runs INTEGER NOT NULL,
            severity TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            message TEXT NOT NULL DEFAULT '',
            link_text TEXT NOT NULL DEFAULT '',
            watched INTEGER NOT NULL DEFAULT 0,
            open INTEGER NOT NULL,
            last_run_id INTEGER NOT NULL,
            closed_at TEXT,
            closed_run_id INTEGER,
            PRIMARY KEY (site, check_name, page, target)
        ) WITHOUT ROWID""",
        "CREATE INDEX finding_state_open ON finding_state (site, open)",
        """CREATE TABLE deliveries (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            recipient TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            message_id TEXT NOT NULL DEFAULT '',
            last_error TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            sent_at TEXT,
            PRIMARY KEY (run_id, recipient)
        )""",
        "CREATE INDEX deliveries_state ON deliveries (state)",
        """CREATE TABLE delivery_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER NOT NULL,
            recipient TEXT NOT NULL,
            at TEXT NOT NULL,
            state TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX delivery_log_run ON delivery_log (run_id, recipient)",
    ),
    # 2: where a permanently moved link now leads (Finding.new_url), for the emails.
    (
        "ALTER TABLE run_findings ADD COLUMN new_url TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE finding_state ADD COLUMN new_url TEXT NOT NULL DEFAULT ''",
    ),
    # 3: the process that owns a run (concurrent audits of one site), and who marked a
    # run crashed (only its owner's own word is final). Old rows have no owner.
    (
        "ALTER TABLE runs ADD COLUMN owner_host TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE runs ADD COLUMN owner_pid INTEGER",
        "ALTER TABLE runs ADD COLUMN owner_token TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE runs ADD COLUMN crashed_by TEXT NOT NULL DEFAULT ''",
    ),
    # 4: the re-run cache (crawler/rerun/fetch_cache.py). ``fetch_cache``: per in-scope URL and
    # probe mode, the validators of the last 2xx answer and what was learnt from its body
    # (zlib JSON), for conditional requests. ``link_cache``: per outside target, the last
    # good probe and when it was made. ``profile`` = site + the settings the facts depend on.
    (
        """CREATE TABLE fetch_cache (
            profile TEXT NOT NULL,
            url TEXT NOT NULL,
            mode INTEGER NOT NULL,
            run_id INTEGER NOT NULL,
            fetched_at TEXT NOT NULL,
            etag TEXT NOT NULL DEFAULT '',
            last_modified TEXT NOT NULL DEFAULT '',
            facts BLOB NOT NULL,
            PRIMARY KEY (profile, url, mode)
        )""",
        """CREATE TABLE link_cache (
            profile TEXT NOT NULL,
            url TEXT NOT NULL,
            mode INTEGER NOT NULL,
            run_id INTEGER NOT NULL,
            checked_at TEXT NOT NULL,
            probe TEXT NOT NULL,
            PRIMARY KEY (profile, url)
        )""",
    ),
    # 5: what an unchanged site's re-run is replayed from (crawler/rerun/replay.py): the
    # settings the run's results depend on (``replay_key``), the order pages and links
    # were reported in, and each link's ``missing_pdf`` detail.
    (
        "ALTER TABLE runs ADD COLUMN replay_key TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE pages ADD COLUMN seq INTEGER",
        "ALTER TABLE links ADD COLUMN seq INTEGER",
        "ALTER TABLE links ADD COLUMN pdf_problem TEXT NOT NULL DEFAULT ''",
    ),
    # 6: a replayed run's pages and links are those of the run it was replayed from: it
    # names that run (``rows_run``) instead of holding a copy. NULL: the run's own rows.
    ("ALTER TABLE runs ADD COLUMN rows_run INTEGER",),
)


#: ``schema_version`` written once Alembic manages a database: an older sitewatch (which
#: knows versions up to ``len(MIGRATIONS)``) refuses to open it instead of writing into a
#: schema it does not know.
ALEMBIC_MARK = len(MIGRATIONS) + 1


def for_dialect(sql: str, dialect: str) -> str:
    """A statement of :data:`MIGRATIONS` as ``dialect`` ("sqlite", "postgresql") spells it."""
    if dialect == "sqlite":
        return sql
    sql = sql.replace(
        "INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    )
    sql = re.sub(r"\)\s*WITHOUT ROWID\s*$", ")", sql)
    return sql.replace(" BLOB ", " BYTEA ")


def version(conn: Connection) -> int | None:
    """A SQLite database's ``schema_version``, or None when it has none."""
    has = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).first()
    if has is None:
        return None
    row = conn.exec_driver_sql("SELECT version FROM schema_version").first()
    return 0 if row is None else int(row[0])


def upgrade(conn: Connection, start: int) -> None:
    """Apply the statements after ``schema_version`` ``start`` (inside the caller's
    transaction), as the release before Alembic would have."""
    for statements in MIGRATIONS[start:]:
        for sql in statements:
            conn.exec_driver_sql(sql)


def mark_alembic(conn: Connection) -> None:
    """Set ``schema_version`` to :data:`ALEMBIC_MARK` (SQLite; the table is created if
    missing), so the release before Alembic refuses the database as newer."""
    conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    conn.exec_driver_sql("DELETE FROM schema_version")
    conn.exec_driver_sql(f"INSERT INTO schema_version (version) VALUES ({ALEMBIC_MARK})")
