"""Schema migrations: Alembic, run on open (``ensure``), with the script location inside
the package (``crawler/history/migrations``; shipped as package data).

On open: a database already at :data:`HEAD` is left alone without taking any lock (a reader
such as ``sitewatch history`` never waits for an audit writing a big run). Otherwise, inside
one write transaction (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a transaction-level advisory
lock: two processes opening a new database at once migrate it once):

- a new database gets every revision from the baseline on;
- a SQLite database made before Alembic (``schema_version`` table, no ``alembic_version``)
  first gets the old release's remaining statements (any ``schema_version`` from 0 to 6
  upgrades in place), is *stamped* with the baseline (``0001``: that schema), then upgraded;
- a database at a revision this sitewatch does not know (made by a newer one) is refused.

SQLite migrations run with ``foreign_keys`` off (batch mode copies tables: dropping the old
``runs`` must not cascade into its pages), checked with ``foreign_key_check`` before commit.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text

from crawler.history import legacy

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

#: The newest revision (a test keeps it equal to the scripts' head).
HEAD = "0003"
BASELINE = "0001"
SCRIPTS = Path(__file__).parent / "migrations"
#: ``pg_advisory_xact_lock`` key held while migrating (any constant; "sitewatch").
_PG_MIGRATE_LOCK = 0x73697465


class SchemaError(RuntimeError):
    """The database's schema cannot be used by this sitewatch (newer, or broken)."""


def alembic_config(conn: Connection | None = None) -> Config:
    # Alembic (~0.12 s to import) loads only when a database needs a migration: an audit
    # on a database already at HEAD never imports it (tests/test_startup.py).
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.set_main_option("path_separator", "os")
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def script_head() -> str | None:
    return _scripts().get_current_head()


def revision(conn: Connection) -> str | None:
    """The database's Alembic revision, or None (no ``alembic_version`` table)."""
    if "alembic_version" not in _tables(conn):
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])


def _tables(conn: Connection) -> set[str]:
    from sqlalchemy import inspect

    return set(inspect(conn).get_table_names())


def ensure(engine: Engine, shown: str) -> None:
    """Bring the database to :data:`HEAD` (see the module docstring)."""
    with engine.connect() as conn:
        current = revision(conn)
        conn.rollback()
    if current == HEAD:
        return
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.connection.driver_connection.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
        try:
            with conn.execution_options(sqlite_immediate=True).begin():
                _upgrade(conn, shown)
                if sqlite:
                    _check_foreign_keys(conn, shown)
        finally:
            if sqlite:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys = ON")  # type: ignore[union-attr]


def _upgrade(conn: Connection, shown: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATE_LOCK})
    current = revision(conn)  # again: another process may have migrated meanwhile
    if current == HEAD:
        return
    if current is not None and current not in _known():
        raise SchemaError(
            f"{shown}: schema revision {current} is newer than this sitewatch ({HEAD})"
        )
    if current is None and conn.dialect.name == "sqlite":
        old = legacy.version(conn)
        if old is not None:
            _from_legacy(conn, old, shown)
    from alembic import command

    command.upgrade(alembic_config(conn), "head")


def _from_legacy(conn: Connection, old: int, shown: str) -> None:
    """A database of the release before Alembic: its missing statements, then the stamp."""
    if old > len(legacy.MIGRATIONS):
        raise SchemaError(
            f"{shown}: schema version {old} is newer than this sitewatch "
            f"({len(legacy.MIGRATIONS)}) and has no Alembic revision"
        )
    if old == 0 and not {"runs"} & _tables(conn):
        return  # only an empty schema_version table: a new database
    legacy.upgrade(conn, old)
    legacy.mark_alembic(conn)
    from alembic import command

    command.stamp(alembic_config(conn), BASELINE)


def _known() -> set[str]:
    return {s.revision for s in _scripts().walk_revisions()}


def _check_foreign_keys(conn: Connection, shown: str) -> None:
    bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if bad:
        raise SchemaError(f"{shown}: migration left {len(bad)} rows without their parent")
