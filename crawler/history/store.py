"""The history: runs, their pages, links and findings, finding state, deliveries, on
SQLAlchemy Core over SQLite (the default, one file) or PostgreSQL (psycopg 3).

One ``Store`` per process (see :mod:`crawler.history.connection`); the schema is brought to
the newest Alembic revision on open (:mod:`crawler.history.migrate`).

Finding state is cumulative per site and key (check, page, target): every finished run adds
the findings it saw (first_seen, last_seen, consecutive_runs); only a *complete* run closes
the open ones it did not see (they are "fixed"). A run left ``running`` (crash, kill) never
touched the state; it is marked ``crashed`` by the next ``begin_run`` of its site.

Runs record their owner (host, pid and the process's start time, ``RunOwner``) so that
audits of one site may run at the same time: ``begin_run`` (and ``reap_runs``) mark a
``running`` run crashed only when its owner is gone (no such pid, a zombie, or the pid now
belongs to a process started at another time), when the same process begins another run
of the site (it gave the first one up: one audit per process), or, for a run owned by
another host (whose processes cannot be asked), when it started more than ``stale_after``
ago. A run marked crashed by *another* process that then finishes after all (the guess was
wrong) is stored like any other; only a run its own process gave up stays crashed. A run
that finishes after a run of its site that began later (an older observation arriving
last) is stored ``incomplete`` ("overtaken") and leaves the finding state alone, so it can
neither mark fixed what the newer run still saw nor reopen what it found fixed.

Each finished run keeps its own comparison (``run_findings.change`` = new / open / fixed /
unchecked), so ``changes_for(run_id)`` gives the same answer however many runs came later.
A run replayed from an earlier one (``crawler/rerun/replay.py``: the site had not changed) has the
same pages and links: it names the run that holds those rows (``runs.rows_run``) instead of
storing them again, and ``pages``/``snapshot`` read them from there. (sitewatch never
deletes a run; deleting one by hand would also take away the pages and links of the runs
that name it.)

Deliveries (:mod:`crawler.history.deliveries`) and the scale-out's claims and per-site lock
(:mod:`crawler.history.locks`) are the other parts of the same ``Store``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update

from checks.changes import ChangeItem, Changes, FindingState, Key, compute_changes, observed_at
from checks.models import Finding, LinkResult, Page, Report, RunInfo
from crawler.history.connection import WAL_AUTOCHECKPOINT, upsert
from crawler.history.decisions import DecisionsMixin
from crawler.history.deliveries import DeliveriesMixin
from crawler.history.locks import LocksMixin
from crawler.history.owners import RunOwner, _row_owner
from crawler.history.rows import (
    FINISHED,
    RunRow,
    StoreError,
    _dt,
    _finding_from_row,
    _link_from_row,
    _now,
    _page_from_row,
    _rows_of,
    _ts,
    _wrongly_crashed,
)
from crawler.history.schema import finding_state, links, pages, run_findings, runs
from crawler.history.writes import (
    LINK_COLUMNS,
    PAGE_COLUMNS,
    batches,
    finding_rows,
    link_rows,
    page_rows,
    state_rows,
)

_CHUNK = 500
Row = Mapping[Any, Any]


def _chunks(items: Sequence[str], size: int = _CHUNK) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _observed(run: Mapping[str, Any], as_of: dt.date | None = None) -> dt.datetime:
    """The time run row ``run``'s findings are dated by (``checks.changes.observed_at``):
    by ``as_of`` if given, else by the row's own (written when the run is finished)."""
    if as_of is None and run["as_of"]:
        as_of = dt.date.fromisoformat(run["as_of"])
    return observed_at(_dt(run["started_at"]), as_of)


