"""History in SQLite: runs, their pages, links and findings, finding state, deliveries.

One ``Store`` per process (stdlib ``sqlite3``, WAL, ``busy_timeout``); the schema is created
and migrated on open (``schema_version`` table, ``MIGRATIONS`` list: append, never edit).

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
A run replayed from an earlier one (``crawler/replay.py``: the site had not changed) has the
same pages and links: it names the run that holds those rows (``runs.rows_run``) instead of
storing them again, and ``pages``/``snapshot`` read them from there. (sitewatch never
deletes a run; deleting one by hand would also take away the pages and links of the runs
that name it.)

Deliveries: one row per (run, recipient) with state pending -> sending -> sent | failed, and an
append-only ``delivery_log``. ``claim_delivery`` is the only way into ``sending`` and is
atomic, so two ``send`` processes never send the same message. A row left ``sending`` (a crash
mid-send, or an SMTP reply that never came) is never claimed again automatically: whether the
server got the message is unknown and a duplicate is worse than a delay. It is listed by
``unconfirmed_deliveries`` for the admin, who may ``release_delivery`` it (-> failed, retried
by the next send) or ``mark_sent`` it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from checks.changes import ChangeItem, Changes, FindingState, Key, compute_changes
from checks.models import (
    Check,
    Finding,
    LinkRef,
    LinkResult,
    Page,
    RedirectHop,
    Report,
    RunInfo,
    Severity,
    Verdict,
)
from crawler.lazy_tuple import LazyTuple

UTC = dt.UTC

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
    # 4: the re-run cache (crawler/fetch_cache.py). ``fetch_cache``: per in-scope URL and
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
    # 5: what an unchanged site's re-run is replayed from (crawler/replay.py): the
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

FINISHED = ("complete", "incomplete")
_MAX_ERROR = 1000
_CHUNK = 500
#: A run owned by another host is taken for crashed after this long (its pid is not ours
#: to ask). Local runs are judged by their process, however long they take.
STALE_AFTER = dt.timedelta(days=2)
#: SQLite's default ``wal_autocheckpoint`` (pages), restored after a run is stored.
WAL_AUTOCHECKPOINT = 1000


@contextmanager
def write_tx(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (BEGIN IMMEDIATE: the write lock is taken up front), rolled
    back on any error. ``db`` must be in autocommit mode (``isolation_level=None``)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class StoreError(RuntimeError):
    """The history cannot do what was asked (unknown run, wrong state, newer schema)."""


def _found_on_json(refs: Sequence[LinkRef], chunk: int = 1000) -> str:
    """``json.dumps([[page, text, tag], ...])`` of a link's references, encoded ``chunk``
    at a time: a navigation link's references are not all held as lists at once."""
    if len(refs) <= chunk:
        return json.dumps([[r.page, r.text, r.tag] for r in refs])
    parts: list[str] = []
    rows: list[list[str]] = []
    for r in refs:
        rows.append([r.page, r.text, r.tag])
        if len(rows) == chunk:
            parts.append(json.dumps(rows)[1:-1])
            rows = []
    if rows:
        parts.append(json.dumps(rows)[1:-1])
    return "[" + ", ".join(parts) + "]"


def _ts(value: dt.datetime) -> str:
    """Aware UTC ISO string; naive datetimes are taken to be UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _dt(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as ``sitewatch history`` lists it."""

    id: int
    site: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    pages_crawled: int
    links_checked: int
    incomplete_reasons: tuple[str, ...]
    #: Findings per severity (error, warning, info).
    counts: Mapping[str, int]
    #: new / still_open / fixed / unchecked against the history.
    changes: Mapping[str, int]
    #: Deliveries of this run per state (pending, sending, sent, failed).
    deliveries: Mapping[str, int]

    @property
    def complete(self) -> bool:
        return self.status == "complete"


