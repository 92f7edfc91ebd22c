"""Link references kept in a temporary SQLite file instead of memory.

A site of 100,000 pages has ~2 million link references (page, link text, tag, fragment):
held in memory they were the biggest part of an audit's resident size, growing with the
site (docs/performance.md, "Memory"). ``RefSpill`` appends them to a table during the crawl,
a few thousand rows at a time, and reads them back target by target when the report is
made, as often as the report is iterated.

A crawl of up to ``MEMORY_REFS`` references never makes the file: they stay in a list
(a few MB), read back the same way; writing them cost ~0.1 s of a 1,200-page audit.

The table is clustered by target (``WITHOUT ROWID``, key ``(target, seq)``), so one ordered
scan yields every target's references together, in the order they were found. The file
lives in a private temporary directory that ``close`` removes; it is also removed at exit
(``atexit``, a crash or Ctrl-C included) by the process that made it, never by a forked
child (report renderer, parse worker), which opens its own connection to read it.
"""

from __future__ import annotations

import atexit
import os
import pickle
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from crawler.app import processes

#: References buffered in memory before they are written (one transaction each).
BATCH = 5000
#: References kept in memory before the file is made (then written there, and every
#: later one too).
MEMORY_REFS = 100_000
#: SQLite page cache of the spill connection, KiB (its default is 2 MB; reads are scans).
CACHE_KIB = 4096

_SCHEMA = (
    "CREATE TABLE refs (t INTEGER NOT NULL, seq INTEGER NOT NULL, page TEXT NOT NULL, "
    "text TEXT NOT NULL, tag TEXT NOT NULL, frag TEXT, PRIMARY KEY (t, seq)) WITHOUT ROWID"
)

#: Spill directories are named PREFIX + the creating process's id + "-" + random.
PREFIX = "sitewatch-refs-"

#: One reference as read back: page, text, tag, fragment (None without ``#``).
Row = tuple[str, str, str, "str | None"]


class RefSpill:
    """Link references of one crawl, on disk. ``add`` during the crawl; ``targets`` and
    ``refs`` read them back (``flush`` first: ``targets`` does it)."""

    def __init__(self, directory: str | None = None) -> None:
        self._base = directory
        self._dir: str | None = None
        #: The file, once made (``MEMORY_REFS``).
        self.path: str | None = None
        self._owner = self._pid = os.getpid()
        self._conn: sqlite3.Connection | None = None
        #: Connections inherited from the parent after a fork: never used, never closed
        #: here (closing would touch the parent's SQLite state).
        self._inherited: list[sqlite3.Connection] = []
        self._buf: list[tuple[int, int, str, str, str, str | None]] = []
        self._seq = 0
        #: Buffered references by target, for ``refs`` while there is no file: made at
        #: the first call, again when references were added since (their count differs).
        self._index: dict[int, list[tuple[int, int, str, str, str, str | None]]] = {}
        self._indexed = 0
        #: References written to the file (``len(self)`` counts the buffered ones too).
        self.count = 0
        self._closed = False

    def _make_file(self) -> None:
        _sweep(self._base or tempfile.gettempdir())
        self._dir = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=self._base)
        self.path = os.path.join(self._dir, "refs.sqlite")
        atexit.register(self.close)
        self._db().execute(_SCHEMA)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("reference spill is closed")

    def _db(self) -> sqlite3.Connection:
        self._check_open()
        if self.path is None:
            self._make_file()
            assert self._conn is not None
            return self._conn
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        if self._conn is not None:  # forked: a connection of our own, to read
            self._inherited.append(self._conn)
            self._pid = os.getpid()
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        conn.execute("PRAGMA temp_store=FILE")
        self._conn = conn
        return conn

    def __len__(self) -> int:
        return self._seq

    def add(self, target: int, page: str, text: str, tag: str, fragment: str | None) -> None:
        """Record one reference to target number ``target``."""
        self._seq += 1
        self._buf.append((target, self._seq, page, text, tag, fragment))
        if self.path is not None:
            if len(self._buf) >= BATCH:
                self.flush()
        elif self._seq > MEMORY_REFS:
            self.flush()  # makes the file

    def flush(self) -> None:
        """Write the buffered references, if the file is made (``MEMORY_REFS``)."""
        if not self._buf or (self.path is None and self._seq <= MEMORY_REFS):
            return
        db = self._db()
        db.execute("BEGIN")
        db.executemany("INSERT INTO refs VALUES (?, ?, ?, ?, ?, ?)", self._buf)
        db.execute("COMMIT")
        self.count += len(self._buf)
        self._buf = []

    def targets(self) -> Iterator[tuple[int, str, str, str, str | None]]:
        """Every reference as (target, page, text, tag, fragment), grouped by target in
        ascending order and in the order each target's references were found."""
        self.flush()
        if self.path is None:
            self._check_open()
            # Stable: each target's references stay in the order they were found.
            return ((r[0], r[2], r[3], r[4], r[5]) for r in sorted(self._buf, key=_by_target))
        return self._db().execute("SELECT t, page, text, tag, frag FROM refs ORDER BY t, seq")

    def pack_targets(self, targets: Iterable[object]) -> None:
        """Store the crawl's targets (pickled, in order) for ``packed_targets``."""
        db = self._db()
        self.flush()
        db.execute("CREATE TABLE targets (n INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO targets (data) VALUES (?)",
            ((pickle.dumps(t, pickle.HIGHEST_PROTOCOL),) for t in targets),
        )
        db.execute("COMMIT")

    def packed_targets(self) -> Iterator[Any]:
        """The targets ``pack_targets`` stored, in the same order."""
        for (data,) in self._db().execute("SELECT data FROM targets ORDER BY n"):
            yield pickle.loads(data)

    def refs(self, target: int, fragment: str | None, any_fragment: bool) -> Iterator[Row]:
        """The references of one target (with ``fragment``, unless ``any_fragment``)."""
        self.flush()
        if self.path is None:
            self._check_open()
            if self._indexed != len(self._buf):
                index: dict[int, list[tuple[int, int, str, str, str, str | None]]] = {}
                for r in self._buf:
                    index.setdefault(r[0], []).append(r)
                self._index, self._indexed = index, len(self._buf)
            for r in self._index.get(target, ()):
                if any_fragment or r[5] == fragment:
                    yield r[2], r[3], r[4], r[5]
            return
        db = self._db()
        if any_fragment:
            cur = db.execute(
                "SELECT page, text, tag, frag FROM refs WHERE t = ? ORDER BY seq", (target,)
            )
        else:
            cur = db.execute(
                "SELECT page, text, tag, frag FROM refs WHERE t = ? AND frag IS ? ORDER BY seq",
                (target, fragment),
            )
        yield from cur

    def close(self) -> None:
        """Remove the file (in the process that made it; a forked child only lets go)."""
        if self._closed:
            return
        self._closed = True
        self._buf = []
        self._index, self._indexed = {}, 0
        mine = os.getpid() == self._owner
        if mine and self._dir is not None:
            atexit.unregister(self.close)
            if self._conn is not None:
                self._conn.close()
        self._conn = None
        if mine and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


def _by_target(row: tuple[int, int, str, str, str, str | None]) -> int:
    return row[0]


def _sweep(base: str) -> None:
    """Remove the spill directories of audits that were killed (SIGKILL leaves no chance
    to clean up): those whose creating process no longer exists."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        pid = name[len(PREFIX) :].partition("-")[0] if name.startswith(PREFIX) else ""
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        if not processes.alive(int(pid)):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
