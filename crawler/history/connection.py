"""The store's plumbing: its engine and connection, transactions, dialect differences.

One ``Store`` holds one connection for its life (SQLite: so ``PRAGMA data_version`` tells
whether anyone else wrote since it last read; both: no pool round trip per call). Reads run
in short transactions that end at once (a SQLite reader must not hold a WAL snapshot open);
writes in :meth:`_Base._tx`: SQLite ``BEGIN IMMEDIATE`` (one writer, the others queue on
``busy_timeout``), PostgreSQL an ordinary READ COMMITTED transaction whose writes to one
site's runs and findings are serialized by a transaction-level advisory lock
(:meth:`_Base._lock_site`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Connection, Executable, Table, text
from sqlalchemy.exc import SQLAlchemyError

from crawler.history import engine as engines
from crawler.history import migrate
from crawler.history.owners import RunOwner
from crawler.history.rows import StoreError

#: A run owned by another host is taken for crashed after this long (its pid is not ours
#: to ask). Local runs are judged by their process, however long they take.
STALE_AFTER = dt.timedelta(days=2)
#: SQLite's default ``wal_autocheckpoint`` (pages), restored after a run is stored.
WAL_AUTOCHECKPOINT = 1000


def lock_key(namespace: str, name: str) -> int:
    """A signed 64-bit PostgreSQL advisory lock key for ``name`` (stable across processes
    and Python versions, unlike ``hash``)."""
    digest = hashlib.blake2b(f"sitewatch:{namespace}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def insert(dialect: str, table: Table) -> Any:
    """``INSERT`` with ``dialect``'s ``ON CONFLICT`` clauses available ("sqlite" or
    "postgresql"). Each dialect is imported only when asked for: the PostgreSQL one is
    ~30 ms of imports an audit on SQLite never needs."""
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    from sqlalchemy.dialects import postgresql

    return postgresql.insert(table)


def upsert(dialect: str, table: Table, keys: Sequence[str]) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE`` every other column."""
    stmt = insert(dialect, table)
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys},
    )


class _Base:
    """Engine, connection and transactions of a :class:`crawler.history.store.Store`."""

    def __init__(
        self,
        where: str | Path,
        *,
        password_env: str = engines.DEFAULT_PASSWORD_ENV,
        timeout: float = 30.0,
        stale_after: dt.timedelta = STALE_AFTER,
    ) -> None:
        #: Where the history is, as given (a path, or a URL without password).
        self.where = str(where)
        self.target = engines.resolve(where, password_env)
        #: The SQLite file (None on PostgreSQL).
        self.path: Path | None = self.target.path
        self.dialect = self.target.dialect
        self.stale_after = stale_after
        self.owner = RunOwner.current()
        self.engine = engines.create(self.target, timeout=timeout)
        #: (site, PRAGMA data_version, state) of the last ``previous_state`` (SQLite):
        #: reused by ``finish_run`` when no connection wrote since (``_tx`` drops it).
        self._state_read: tuple[str, int, Any] | None = None
        try:
            migrate.ensure(self.engine, self.target.shown)
            self._conn: Connection = self.engine.connect()
        except migrate.SchemaError as e:
            self.engine.dispose()
            raise StoreError(str(e)) from None
        except BaseException:
            self.engine.dispose()
            raise

    @property
    def shown(self) -> str:
        """Where the history is, for messages (a path, or the URL without password)."""
        return self.target.shown

    def scrub(self, message: str) -> str:
        """``message`` without the database password."""
        return engines.scrub(message, self.target)

    # --- life --------------------------------------------------------------------------

    def close(self) -> None:
        try:
            self._conn.close()
        finally:
            self.engine.dispose()

    def close_in_background(self) -> threading.Thread:
        """Close the store in a thread of its own, and return it (``join`` it).

        The last connection to a SQLite WAL database checkpoints it as it closes: the run's
        pages go from the WAL into the database file, which is synced (~50 ms for the
        PostgreSQL manual's run). SQLite runs that without Python's lock, so the audit
        renders its reports meanwhile. What was committed is safe either way.
        """
        thread = threading.Thread(target=self.close, name="history-close")
        thread.start()
        return thread

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions ------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """One write transaction, rolled back on any error."""
        self._state_read = None  # this connection may write: its own writes do not
        conn = self._conn  # change data_version
        if conn.in_transaction():
            conn.rollback()
        conn.execution_options(sqlite_immediate=True)
        try:
            with conn.begin():
                yield conn
        finally:
            conn.execution_options(sqlite_immediate=False)

    def _rows(self, stmt: Executable, params: Any = None) -> list[Mapping[Any, Any]]:
        """All rows of a read, as mappings; the read transaction ends at once."""
        conn = self._conn
        try:
            return list(conn.execute(stmt, params).mappings().all())
        finally:
            conn.rollback()

    def _one(self, stmt: Executable, params: Any = None) -> Mapping[Any, Any] | None:
        rows = self._rows(stmt, params)
        return rows[0] if rows else None

    def _bulk_insert(
        self, db: Connection, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
    ) -> None:
        """Insert many rows (tuples in ``columns`` order; a row whose key is already there
        is skipped) inside ``db``'s transaction, through the driver: SQLite's
        ``executemany``; PostgreSQL ``COPY`` into a temporary table, then one INSERT from
        it (5x faster than ``executemany``). SQLAlchemy's per-row parameter handling would
        double a big run's write time. ``rows`` is consumed once, as the driver goes (no list
        of them all). Table and column names come from :mod:`schema`."""
        cols = ", ".join(columns)
        driver: Any = db.connection.driver_connection
        if self.dialect == "sqlite":
            marks = ", ".join(["?"] * len(columns))
            sql = f"INSERT INTO {table.name} ({cols}) VALUES ({marks}) ON CONFLICT DO NOTHING"
            driver.executemany(sql, rows)
            return
        tmp = f"bulk_{table.name}"
        with driver.cursor() as cur:
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {tmp} (LIKE {table.name} INCLUDING DEFAULTS) "
                "ON COMMIT DELETE ROWS"
            )
            cur.execute(f"TRUNCATE {tmp}")
            with cur.copy(f"COPY {tmp} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(
                f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {tmp} ON CONFLICT DO NOTHING"
            )

    def _lock_site(self, conn: Connection, site: str) -> None:
        """PostgreSQL: serialize this transaction with others writing the site's runs
        (SQLite's ``BEGIN IMMEDIATE`` already serializes every writer)."""
        if self.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key("run", site)})

    def _data_version(self) -> int:
        """SQLite's ``PRAGMA data_version`` of this connection (-1 elsewhere: unknown)."""
        if self.dialect != "sqlite":
            return -1
        row = self._one(text("PRAGMA data_version"))
        return -1 if row is None else int(next(iter(row.values())))

    def _driver_pragma(self, sql: str) -> None:
        """A SQLite PRAGMA outside any transaction (on the store's own connection)."""
        if self.dialect == "sqlite":
            if self._conn.in_transaction():
                self._conn.rollback()
            self._conn.connection.driver_connection.execute(sql)  # type: ignore[union-attr]

    @property
    def schema_revision(self) -> str | None:
        """The database's Alembic revision (``migrate.HEAD`` once open)."""
        try:
            return migrate.revision(self._conn)
        finally:
            self._conn.rollback()


__all__ = ["STALE_AFTER", "SQLAlchemyError", "StoreError", "lock_key"]
