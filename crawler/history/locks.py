"""What the scale-out needs from the history: an idempotent enqueue per (site, period) and
a per-site lock, so one site is never audited twice at once.

- ``claim_period(site, period)``: True for the first caller ever (a row in ``claims``,
  unique by (site, period)); every later or concurrent caller gets False.
- ``site_lock(site)``: a context manager held for an audit's lifetime; raises
  :class:`SiteBusy` at once when another process holds it.

  *PostgreSQL*: ``pg_try_advisory_lock`` on a connection of its own (autocommit, so no
  transaction stays open for hours); a process that dies loses its connection and with it
  the lock. *SQLite*: a lease row (site, owner host/pid/start token, expires_at) renewed by
  a thread while held; another process takes it over once it has expired or its owner
  process is gone (on this host: no such pid, a zombie, or a reused pid).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import ColumnElement, Connection, delete, select, text, update

from crawler.history.connection import _Base, insert, lock_key
from crawler.history.owners import RunOwner
from crawler.history.rows import StoreError, _dt, _now, _ts
from crawler.history.schema import claims, site_leases

log = logging.getLogger(__name__)

#: How long a SQLite lease lasts unless renewed (renewed every third of it).
LEASE = dt.timedelta(seconds=60)


class SiteBusy(StoreError):
    """Another process holds the site's lock (an audit of it is running)."""


class LocksMixin(_Base):
    def claim_period(self, site: str, period: str) -> bool:
        """Claim the audit of ``site`` for ``period`` (e.g. "2026-W49"): True only for the
        first claim ever made of that pair, by any process."""
        with self._tx() as db:
            result = db.execute(
                insert(self.dialect, claims)
                .values(site=site, period=period, claimed_at=_ts(_now()), claimed_by=self.owner.key)
                .on_conflict_do_nothing()
                .execution_options(preserve_rowcount=True)
            )
            return result.rowcount == 1

    def release_claim(self, site: str, period: str) -> bool:
        """Forget a claim (the enqueue it guarded failed), so it can be claimed again."""
        with self._tx() as db:
            result = db.execute(
                delete(claims).where(claims.c.site == site, claims.c.period == period)
            )
            return result.rowcount == 1

    @contextmanager
    def site_lock(self, site: str, *, lease: dt.timedelta = LEASE) -> Iterator[None]:
        """Hold the site's lock while the block runs (see the module docstring)."""
        if self.dialect == "postgresql":
            with self._advisory_lock(site):
                yield
        else:
            with self._lease(site, lease):
                yield

    @contextmanager
    def _advisory_lock(self, site: str) -> Iterator[None]:
        key = lock_key("site", site)
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            if not got:
                raise SiteBusy(f"site {site!r} is being audited by another process")
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        finally:
            conn.close()

    @contextmanager
    def _lease(self, site: str, lease: dt.timedelta) -> Iterator[None]:
        if not self._take_lease(site, lease):
            raise SiteBusy(f"site {site!r} is being audited by another process")
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew_lease, args=(site, lease, stop), name="site-lease", daemon=True
        )
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            with self._tx() as db:
                db.execute(delete(site_leases).where(site_leases.c.site == site, *self._ours()))

    def _ours(self) -> tuple[ColumnElement[bool], ...]:
        c = site_leases.c
        return (
            c.owner_host == self.owner.host,
            c.owner_pid == self.owner.pid,
            c.owner_token == self.owner.token,
        )

    def _take_lease(self, site: str, lease: dt.timedelta) -> bool:
        now = _now()
        with self._tx() as db:
            row = (
                db.execute(select(site_leases).where(site_leases.c.site == site)).mappings().first()
            )
            if row is not None:
                holder = RunOwner(row["owner_host"], int(row["owner_pid"]), row["owner_token"])
                expired = _dt(row["expires_at"]) <= now
                # Held by a live process (this one too: one holder per site), not expired.
                if not expired and (holder == self.owner or holder.alive() is not False):
                    return False
                db.execute(delete(site_leases).where(site_leases.c.site == site))
            db.execute(
                site_leases.insert().values(
                    site=site,
                    owner_host=self.owner.host,
                    owner_pid=self.owner.pid,
                    owner_token=self.owner.token,
                    acquired_at=_ts(now),
                    expires_at=_ts(now + lease),
                )
            )
            return True

    def _renew_lease(self, site: str, lease: dt.timedelta, stop: threading.Event) -> None:
        """Push the lease's expiry on every third of it, on a connection of its own."""
        while not stop.wait(lease.total_seconds() / 3):
            try:
                with self.engine.connect() as conn:
                    if not self._extend(conn, site, lease):
                        log.warning("site %s: lease lost (taken over by another process)", site)
                        return
            except Exception as e:  # keep the audit going; the lease may lapse
                log.warning("site %s: lease not renewed: %s", site, self.scrub(str(e)))

    def _extend(self, conn: Connection, site: str, lease: dt.timedelta) -> bool:
        conn.execution_options(sqlite_immediate=True)
        with conn.begin():
            result = conn.execute(
                update(site_leases)
                .where(site_leases.c.site == site, *self._ours())
                .values(expires_at=_ts(_now() + lease))
            )
            return result.rowcount == 1
