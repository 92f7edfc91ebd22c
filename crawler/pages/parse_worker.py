"""Forked helper processes that parse pages while the spider's process keeps fetching.

Parsing (lxml, ids, review date, link text) is most of the spider's own CPU; Scrapy's
per-request work is most of the rest, and both ran on one core. A worker is forked from
the audit process once the spider starts (so it has every module loaded already) and talks
over a socket pair: the spider sends (body, encoding, URL, Last-Modified, links wanted) and
awaits a :data:`Reading` (:func:`read_page`): the :class:`crawler.pages.extract.ParsedPage`, and
for a crawled page also each link joined to the page's URL and the answer as the re-run
cache stores it (``fetch_cache.encode_fetched``: JSON, compressed), work the spider's
process would otherwise do (in its profile on the PostgreSQL manual: the joins ~6 % of its
samples, the record's JSON ~3 % and its compression ~4 %). Requests are answered in order,
one at a time.

The spider forks one worker per CPU it may use (``worker_count``, at most four) and sends
each page to the worker with the fewest pages waiting. With one worker the crawl could go
no faster than that worker reads pages one after the other: on the PostgreSQL manual it was
busy ~95 % of the crawl while the audit process, busy ~75 %, waited for its readings, and a
second worker on the same two cores made the crawl ~0.07 s shorter (18 alternating rounds;
docs/performance.md, perf-7). On more cores the crawl can go as fast as the audit process.
Workers run at a lower priority (``crawler.app.processes.HELPER_NICENESS``): the audit
process, which keeps them fed, goes first when both want a core.

If a worker cannot be started or dies, :meth:`ParseWorker.read` raises
:class:`WorkerGone` and the spider sends its pages to the others, or with none left parses
in its own process: slower, same results.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import socket
import struct
from typing import Any

from crawler.app import processes
from crawler.pages.extract import ParsedPage, facts_from_body
from crawler.pages.urls import ResolveCache
from crawler.rerun.fetch_cache import Fetched, encode_fetched

_LEN = struct.Struct("!I")

#: One link of a page joined to it: absolute URL without fragment, fragment, skip reason
#: (``crawler.pages.urls.Resolved`` as a tuple).
Resolution = tuple[str, str | None, str | None]
#: What a body said (None: it could not be parsed); with links, also each link's
#: ``Resolution`` and, given an ``Answer``, the cache's record (``encode_fetched``).
Reading = tuple[ParsedPage | None, tuple[Resolution, ...] | None, bytes | None]
#: What the spider knows of an answer before its body is read, for the cache's record:
#: (status, content type, method, HTML, has a body, truncated).
Answer = tuple[int, str, str, bool, bool, bool]


def read_page(
    body: bytes | str,
    encoding: str,
    url: str,
    last_modified: str | None,
    phrases: tuple[str, ...],
    links: bool,
    resolver: ResolveCache,
    answer: Answer | None = None,
) -> Reading:
    """``facts_from_body``, and with ``links`` what the spider and the cache make of them:
    each link joined to the page, and (given the ``answer``) the cache's record of it,
    ``encode_fetched`` as the spider would call it."""
    page = facts_from_body(body, encoding, url, last_modified, phrases, links)
    if page is None or not links:
        return page, None, None
    base = page.base_url
    resolved = []
    for href, _, _ in page.links:
        r = resolver(base, href)
        resolved.append((r.base, r.fragment, r.skip))
    encoded = None
    if answer is not None:
        status, ctype, method, html, has_body, truncated = answer
        head = None if method == "HEAD" or isinstance(body, str) else body[:16]
        encoded = encode_fetched(
            Fetched(
                status,
                ctype,
                method,
                html,
                has_body,
                truncated,
                head,
                page.ids,
                page.soft_404,
                page,
            )
        )
    return page, tuple(resolved), encoded


def worker_count(most: int = 4) -> int:
    """Parse workers for this machine: one per CPU this process may run on, 1 to ``most``."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(most, cpus))


class WorkerGone(Exception):
    """The parse worker is not (or no longer) there."""


class ParseWorker:
    def __init__(self, child: processes.Forked) -> None:
        self._child = child
        self.pid = child.pid
        self._sock: socket.socket | None = child.sock
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._dead = False
        self._connecting: asyncio.Future[None] | None = None

    @classmethod
    def start(cls, phrases: tuple[str, ...]) -> ParseWorker | None:
        """Fork the worker (at a lower priority); None where fork is not available or
        fails."""
        child = processes.fork(lambda sock: _serve(sock, phrases), nice=processes.HELPER_NICENESS)
        return None if child is None else cls(child)

    def waiting(self) -> int:
        """Pages sent and not yet answered."""
        return len(self._pending)

    async def read(
        self,
        body: bytes,
        encoding: str,
        url: str,
        last_modified: str | None,
        links: bool,
        answer: Answer | None = None,
    ) -> Reading:
        if self._dead:
            raise WorkerGone
        if self._writer is None:
            # One connection for all callers: the first one's, awaited by the others.
            if self._connecting is None:
                self._connecting = asyncio.ensure_future(self._connect())
            await asyncio.shield(self._connecting)
        assert self._writer is not None
        req_id = self._next_id
        self._next_id += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        payload = pickle.dumps(
            (req_id, body, encoding, url, last_modified, links, answer),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        try:
            self._writer.write(_LEN.pack(len(payload)) + payload)
        except (OSError, RuntimeError) as e:
            self._pending.pop(req_id, None)
            self._fail_all()
            raise WorkerGone from e
        ok, value = await fut
        if not ok:
            raise RuntimeError(f"parse worker: {value}")
        return value  # type: ignore[no-any-return]

    async def _connect(self) -> None:
        assert self._sock is not None
        reader, self._writer = await asyncio.open_connection(sock=self._sock)
        self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                (n,) = _LEN.unpack(await reader.readexactly(_LEN.size))
                req_id, result = pickle.loads(await reader.readexactly(n))
                fut = self._pending.pop(req_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(result)
        except (asyncio.IncompleteReadError, OSError, pickle.UnpicklingError, EOFError):
            pass
        finally:
            self._fail_all()

    def _fail_all(self) -> None:
        self._dead = True
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(WorkerGone())

    def close(self) -> None:
        """Stop the worker (it exits when its socket closes) and reap it."""
        self._dead = True
        if self._reader_task is not None:
            self._reader_task.cancel()
        sock, self._sock = self._sock, None
        if sock is not None:
            # Shut down now: the stream's own close only happens on the loop's next turn.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            if self._writer is not None:
                with contextlib.suppress(Exception):
                    self._writer.close()
            else:
                sock.close()
        self._child.stop(5.0)


def _serve(sock: socket.socket, phrases: tuple[str, ...]) -> None:  # pragma: no cover
    """The worker's loop: answer each request in order until the socket closes."""
    stream = sock.makefile("rb")
    resolver = ResolveCache()
    while True:
        head = stream.read(_LEN.size)
        if len(head) < _LEN.size:
            return
        (n,) = _LEN.unpack(head)
        data = stream.read(n)
        if len(data) < n:
            return
        req_id, body, encoding, url, last_modified, links, answer = pickle.loads(data)
        try:
            result: tuple[bool, Any] = (
                True,
                read_page(body, encoding, url, last_modified, phrases, links, resolver, answer),
            )
        except Exception as e:
            result = (False, f"{type(e).__name__}: {e}"[:300])
        out = pickle.dumps((req_id, result), protocol=pickle.HIGHEST_PROTOCOL)
        sock.sendall(_LEN.pack(len(out)) + out)