class Store(DeliveriesMixin, LocksMixin, DecisionsMixin):
    """The history. Not thread-safe: one Store per thread/process.

    ``Store(where)``: a path (SQLite file), ``sqlite:///path`` or ``postgresql://user@host/db``
    (password from the environment variable ``password_env``); ``Store.for_config(cfg)``.
    """

    @classmethod
    def for_config(cls, cfg: Any) -> Store:
        """The store ``cfg.history`` names (``url``, else the SQLite file ``db``)."""
        h = cfg.history
        return cls(h.url or h.db, password_env=h.password_env)

    def _run_row(self, run_id: int, conn: Connection | None = None) -> Row:
        stmt = select(runs).where(runs.c.id == run_id)
        row = self._one(stmt) if conn is None else conn.execute(stmt).mappings().first()
        if row is None:
            raise StoreError(f"no run {run_id}")
        return row

    # --- runs --------------------------------------------------------------------------

    def begin_run(
        self,
        site: str,
        started_at: dt.datetime,
        start_urls: Iterable[str] = (),
        scopes: Iterable[str] = (),
        *,
        owner: RunOwner | None = None,
        replay_key: str = "",
        site_locked: bool = False,
    ) -> int:
        """Record a new run (status ``running``) owned by ``owner`` (default: this process).

        Earlier ``running`` runs of the site whose owner is gone become ``crashed`` (see the
        module docstring); a live audit of the same site is left alone. ``site_locked``:
        the caller holds :meth:`site_lock` for the site, so no other audit of it runs and
        every earlier ``running`` run is crashed, on any host (a worker killed on another
        machine is not waited for until ``stale_after``).
        """
        owner = owner or self.owner
        with self._tx() as db:
            self._lock_site(db, site)
            self._reap(db, site, "crashed", owner, every=site_locked)
            result = db.execute(
                runs.insert().values(
                    site=site,
                    status="running",
                    started_at=_ts(started_at),
                    start_urls=json.dumps(list(start_urls)),
                    scopes=json.dumps(list(scopes)),
                    owner_host=owner.host,
                    owner_pid=owner.pid,
                    owner_token=owner.token,
                    replay_key=replay_key,
                )
            )
            new_id = result.inserted_primary_key[0]  # type: ignore[index]
            assert new_id is not None
            return int(new_id)

    def reap_runs(self, site: str | None = None, reason: str = "crashed") -> list[int]:
        """Mark ``running`` runs whose owner is gone as crashed (all sites: ``None``).

        Returns their ids. Live runs are never touched, so this is safe while other audits
        run (the scheduler calls it after a failed child).
        """
        with self._tx() as db:
            if site is not None:
                self._lock_site(db, site)
            return self._reap(db, site, reason, None)

    def _reap(
        self,
        db: Connection,
        site: str | None,
        reason: str,
        beginner: RunOwner | None,
        every: bool = False,
    ) -> list[int]:
        stmt = select(runs).where(runs.c.status == "running")
        if site is not None:
            stmt = stmt.where(runs.c.site == site)
        now = _now()
        reaped = []
        for row in db.execute(stmt).mappings().all():
            owner = _row_owner(row)
            marker = self.owner.key
            if owner is None or (every and owner != beginner):
                dead = True  # recorded before owners were (schema < 3), or site locked
            elif beginner is not None and owner == beginner:
                dead = True  # the same process begins the site again: it gave this one up
                marker = owner.key  # its own word: final
            else:
                alive = owner.alive()
                if alive is None:
                    dead = now - _dt(row["started_at"]) > self.stale_after
                else:
                    dead = not alive
            if dead:
                db.execute(
                    update(runs)
                    .where(runs.c.id == row["id"], runs.c.status == "running")
                    .values(
                        status="crashed",
                        finished_at=_ts(now),
                        incomplete_reasons=json.dumps([reason]),
                        crashed_by=marker,
                    )
                )
                reaped.append(int(row["id"]))
        return reaped

    def mark_crashed(self, run_id: int, reason: str = "crashed") -> None:
        """Mark a running run as crashed (its process gives up, or an admin decides).

        Marked by its own process, that is final. Marked by another process, it is a
        guess: should the owner finish the run after all, ``finish_run`` stores it.
        """
        with self._tx() as db:
            db.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.status == "running")
                .values(
                    status="crashed",
                    finished_at=_ts(_now()),
                    incomplete_reasons=json.dumps([reason]),
                    crashed_by=self.owner.key,
                )
            )

    def finish_run(self, run_id: int, report: Report) -> Changes:
        """Store a finished run in one transaction and update the finding state.

        The run is complete when ``report.run.complete``. Returns the comparison with the
        history (also available later from ``changes_for``).
        """
        # SQLite: not checkpointed at this commit (a run of a big site passes SQLite's
        # 1000-page mark): the last connection's close does it (``close_in_background``).
        self._driver_pragma("PRAGMA wal_autocheckpoint = 0")
        try:
            return self._finish_run(run_id, report)
        finally:
            self._driver_pragma(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}")

    def _finish_run(self, run_id: int, report: Report) -> Changes:
        info = report.run
        state_read = self._state_read
        with self._tx() as db:
            version = None
            if state_read is not None and self.dialect == "sqlite":
                version = db.exec_driver_sql("PRAGMA data_version").scalar()
            run = self._run_row(run_id, db)
            # The row's as_of is written when the run is finished (below).
            site, now = run["site"], _observed(run, info.as_of)
            self._lock_site(db, site)
            run = self._run_row(run_id, db)  # again, under the site's lock
            if run["status"] != "running" and not _wrongly_crashed(run):
                raise StoreError(f"run {run_id} is {run['status']}, not running")
            # A run of the site that began after this one and has already finished saw the
            # site later: this older observation must not undo it (no "fixed", no reopening),
            # so it is stored as incomplete and leaves the finding state alone.
            newer = db.execute(
                select(runs.c.id)
                .where(runs.c.site == site, runs.c.id > run_id, runs.c.status.in_(FINISHED))
                .order_by(runs.c.id)
                .limit(1)
            ).first()
            complete = info.complete and newer is None
            reasons = tuple(info.incomplete_reasons)
            if newer is not None:
                reasons += (
                    f"overtaken: run {newer[0]} of this site began later and finished first",
                )
            if state_read is not None and state_read[0] == site and state_read[1] == version:
                previous = state_read[2]  # read by previous_state; nobody wrote since
            else:
                previous = self._open_state(db, site)
            changes = compute_changes(
                report.findings, previous, now=now, complete=complete, incomplete_reasons=reasons
            )
            self._update_run(db, run_id, report, changes, complete, reasons)
            self._store_rows(db, run_id, report)
            for batch in batches(finding_rows(run_id, changes)):
                db.execute(run_findings.insert(), batch)
            if newer is None:
                self._update_state(db, site, run_id, now, changes)
        return changes

    @staticmethod
    def _update_run(
        db: Connection,
        run_id: int,
        report: Report,
        changes: Changes,
        complete: bool,
        reasons: tuple[str, ...],
    ) -> None:
        info, counts = report.run, report.counts()
        db.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(
                status="complete" if complete else "incomplete",
                finished_at=_ts(info.finished_at),
                as_of=info.as_of.isoformat(),
                pages_crawled=info.pages_crawled,
                links_checked=info.links_checked,
                incomplete_reasons=json.dumps(list(reasons)),
                stats=json.dumps(info.stats, default=str),
                errors=counts["error"],
                warnings=counts["warning"],
                infos=counts["info"],
                new_count=len(changes.new),
                open_count=len(changes.still_open),
                fixed_count=len(changes.fixed),
                unchecked_count=len(changes.unchecked),
            )
        )

    def _store_rows(self, db: Connection, run_id: int, report: Report) -> None:
        """The run's pages and links, or (replayed) the name of the run that holds them."""
        source = report.run.stats.get("replayed_from_run")
        from_run = None
        if isinstance(source, int):
            from_run = db.execute(select(runs).where(runs.c.id == source)).mappings().first()
        rows = None if from_run is None else _rows_of(from_run)
        if rows is not None and self._same_rows(db, rows, report):
            # Replayed (crawler/rerun/replay.py): the pages and links are that run's own,
            # stored once (a copy of s2000's took ~50 ms and 10 MB of the database).
            db.execute(update(runs).where(runs.c.id == run_id).values(rows_run=rows))
            return
        self._bulk_insert(db, pages, PAGE_COLUMNS, page_rows(run_id, report))
        self._bulk_insert(db, links, LINK_COLUMNS, link_rows(run_id, report))

    def _update_state(
        self, db: Connection, site: str, run_id: int, now: dt.datetime, changes: Changes
    ) -> None:
        seen = state_rows(site, run_id, now, (*changes.new, *changes.still_open))
        stmt = upsert(self.dialect, finding_state, ("site", "check_name", "page", "target"))
        for batch in batches(seen):
            db.execute(stmt, batch)
        fs = finding_state.c
        close = (
            update(finding_state)
            .where(
                fs.site == site,
                fs.check_name == bindparam("k_check"),
                fs.page == bindparam("k_page"),
                fs.target == bindparam("k_target"),
            )
            .values(open=0, closed_at=_ts(now), closed_run_id=run_id)
        )
        fixed = (
            {"k_check": c, "k_page": p, "k_target": t}
            for c, p, t in (item.key for item in changes.fixed)
        )
        for batch in batches(fixed):
            db.execute(close, batch)

    @staticmethod
    def _same_rows(db: Connection, source: int, report: Report) -> bool:
        """Whether run ``source`` stored as many pages and links as ``report`` has."""
        n_pages = db.execute(
            select(func.count()).select_from(pages).where(pages.c.run_id == source)
        ).scalar_one()
        n_links = db.execute(
            select(func.count()).select_from(links).where(links.c.run_id == source)
        ).scalar_one()
        return n_pages == len(report.pages) and n_links == len(report.links)

    @staticmethod
    def _open_state(db: Connection, site: str) -> dict[Key, FindingState]:
        rows = db.execute(
            select(finding_state).where(finding_state.c.site == site, finding_state.c.open == 1)
        ).mappings()
        out: dict[Key, FindingState] = {}
        for r in rows:
            f = _finding_from_row(r)
            out[f.key] = FindingState(
                first_seen=_dt(r["first_seen"]),
                last_seen=_dt(r["last_seen"]),
                consecutive_runs=r["consecutive_runs"],
                severity=f.severity,
                finding=f,
            )
        return out

    def previous_state(self, site: str) -> dict[Key, FindingState]:
        """Open findings of the site before the next run (for ``apply_flakiness``).

        Cumulative: closed only by complete runs, refreshed by every finished run.
        """
        version = self._data_version()
        try:
            state = self._open_state(self._conn, site)
        finally:
            self._conn.rollback()
        # Reused by finish_run only where "nobody wrote since" can be known (SQLite).
        self._state_read = (site, version, state) if version >= 0 else None
        return state

    # --- reads -------------------------------------------------------------------------

    def last_run(self, site: str, *, statuses: Iterable[str] = FINISHED) -> int | None:
        """The newest run of the site with one of these statuses, or None."""
        row = self._one(
            select(runs.c.id)
            .where(runs.c.site == site, runs.c.status.in_(tuple(statuses)))
            .order_by(runs.c.id.desc())
            .limit(1)
        )
        return None if row is None else int(row["id"])

    def run_status(self, run_id: int) -> str:
        return str(self._run_row(run_id)["status"])

    def run_info(self, run_id: int) -> RunInfo:
        """The stored ``RunInfo`` of a finished run."""
        r = self._run_row(run_id)
        if r["status"] not in FINISHED:
            raise StoreError(f"run {run_id} is {r['status']}")
        return RunInfo(
            started_at=_dt(r["started_at"]),
            finished_at=_dt(r["finished_at"]),
            as_of=dt.date.fromisoformat(r["as_of"]),
            start_urls=tuple(json.loads(r["start_urls"])),
            scopes=tuple(json.loads(r["scopes"])),
            complete=r["status"] == "complete",
            pages_crawled=r["pages_crawled"],
            links_checked=r["links_checked"],
            stats=json.loads(r["stats"]),
            site=r["site"],
            incomplete_reasons=tuple(json.loads(r["incomplete_reasons"])),
        )

    def changes_for(self, run_id: int) -> Changes:
        """The comparison stored for a finished run: new, still open, fixed, unchecked."""
        r = self._run_row(run_id)
        if r["status"] not in FINISHED:
            raise StoreError(f"run {run_id} is {r['status']}: it has no findings")
        now = _observed(r)
        sections: dict[str, list[ChangeItem]] = {
            "new": [],
            "open": [],
            "fixed": [],
            "unchecked": [],
        }
        for row in self._rows(
            select(run_findings).where(run_findings.c.run_id == run_id).order_by(run_findings.c.seq)
        ):
            since, last = _dt(row["first_seen"]), _dt(row["last_seen"])
            end = last if row["change"] == "fixed" else now
            sections[row["change"]].append(
                ChangeItem(
                    _finding_from_row(row),
                    since=since,
                    last_seen=last,
                    days=max(0, (end - since).days),
                    consecutive_runs=row["consecutive_runs"],
                )
            )
        return Changes(
            new=tuple(sections["new"]),
            still_open=tuple(sections["open"]),
            fixed=tuple(sections["fixed"]),
            unchecked=tuple(sections["unchecked"]),
            complete=r["status"] == "complete",
            incomplete_reasons=tuple(json.loads(r["incomplete_reasons"])),
        )

    def findings(self, run_id: int) -> tuple[Finding, ...]:
        """The findings a run saw (new and still open)."""
        rf = run_findings.c
        return tuple(
            _finding_from_row(row)
            for row in self._rows(
                select(run_findings)
                .where(rf.run_id == run_id, rf.change.in_(("new", "open")))
                .order_by(rf.seq)
            )
        )

    def pages(self, run_id: int, urls: Iterable[str] | None = None) -> dict[str, Page]:
        """Pages of a run by URL. With ``urls``: those pages, falling back to the newest
        earlier run of the same site for pages this run did not crawl (fixed findings)."""
        run = self._run_row(run_id)
        own = _rows_of(run)
        if urls is None:
            rows = self._rows(select(pages).where(pages.c.run_id == own))
            return {r["url"]: _page_from_row(r) for r in rows}
        wanted = sorted(set(urls))
        out: dict[str, Page] = {}
        for chunk in _chunks(wanted):
            for r in self._rows(select(pages).where(pages.c.run_id == own, pages.c.url.in_(chunk))):
                out[r["url"]] = _page_from_row(r)
        missing = [u for u in wanted if u not in out]
        for chunk in _chunks(missing):
            stmt = (
                select(pages)
                .join(runs, runs.c.id == pages.c.run_id)
                .where(runs.c.site == run["site"], pages.c.run_id < run_id, pages.c.url.in_(chunk))
                .order_by(pages.c.run_id.desc())
            )
            for r in self._rows(stmt):
                out.setdefault(r["url"], _page_from_row(r))
        return out

    def replay_source(self, site: str, run_id: int, replay_key: str) -> int | None:
        """The run an unchanged site's run ``run_id`` may be replayed from: the site's
        newest run before it, if that one is complete, was made with the same settings
        (``replay_key``) and stored its pages and links in order (schema 5). Else None."""
        if not replay_key:
            return None
        row = self._one(
            select(runs.c.id, runs.c.status, runs.c.replay_key)
            .where(runs.c.site == site, runs.c.id < run_id)
            .order_by(runs.c.id.desc())
            .limit(1)
        )
        if row is None or row["status"] != "complete" or row["replay_key"] != replay_key:
            return None
        return int(row["id"])

    def snapshot(self, run_id: int) -> tuple[tuple[Page, ...], tuple[LinkResult, ...], int]:
        """A finished run's pages and links, in the order it reported them, and its
        number of checked links (for :mod:`crawler.rerun.replay`)."""
        run = self._run_row(run_id)
        links_checked = int(run["links_checked"])
        own = _rows_of(run)
        got_pages = tuple(
            _page_from_row(r)
            for r in self._rows(select(pages).where(pages.c.run_id == own).order_by(pages.c.seq))
        )
        got_links = tuple(
            _link_from_row(r)
            for r in self._rows(select(links).where(links.c.run_id == own).order_by(links.c.seq))
        )
        return got_pages, got_links, links_checked

    def runs(self, site: str | None = None, limit: int = 20) -> list[RunRow]:
        """The newest runs first, with counts and delivery states (``sitewatch history``)."""
        stmt = select(runs).order_by(runs.c.id.desc()).limit(limit)
        if site is not None:
            stmt = stmt.where(runs.c.site == site)
        rows = self._rows(stmt)
        deliveries = self._delivery_counts([int(r["id"]) for r in rows])
        return [
            RunRow(
                id=r["id"],
                site=r["site"],
                status=r["status"],
                started_at=_dt(r["started_at"]),
                finished_at=_dt(r["finished_at"]) if r["finished_at"] else None,
                pages_crawled=r["pages_crawled"],
                links_checked=r["links_checked"],
                incomplete_reasons=tuple(json.loads(r["incomplete_reasons"])),
                counts={"error": r["errors"], "warning": r["warnings"], "info": r["infos"]},
                changes={
                    "new": r["new_count"],
                    "still_open": r["open_count"],
                    "fixed": r["fixed_count"],
                    "unchecked": r["unchecked_count"],
                },
                deliveries=deliveries.get(r["id"], {}),
            )
            for r in rows
        ]