@dataclass(frozen=True, slots=True)
class Delivery:
    run_id: int
    recipient: str
    state: str
    attempts: int
    message_id: str
    last_error: str
    created_at: dt.datetime
    updated_at: dt.datetime
    sent_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    run_id: int
    recipient: str
    at: dt.datetime
    state: str
    detail: str


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a process from /proc, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = raw[raw.rfind(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    if len(fields) < 20:
        return None
    return fields[0], fields[19]


@dataclass(frozen=True, slots=True)
class RunOwner:
    """The process that records a run: host name, pid and a start-time token.

    ``token`` (boot id and the process's start time, from /proc on Linux; empty where
    unknown) tells a live owner from another process that got the same pid later.
    """

    host: str
    pid: int
    token: str = ""

    @classmethod
    def for_pid(cls, pid: int) -> RunOwner:
        stat = _proc_stat(pid)
        boot = _boot_id()
        token = f"{boot}:{stat[1]}" if stat and boot else ""
        return cls(socket.gethostname(), pid, token)

    @classmethod
    def current(cls) -> RunOwner:
        return cls.for_pid(os.getpid())

    @property
    def key(self) -> str:
        return f"{self.host}/{self.pid}/{self.token}"

    def alive(self) -> bool | None:
        """Whether the owner still runs: True, False, or None when it cannot be known
        (another host)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, belongs to another user
        except OSError:
            return None
        stat = _proc_stat(self.pid)
        if stat is None:
            return True  # no /proc: the pid exists, that is all we know
        if stat[0] in ("Z", "X"):
            return False  # exited; its parent has not reaped it yet
        if self.token:
            now = RunOwner.for_pid(self.pid).token
            if now and now != self.token:
                return False  # the pid was reused by a process started later
        return True


def _row_owner(row: sqlite3.Row) -> RunOwner | None:
    if row["owner_pid"] is None:
        return None
    return RunOwner(row["owner_host"], int(row["owner_pid"]), row["owner_token"])


def _chunks(items: Sequence[str], size: int = _CHUNK) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Store:
    """The SQLite history. Not thread-safe: one Store per thread/process."""

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float = 30.0,
        stale_after: dt.timedelta = STALE_AFTER,
    ) -> None:
        self.path = Path(path)
        self.stale_after = stale_after
        self.owner = RunOwner.current()
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: ``close_in_background`` hands the connection to a thread
        # of its own (nothing else uses it from then on).
        self._db = sqlite3.connect(
            str(path), timeout=timeout, isolation_level=None, check_same_thread=False
        )
        #: (site, PRAGMA data_version, state) of the last ``previous_state``: reused by
        #: ``finish_run`` when no connection wrote since (``_tx`` drops it).
        self._state_read: tuple[str, int, dict[Key, FindingState]] | None = None
        self._db.row_factory = sqlite3.Row
        self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        # WAL is a property of the file: set it once (switching needs the only connection).
        mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal" and str(path) != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._migrate()

    # --- plumbing ----------------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def close_in_background(self) -> threading.Thread:
        """Close the store in a thread of its own, and return it (``join`` it).

        The last connection to a WAL database checkpoints it as it closes: the run's pages
        go from the WAL into the database file, which is synced (~50 ms for the PostgreSQL
        manual's run). SQLite runs that without Python's lock, so the audit renders its
        reports meanwhile. What was committed is safe either way: a WAL left behind by a
        process that stopped is read back by the next connection.
        """
        thread = threading.Thread(target=self._db.close, name="history-close")
        thread.start()
        return thread

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        self._state_read = None  # this connection may write: its own writes do not
        return write_tx(self._db)  # change data_version

    def _data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def _migrate(self) -> None:
        # Readers of an up-to-date database need no write lock (``sitewatch history`` while
        # an audit writes a big run).
        try:
            row = self._db.execute("SELECT version FROM schema_version").fetchone()
            if row is not None and row[0] == len(MIGRATIONS):
                return
        except sqlite3.OperationalError:
            pass  # a new database: no table yet
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if row is None:
                db.execute("INSERT INTO schema_version (version) VALUES (0)")
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path}: schema version {version} is newer than this sitewatch "
                    f"({len(MIGRATIONS)})"
                )
            for statements in MIGRATIONS[version:]:
                for sql in statements:
                    db.execute(sql)
            db.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS),))

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("SELECT version FROM schema_version").fetchone()[0])

    def _run_row(self, run_id: int) -> sqlite3.Row:
        row = self._db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
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
    ) -> int:
        """Record a new run (status ``running``) owned by ``owner`` (default: this process).

        Earlier ``running`` runs of the site whose owner is gone become ``crashed`` (see the
        module docstring); a live audit of the same site is left alone.
        """
        owner = owner or self.owner
        with self._tx() as db:
            self._reap(db, site, "crashed", owner)
            cur = db.execute(
                "INSERT INTO runs (site, status, started_at, start_urls, scopes, owner_host, "
                "owner_pid, owner_token, replay_key) VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                (
                    site,
                    _ts(started_at),
                    json.dumps(list(start_urls)),
                    json.dumps(list(scopes)),
                    owner.host,
                    owner.pid,
                    owner.token,
                    replay_key,
                ),
            )
            return int(cur.lastrowid or 0)

    def reap_runs(self, site: str | None = None, reason: str = "crashed") -> list[int]:
        """Mark ``running`` runs whose owner is gone as crashed (all sites: ``None``).

        Returns their ids. Live runs are never touched, so this is safe while other audits
        run (the scheduler calls it after a failed child).
        """
        with self._tx() as db:
            return self._reap(db, site, reason, None)

    def _reap(
        self, db: sqlite3.Connection, site: str | None, reason: str, beginner: RunOwner | None
    ) -> list[int]:
        where, args = ("AND site = ?", (site,)) if site is not None else ("", ())
        rows = db.execute(f"SELECT * FROM runs WHERE status = 'running' {where}", args).fetchall()
        now = _now()
        reaped = []
        for row in rows:
            owner = _row_owner(row)
            marker = self.owner.key
            if owner is None:
                dead = True  # recorded before owners were (schema < 3)
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
                    "UPDATE runs SET status = 'crashed', finished_at = ?, "
                    "incomplete_reasons = ?, crashed_by = ? WHERE id = ? AND status = 'running'",
                    (_ts(now), json.dumps([reason]), marker, row["id"]),
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
                "UPDATE runs SET status = 'crashed', finished_at = ?, incomplete_reasons = ?, "
                "crashed_by = ? WHERE id = ? AND status = 'running'",
                (_ts(_now()), json.dumps([reason]), self.owner.key, run_id),
            )

    def finish_run(self, run_id: int, report: Report) -> Changes:
        """Store a finished run in one transaction and update the finding state.

        The run is complete when ``report.run.complete``. Returns the comparison with the
        history (also available later from ``changes_for``).
        """
        # Not checkpointed at this commit (a run of a big site passes SQLite's 1000-page
        # mark): the last connection's close does it (``close_in_background``).
        self._db.execute("PRAGMA wal_autocheckpoint = 0")
        try:
            return self._finish_run(run_id, report)
        finally:
            self._db.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}")

    def _finish_run(self, run_id: int, report: Report) -> Changes:
        info = report.run
        state_read = self._state_read
        with self._tx() as db:
            run = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if run is None:
                raise StoreError(f"no run {run_id}")
            if run["status"] != "running" and not _wrongly_crashed(run):
                raise StoreError(f"run {run_id} is {run['status']}, not running")
            site, now = run["site"], _dt(run["started_at"])
            # A run of the site that began after this one and has already finished saw the
            # site later: this older observation must not undo it (no "fixed", no reopening),
            # so it is stored as incomplete and leaves the finding state alone.
            newer = db.execute(
                "SELECT id FROM runs WHERE site = ? AND id > ? AND status IN (?, ?) "
                "ORDER BY id LIMIT 1",
                (site, run_id, *FINISHED),
            ).fetchone()
            complete = info.complete and newer is None
            reasons = tuple(info.incomplete_reasons)
            if newer is not None:
                reasons += (
                    f"overtaken: run {newer[0]} of this site began later and finished first",
                )
            status = "complete" if complete else "incomplete"
            if (
                state_read is not None
                and state_read[0] == site
                and state_read[1] == self._data_version()
            ):
                previous = state_read[2]  # read by previous_state; nobody wrote since
            else:
                previous = self._open_state(db, site)
            changes = compute_changes(
                report.findings,
                previous,
                now=now,
                complete=complete,
                incomplete_reasons=reasons,
            )
            counts = report.counts()
            db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, as_of = ?, pages_crawled = ?, "
                "links_checked = ?, incomplete_reasons = ?, stats = ?, errors = ?, "
                "warnings = ?, infos = ?, new_count = ?, open_count = ?, fixed_count = ?, "
                "unchecked_count = ? WHERE id = ?",
                (
                    status,
                    _ts(info.finished_at),
                    info.as_of.isoformat(),
                    info.pages_crawled,
                    info.links_checked,
                    json.dumps(list(reasons)),
                    json.dumps(info.stats, default=str),
                    counts["error"],
                    counts["warning"],
                    counts["info"],
                    len(changes.new),
                    len(changes.still_open),
                    len(changes.fixed),
                    len(changes.unchecked),
                    run_id,
                ),
            )
            source = info.stats.get("replayed_from_run")
            from_run = None
            if isinstance(source, int):
                from_run = db.execute("SELECT * FROM runs WHERE id = ?", (source,)).fetchone()
            rows = None if from_run is None else _rows_of(from_run)
            if rows is not None and self._same_rows(db, rows, report):
                # Replayed (crawler/replay.py): the pages and links are that run's own,
                # stored once (a copy of s2000's took ~50 ms and 10 MB of the database).
                db.execute("UPDATE runs SET rows_run = ? WHERE id = ?", (rows, run_id))
            else:
                self._insert_rows(db, run_id, report)
            sections = (
                ("new", changes.new),
                ("open", changes.still_open),
                ("fixed", changes.fixed),
                ("unchecked", changes.unchecked),
            )
            db.executemany(
                "INSERT INTO run_findings (run_id, check_name, page, target, change, severity, "
                "detail, message, link_text, watched, new_url, first_seen, last_seen, "
                "consecutive_runs, seq) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        run_id,
                        *item.key,
                        change,
                        *_finding_cols(item.finding),
                        _ts(item.since),
                        _ts(item.last_seen),
                        item.consecutive_runs,
                        seq,
                    )
                    for seq, (change, item) in enumerate(
                        (change, item) for change, items in sections for item in items
                    )
                ),
            )
            if newer is not None:
                return changes
            db.executemany(
                "INSERT OR REPLACE INTO finding_state (site, check_name, page, target, "
                "first_seen, last_seen, consecutive_runs, severity, detail, message, "
                "link_text, watched, new_url, open, last_run_id, closed_at, closed_run_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, NULL, NULL)",
                (
                    (
                        site,
                        *item.key,
                        _ts(item.since),
                        _ts(now),
                        item.consecutive_runs,
                        *_finding_cols(item.finding),
                        run_id,
                    )
                    for item in (*changes.new, *changes.still_open)
                ),
            )
            db.executemany(
                "UPDATE finding_state SET open = 0, closed_at = ?, closed_run_id = ? "
                "WHERE site = ? AND check_name = ? AND page = ? AND target = ?",
                ((_ts(now), run_id, site, *item.key) for item in changes.fixed),
            )
        return changes

    @staticmethod
    def _insert_rows(db: sqlite3.Connection, run_id: int, report: Report) -> None:
        db.executemany(
            "INSERT OR IGNORE INTO pages (run_id, url, status, title, final_url, "
            "content_type, depth, review_date, review_date_source, is_html, error, seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    run_id,
                    p.url,
                    p.status,
                    p.title,
                    p.final_url,
                    p.content_type,
                    p.depth,
                    p.review_date.isoformat() if p.review_date else None,
                    p.review_date_source,
                    int(p.is_html),
                    p.error,
                    seq,
                )
                for seq, p in enumerate(report.pages)
            ),
        )
        db.executemany(
            "INSERT OR IGNORE INTO links (run_id, url, verdict, detail, status, final_url, "
            "content_type, pdf_link, pdf_magic, watched, internal, redirect_chain, "
            "found_on, pdf_problem, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    run_id,
                    lr.url,
                    lr.verdict.value,
                    lr.detail,
                    lr.status,
                    lr.final_url,
                    lr.content_type,
                    int(lr.pdf_link),
                    None if lr.pdf_magic is None else int(lr.pdf_magic),
                    int(lr.watched),
                    int(lr.internal),
                    (
                        json.dumps([[h.url, h.status] for h in lr.redirect_chain])
                        if lr.redirect_chain
                        else "[]"  # json.dumps([]), for the many links never redirected
                    ),
                    _found_on_json(lr.found_on),
                    lr.pdf_problem,
                    seq,
                )
                for seq, lr in enumerate(report.links)
            ),
        )

    @staticmethod
    def _same_rows(db: sqlite3.Connection, source: int, report: Report) -> bool:
        """Whether run ``source`` stored as many pages and links as ``report`` has."""
        pages = db.execute("SELECT count(*) FROM pages WHERE run_id = ?", (source,)).fetchone()
        links = db.execute("SELECT count(*) FROM links WHERE run_id = ?", (source,)).fetchone()
        return pages[0] == len(report.pages) and links[0] == len(report.links)

    @staticmethod
    def _open_state(db: sqlite3.Connection, site: str) -> dict[Key, FindingState]:
        rows = db.execute(
            "SELECT * FROM finding_state WHERE site = ? AND open = 1", (site,)
        ).fetchall()
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
        state = self._open_state(self._db, site)
        self._state_read = (site, version, state)
        return state

    def last_run(self, site: str, *, statuses: Iterable[str] = FINISHED) -> int | None:
        """The newest run of the site with one of these statuses, or None."""
        sts = tuple(statuses)
        row = self._db.execute(
            f"SELECT id FROM runs WHERE site = ? AND status IN ({','.join('?' * len(sts))}) "
            "ORDER BY id DESC LIMIT 1",
            (site, *sts),
        ).fetchone()
        return None if row is None else int(row[0])

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
        now = _dt(r["started_at"])
        sections: dict[str, list[ChangeItem]] = {
            "new": [],
            "open": [],
            "fixed": [],
            "unchecked": [],
        }
        for row in self._db.execute(
            "SELECT * FROM run_findings WHERE run_id = ? ORDER BY seq", (run_id,)
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
        return tuple(
            _finding_from_row(row)
            for row in self._db.execute(
                "SELECT * FROM run_findings WHERE run_id = ? AND change IN ('new', 'open') "
                "ORDER BY seq",
                (run_id,),
            )
        )

    def pages(self, run_id: int, urls: Iterable[str] | None = None) -> dict[str, Page]:
        """Pages of a run by URL. With ``urls``: those pages, falling back to the newest
        earlier run of the same site for pages this run did not crawl (fixed findings)."""
        run = self._run_row(run_id)
        own = _rows_of(run)
        if urls is None:
            rows = self._db.execute("SELECT * FROM pages WHERE run_id = ?", (own,))
            return {r["url"]: _page_from_row(r) for r in rows}
        site = run["site"]
        wanted = sorted(set(urls))
        out: dict[str, Page] = {}
        for chunk in _chunks(wanted):
            marks = ",".join("?" * len(chunk))
            for r in self._db.execute(
                f"SELECT * FROM pages WHERE run_id = ? AND url IN ({marks})", (own, *chunk)
            ):
                out[r["url"]] = _page_from_row(r)
        missing = [u for u in wanted if u not in out]
        for chunk in _chunks(missing):
            marks = ",".join("?" * len(chunk))
            for r in self._db.execute(
                f"SELECT p.* FROM pages p JOIN runs r ON r.id = p.run_id WHERE r.site = ? "
                f"AND p.run_id < ? AND p.url IN ({marks}) ORDER BY p.run_id DESC",
                (site, run_id, *chunk),
            ):
                out.setdefault(r["url"], _page_from_row(r))
        return out

    def replay_source(self, site: str, run_id: int, replay_key: str) -> int | None:
        """The run an unchanged site's run ``run_id`` may be replayed from: the site's
        newest run before it, if that one is complete, was made with the same settings
        (``replay_key``) and stored its pages and links in order (schema 5). Else None."""
        if not replay_key:
            return None
        row = self._db.execute(
            "SELECT id, status, replay_key FROM runs WHERE site = ? AND id < ? "
            "ORDER BY id DESC LIMIT 1",
            (site, run_id),
        ).fetchone()
        if row is None or row["status"] != "complete" or row["replay_key"] != replay_key:
            return None
        return int(row["id"])

    def snapshot(self, run_id: int) -> tuple[tuple[Page, ...], tuple[LinkResult, ...], int]:
        """A finished run's pages and links, in the order it reported them, and its
        number of checked links (for :mod:`crawler.replay`)."""
        run = self._run_row(run_id)
        links_checked = int(run["links_checked"])
        run_id = _rows_of(run)
        pages = tuple(
            _page_from_row(r)
            for r in self._db.execute(
                "SELECT * FROM pages WHERE run_id = ? ORDER BY seq", (run_id,)
            )
        )
        links = tuple(
            _link_from_row(r)
            for r in self._db.execute(
                "SELECT * FROM links WHERE run_id = ? ORDER BY seq", (run_id,)
            )
        )
        return pages, links, links_checked

    def runs(self, site: str | None = None, limit: int = 20) -> list[RunRow]:
        """The newest runs first, with counts and delivery states (``sitewatch history``)."""
        where, args = ("WHERE site = ?", [site]) if site is not None else ("", [])
        rows = self._db.execute(
            f"SELECT * FROM runs {where} ORDER BY id DESC LIMIT ?", (*args, limit)
        ).fetchall()
        deliveries: dict[int, dict[str, int]] = {}
        ids = [r["id"] for r in rows]
        if ids:
            marks = ",".join("?" * len(ids))
            for d in self._db.execute(
                f"SELECT run_id, state, COUNT(*) FROM deliveries WHERE run_id IN ({marks}) "
                "GROUP BY run_id, state",
                ids,
            ):
                deliveries.setdefault(d[0], {})[d[1]] = d[2]
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

    # --- deliveries --------------------------------------------------------------------

    def _log(self, db: sqlite3.Connection, run_id: int, recipient: str, state: str, detail: str):
        db.execute(
            "INSERT INTO delivery_log (run_id, recipient, at, state, detail) "
            "VALUES (?, ?, ?, ?, ?)",
            (run_id, recipient, _ts(_now()), state, detail[:_MAX_ERROR]),
        )

    def register_deliveries(self, run_id: int, recipients: Iterable[str]) -> None:
        """Create ``pending`` rows for recipients that have none yet (idempotent)."""
        now = _ts(_now())
        with self._tx() as db:
            for rcpt in recipients:
                cur = db.execute(
                    "INSERT OR IGNORE INTO deliveries (run_id, recipient, state, created_at, "
                    "updated_at) VALUES (?, ?, 'pending', ?, ?)",
                    (run_id, rcpt, now, now),
                )
                if cur.rowcount:
                    self._log(db, run_id, rcpt, "pending", "")

    def claim_delivery(self, run_id: int, recipient: str, message_id: str = "") -> bool:
        """Atomically move (run, recipient) from pending/failed (or no row) to ``sending``.

        True: the caller owns the send and must end it with ``mark_sent`` or ``mark_failed``.
        False: sent already, or ``sending`` (another process, or an unknown outcome).
        """
        now = _ts(_now())
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO deliveries (run_id, recipient, state, created_at, "
                "updated_at) VALUES (?, ?, 'pending', ?, ?)",
                (run_id, recipient, now, now),
            )
            cur = db.execute(
                "UPDATE deliveries SET state = 'sending', attempts = attempts + 1, "
                "message_id = ?, updated_at = ? WHERE run_id = ? AND recipient = ? "
                "AND state IN ('pending', 'failed')",
                (message_id, now, run_id, recipient),
            )
            if cur.rowcount:
                self._log(db, run_id, recipient, "sending", message_id)
            return cur.rowcount == 1

    def mark_sent(self, run_id: int, recipient: str, detail: str = "") -> None:
        """The message was accepted (server reply 250, or the .eml file is in place)."""
        now = _ts(_now())
        with self._tx() as db:
            db.execute(
                "UPDATE deliveries SET state = 'sent', sent_at = ?, updated_at = ?, "
                "last_error = '' WHERE run_id = ? AND recipient = ?",
                (now, now, run_id, recipient),
            )
            self._log(db, run_id, recipient, "sent", detail)

    def mark_failed(self, run_id: int, recipient: str, error: str) -> None:
        """The message was certainly not delivered; the next send retries it."""
        now = _ts(_now())
        with self._tx() as db:
            db.execute(
                "UPDATE deliveries SET state = 'failed', last_error = ?, updated_at = ? "
                "WHERE run_id = ? AND recipient = ? AND state != 'sent'",
                (error[:_MAX_ERROR], now, run_id, recipient),
            )
            self._log(db, run_id, recipient, "failed", error)

    def note_delivery(self, run_id: int, recipient: str, detail: str) -> None:
        """Record a remark (e.g. "outcome unknown") without changing the state."""
        with self._tx() as db:
            db.execute(
                "UPDATE deliveries SET last_error = ?, updated_at = ? "
                "WHERE run_id = ? AND recipient = ?",
                (detail[:_MAX_ERROR], _ts(_now()), run_id, recipient),
            )
            row = db.execute(
                "SELECT state FROM deliveries WHERE run_id = ? AND recipient = ?",
                (run_id, recipient),
            ).fetchone()
            self._log(db, run_id, recipient, row[0] if row else "?", detail)

    def release_delivery(self, run_id: int, recipient: str) -> bool:
        """Admin decision: a ``sending`` row (outcome unknown) may be sent again.

        It becomes ``failed`` and the next send retries it; this can duplicate the email
        (same Message-ID, which lets many mail systems drop the copy).
        """
        with self._tx() as db:
            cur = db.execute(
                "UPDATE deliveries SET state = 'failed', updated_at = ? "
                "WHERE run_id = ? AND recipient = ? AND state = 'sending'",
                (_ts(_now()), run_id, recipient),
            )
            if cur.rowcount:
                self._log(db, run_id, recipient, "failed", "released by admin for resend")
            return cur.rowcount == 1

    def delivery(self, run_id: int, recipient: str) -> Delivery | None:
        row = self._db.execute(
            "SELECT * FROM deliveries WHERE run_id = ? AND recipient = ?", (run_id, recipient)
        ).fetchone()
        return None if row is None else _delivery_from_row(row)

    def deliveries(
        self, run_id: int | None = None, states: Iterable[str] | None = None
    ) -> list[Delivery]:
        clauses, args = [], []
        if run_id is not None:
            clauses.append("run_id = ?")
            args.append(run_id)
        if states is not None:
            sts = tuple(states)
            clauses.append(f"state IN ({','.join('?' * len(sts))})")
            args.extend(sts)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return [
            _delivery_from_row(r)
            for r in self._db.execute(
                f"SELECT * FROM deliveries {where} ORDER BY run_id, recipient", args
            )
        ]

    def pending_deliveries(self, run_id: int | None = None) -> list[Delivery]:
        """Deliveries the next send will try: ``pending`` and ``failed``."""
        return self.deliveries(run_id, ("pending", "failed"))

    def unconfirmed_deliveries(self, run_id: int | None = None) -> list[Delivery]:
        """Rows left ``sending``: in progress elsewhere, or outcome unknown (admin)."""
        return self.deliveries(run_id, ("sending",))

    def delivery_log(
        self, run_id: int | None = None, recipient: str | None = None, limit: int = 200
    ) -> list[DeliveryEvent]:
        clauses, args = [], []
        if run_id is not None:
            clauses.append("run_id = ?")
            args.append(run_id)
        if recipient is not None:
            clauses.append("recipient = ?")
            args.append(recipient)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return [
            DeliveryEvent(r["run_id"], r["recipient"], _dt(r["at"]), r["state"], r["detail"])
            for r in self._db.execute(
                f"SELECT * FROM delivery_log {where} ORDER BY id DESC LIMIT ?", (*args, limit)
            )
        ]


def _wrongly_crashed(run: sqlite3.Row) -> bool:
    """A run marked crashed by a process other than its owner (a guess that was wrong, since
    the run is being finished): it may still be finished. Its owner's own word is final."""
    owner = _row_owner(run)
    return (
        run["status"] == "crashed"
        and owner is not None
        and run["crashed_by"] != ""
        and run["crashed_by"] != owner.key
    )


def _finding_cols(f: Finding) -> tuple[object, ...]:
    return (f.severity.value, f.detail, f.message, f.link_text, int(f.watched), f.new_url)


def _finding_from_row(r: sqlite3.Row) -> Finding:
    return Finding(
        check=Check(r["check_name"]),
        severity=Severity(r["severity"]),
        page=r["page"],
        target=r["target"],
        detail=r["detail"],
        message=r["message"],
        link_text=r["link_text"],
        watched=bool(r["watched"]),
        new_url=r["new_url"],
    )


def _rows_of(run: sqlite3.Row) -> int:
    """The run whose pages and links rows are those of ``run`` (a ``runs`` row)."""
    return int(run["id"] if run["rows_run"] is None else run["rows_run"])


def _page_from_row(r: sqlite3.Row) -> Page:
    return Page(
        url=r["url"],
        status=r["status"],
        title=r["title"],
        final_url=r["final_url"],
        content_type=r["content_type"],
        depth=r["depth"],
        review_date=dt.date.fromisoformat(r["review_date"]) if r["review_date"] else None,
        review_date_source=r["review_date_source"],
        is_html=bool(r["is_html"]),
        error=r["error"],
    )


class StoredRefs(LazyTuple[LinkRef]):
    """``found_on`` of a link read back from the history (``Store.snapshot``): its stored
    JSON, decoded when first used, then kept. A replayed run's report needs most links'
    references only for report.json, which renders after the run is read back (beside
    the child's HTML); the findings need them only for the links with a problem.
    Compares equal to (and hashes like) the tuple of the same ``LinkRef`` items; pickles
    as that tuple."""

    __slots__ = ("_json", "_refs")

    def __init__(self, stored: str) -> None:
        self._json: str | None = stored
        self._refs: tuple[LinkRef, ...] | None = None

    def _decoded(self) -> tuple[LinkRef, ...]:
        if self._refs is None:
            assert self._json is not None
            self._refs = tuple(LinkRef(p, t, g) for p, t, g in json.loads(self._json))
            self._json = None
        return self._refs

    def __iter__(self) -> Iterator[LinkRef]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())

    def __repr__(self) -> str:
        return repr(self._decoded())


def _link_from_row(r: sqlite3.Row) -> LinkResult:
    return LinkResult(
        url=r["url"],
        verdict=Verdict(r["verdict"]),
        detail=r["detail"],
        status=r["status"],
        final_url=r["final_url"],
        redirect_chain=tuple(RedirectHop(u, int(s)) for u, s in json.loads(r["redirect_chain"])),
        content_type=r["content_type"],
        found_on=StoredRefs(r["found_on"]),
        pdf_link=bool(r["pdf_link"]),
        pdf_magic=None if r["pdf_magic"] is None else bool(r["pdf_magic"]),
        watched=bool(r["watched"]),
        internal=bool(r["internal"]),
        pdf_problem=r["pdf_problem"],
    )


def _delivery_from_row(r: sqlite3.Row) -> Delivery:
    return Delivery(
        run_id=r["run_id"],
        recipient=r["recipient"],
        state=r["state"],
        attempts=r["attempts"],
        message_id=r["message_id"],
        last_error=r["last_error"],
        created_at=_dt(r["created_at"]),
        updated_at=_dt(r["updated_at"]),
        sent_at=_dt(r["sent_at"]) if r["sent_at"] else None,
    )
