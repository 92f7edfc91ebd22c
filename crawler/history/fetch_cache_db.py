"""The re-run cache's rows (``fetch_cache``, ``link_cache``; what they mean:
:mod:`crawler.rerun.fetch_cache`) in the history database, SQLite or PostgreSQL.

Every method may raise :class:`sqlalchemy.exc.SQLAlchemyError`; the cache swallows it and
the audit simply fetches. Hot paths: ``validators`` is asked for every in-scope request, so
the validators of the earlier runs are read once, in one query, and kept; ``facts`` (one
per 304 answer) reads through the SQLite driver directly (a fifth of Core's cost per
query), through Core on PostgreSQL (where the round trip dominates).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, select, tuple_

from crawler.history import engine as engines
from crawler.history.connection import upsert
from crawler.history.schema import fetch_cache as fc
from crawler.history.schema import link_cache as lc

_SQLITE_FACTS = (
    "SELECT facts FROM fetch_cache WHERE profile = ? AND url = ? AND mode = ? AND run_id != ?"
)


class FetchCacheDB:
    """One audit's view of the cache's tables: rows of ``profile``, this run ``run_id``."""

    def __init__(
        self,
        where: str | Path,
        profile: str,
        run_id: int,
        *,
        password_env: str = engines.DEFAULT_PASSWORD_ENV,
        timeout: float = 10.0,
    ) -> None:
        self.profile = profile
        self.run_id = run_id
        self.target = engines.resolve(where, password_env)
        self.engine = engines.create(self.target, timeout=timeout)
        self._validators: dict[tuple[str, int], tuple[str, str]] | None = None
        try:
            self._conn: Connection = self.engine.connect()
        except BaseException:
            self.engine.dispose()
            raise
        self._sqlite = self.target.dialect == "sqlite"

    def close(self) -> None:
        try:
            self._conn.close()
        finally:
            self.engine.dispose()

    def _read(self, stmt: Any) -> list[Any]:
        try:
            return list(self._conn.execute(stmt).all())
        finally:
            self._conn.rollback()

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction (SQLite: ``BEGIN IMMEDIATE``)."""
        conn = self._conn
        if conn.in_transaction():
            conn.rollback()
        conn.execution_options(sqlite_immediate=True)
        try:
            with conn.begin():
                yield
        finally:
            conn.execution_options(sqlite_immediate=False)

    # -- reads --------------------------------------------------------------------------

    def earlier(self) -> bool:
        """Whether an earlier run stored anything for the profile."""
        stmt = select(fc.c.url).where(fc.c.profile == self.profile, fc.c.run_id != self.run_id)
        return bool(self._read(stmt.limit(1)))

    def stored(self) -> list[tuple[str, int, str, str]]:
        """(URL, mode, ETag, Last-Modified) of every row an earlier run stored."""
        stmt = select(fc.c.url, fc.c.mode, fc.c.etag, fc.c.last_modified).where(
            fc.c.profile == self.profile, fc.c.run_id != self.run_id
        )
        rows = [(r[0], int(r[1]), r[2], r[3]) for r in self._read(stmt)]
        self._validators = {(u, m): (e, lm) for u, m, e, lm in rows}
        return rows

    def validators(self, url: str, mode: int) -> tuple[str, str] | None:
        if self._validators is None:
            self.stored()
        assert self._validators is not None
        return self._validators.get((url, mode))

    def written_since(self, run_id: int) -> bool:
        """Whether a run after ``run_id`` (not this one) stored rows for the profile."""
        for t in (fc, lc):
            stmt = select(t.c.url).where(
                t.c.profile == self.profile, t.c.run_id > run_id, t.c.run_id != self.run_id
            )
            if self._read(stmt.limit(1)):
                return True
        return False

    def facts(self, url: str, mode: int) -> bytes | None:
        """The stored facts (zlib JSON) of ``url`` fetched in ``mode`` by an earlier run."""
        if self._sqlite and not self._conn.in_transaction():
            raw = self._conn.connection.driver_connection
            row = raw.execute(_SQLITE_FACTS, (self.profile, url, mode, self.run_id)).fetchone()  # type: ignore[union-attr]
        else:
            stmt = select(fc.c.facts).where(
                fc.c.profile == self.profile,
                fc.c.url == url,
                fc.c.mode == mode,
                fc.c.run_id != self.run_id,
            )
            rows = self._read(stmt)
            row = rows[0] if rows else None
        return None if row is None else bytes(row[0])

    def probe(self, url: str, needed: int, oldest: str) -> str | None:
        """The stored probe (JSON) of outside target ``url``: as strong as ``needed``,
        made at ``oldest`` or later, by an earlier run."""
        stmt = select(lc.c.probe).where(
            lc.c.profile == self.profile,
            lc.c.url == url,
            lc.c.mode >= needed,
            lc.c.checked_at >= oldest,
            lc.c.run_id != self.run_id,
        )
        rows = self._read(stmt)
        return str(rows[0][0]) if rows else None

    # -- writes -------------------------------------------------------------------------

    def put_fetched(self, rows: list[dict[str, Any]]) -> None:
        """Insert or replace ``fetch_cache`` rows (one transaction)."""
        if rows:
            with self._write():
                stmt = upsert(self.target.dialect, fc, ("profile", "url", "mode"))
                self._conn.execute(stmt, rows)

    def finish_links(
        self,
        bad: Iterable[str],
        good: list[dict[str, Any]],
        keep: set[tuple[str, int]] | None,
    ) -> None:
        """Drop the outside targets ``bad``, store the ``good`` probes, and with ``keep``
        (a complete crawl) drop the profile's rows of earlier runs not in ``keep`` (never
        of later ones: a run that started after this one may be running)."""
        conn = self._conn
        with self._write():
            bad_urls = [{"k_url": u} for u in bad]
            if bad_urls:
                from sqlalchemy import bindparam

                conn.execute(
                    delete(lc).where(lc.c.profile == self.profile, lc.c.url == bindparam("k_url")),
                    bad_urls,
                )
            if good:
                conn.execute(upsert(self.target.dialect, lc, ("profile", "url")), good)
            if keep is not None:
                self._prune(conn, keep)

    def _prune(self, conn: Connection, keep: set[tuple[str, int]]) -> None:
        earlier = conn.execute(
            select(fc.c.url, fc.c.mode).where(
                fc.c.profile == self.profile, fc.c.run_id < self.run_id
            )
        ).all()
        drop = [(u, int(m)) for u, m in earlier if (u, int(m)) not in keep]
        for i in range(0, len(drop), 500):
            conn.execute(
                delete(fc).where(
                    fc.c.profile == self.profile,
                    fc.c.run_id < self.run_id,
                    tuple_(fc.c.url, fc.c.mode).in_(drop[i : i + 500]),
                )
            )
