"""The pass before a re-run: conditional requests for the URLs the re-run cache stores
(``crawler.rerun.fetch_cache``), asked before the crawl (pipelined where every question
carries an ETag, then one by one), in a forked child while the audit process starts Scrapy;
and the confirmations a replayed crawl asks for (``crawler.rerun.replay``).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from crawler.app import processes
from crawler.engine.scrapy_settings import ROBOTS_AGENT

if TYPE_CHECKING:
    import socket

    from protego import Protego

    from crawler.http.client import Client
    from crawler.rerun.fetch_cache import FetchCache


#: robots.txt read by the pass, at most (Google reads 500 KiB).
ROBOTS_BYTES = 500 * 1024


def conditional_headers(etag: str, last_modified: str) -> dict[str, str]:
    """The request headers that ask whether an answer with these validators changed."""
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


#: Connections per origin the pass pipelines its conditional requests over (at most the
#: crawl's per-host limit).
PIPELINED_CONNECTIONS = 4


@dataclass(frozen=True)
class PassSettings:
    """How the pass before a re-run asks (from ``crawl``: the crawl's own agent, limits
    and robots.txt rules)."""

    user_agent: str
    concurrency: int
    per_host: int
    timeout: float
    obey_robots: bool = True
    robots_agent: str = ROBOTS_AGENT


async def _revalidate(
    rows: list[tuple[str, int, str, str]],
    settings: PassSettings,
    confirms: Iterable[Confirm] = (),
) -> tuple[set[tuple[str, int]], int, set[str]]:
    """The pass: conditional requests for the stored ``rows`` (what answers 304 is
    fresh) and one request without redirects for each of ``confirms`` (what answers as
    expected is confirmed)."""
    from crawler.http.client import Client

    fresh: set[tuple[str, int]] = set()
    confirmed: set[str] = set()
    confirms = list(confirms)
    clients: list[Client] = []
    user_agent, timeout = settings.user_agent, settings.timeout

    def client() -> Client:
        c = Client(user_agent, timeout)
        clients.append(c)
        return c

    try:
        if settings.obey_robots:
            rows, confirms = await _robots_allow(rows, confirms, client, settings.robots_agent)
        # Pipelined first (crawler.http.client.pipelined: ~4 times less CPU a question
        # than one request after the other), the questions that carry an ETag only; the
        # rest, and what it could not ask for certain, are asked one by one below.
        workers = max(1, min(settings.concurrency, settings.per_host))
        unclear, unconfirmed = await _ask_pipelined(
            rows, confirms, settings, min(workers, PIPELINED_CONNECTIONS), fresh, confirmed
        )
        await _ask_one_by_one(unclear, unconfirmed, client, workers, fresh, confirmed)
    finally:
        for c in clients:
            c.close()
    return fresh, len(rows), confirmed


async def _robots_allow(
    rows: list[tuple[str, int, str, str]],
    confirms: list[Confirm],
    client: Callable[[], Client],
    robots_agent: str,
) -> tuple[list[tuple[str, int, str, str]], list[Confirm]]:
    """The ``rows`` and ``confirms`` robots.txt lets the pass ask about."""
    import asyncio

    origins = {}
    for url in [row[0] for row in rows] + [c.url for c in confirms if c.page]:
        p = urlsplit(url)
        origins.setdefault(f"{p.scheme}://{p.netloc}", None)

    parsers = await asyncio.gather(*(read_robots(client(), o, robots_agent) for o in origins))
    by_origin = dict(zip(origins, parsers, strict=True))
    kept = []
    for row in rows:
        p = urlsplit(row[0])
        rp = by_origin[f"{p.scheme}://{p.netloc}"]
        if rp is None:
            continue
        if row[1] == 4 and not rp.can_fetch(row[0], robots_agent):
            continue
        kept.append(row)
    # A page to confirm must be one the crawl may still ask for, on a host that
    # sets no pace (outside targets are checked whatever their robots.txt says).
    kept_confirms = []
    for c in confirms:
        if c.page:
            p = urlsplit(c.url)
            rp = by_origin.get(f"{p.scheme}://{p.netloc}")
            if rp is None or not rp.can_fetch(c.url, robots_agent):
                continue
        kept_confirms.append(c)
    return kept, kept_confirms


async def _ask_pipelined(
    rows: list[tuple[str, int, str, str]],
    confirms: list[Confirm],
    settings: PassSettings,
    connections: int,
    fresh: set[tuple[str, int]],
    confirmed: set[str],
) -> tuple[list[tuple[str, int, str, str]], list[Confirm]]:
    """Ask everything pipelined; what it could not ask for certain is returned."""
    from crawler.http.client import pipelined

    answers = await pipelined(
        [
            ("HEAD" if mode == 1 else "GET", url, conditional_headers(etag, last_modified))
            for url, mode, etag, last_modified in rows
        ]
        + [(c.method, c.url, {}) for c in confirms],
        user_agent=settings.user_agent,
        timeout=settings.timeout,
        connections=connections,
    )
    unclear = []
    for row, answer in zip(rows, answers[: len(rows)], strict=True):
        if answer is None:
            unclear.append(row)  # not answered for certain: ask it on its own
        elif answer.status == 304:  # pipelined only with If-None-Match, its ETag checked
            fresh.add((row[0], row[1]))
    unconfirmed = []
    for c, answer in zip(confirms, answers[len(rows) :], strict=True):
        if answer is None:
            unconfirmed.append(c)
        elif _as_before(c, answer.status, answer.headers):
            confirmed.add(c.url)
    return unclear, unconfirmed


async def _ask_one_by_one(
    unclear: list[tuple[str, int, str, str]],
    unconfirmed: list[Confirm],
    client: Callable[[], Client],
    workers: int,
    fresh: set[tuple[str, int]],
    confirmed: set[str],
) -> None:
    """Ask ``unclear`` and ``unconfirmed`` one request after the other, ``workers``
    connections at a time."""
    import asyncio

    todo = iter(unclear)
    to_confirm = iter(unconfirmed)

    async def worker() -> None:
        http = client()
        for url, mode, etag, last_modified in todo:
            try:
                resp = await http.request(
                    "HEAD" if mode == 1 else "GET",
                    url,
                    conditional_headers(etag, last_modified),
                )
            except Exception:
                continue
            if resp.status == 304:
                fresh.add((url, mode))
        for c in to_confirm:
            try:
                resp = await http.request(c.method, c.url)
            except Exception:
                continue
            if _as_before(c, resp.status, resp.headers):
                confirmed.add(c.url)

    await asyncio.gather(*(worker() for _ in range(workers)))


async def read_robots(client: Client, origin: str, robots_agent: str) -> Protego | None:
    """The robots.txt of ``origin`` (``scheme://host[:port]``) read with Protego, as the
    crawl's robots middleware (Scrapy's default parser) reads it, so both read wildcards
    and agent groups alike. None: leave the origin to the crawl (robots.txt unreadable,
    compressed or longer than ``ROBOTS_BYTES``, a server error, or it sets a pace:
    ``Crawl-delay``, ``Request-rate``)."""
    from protego import Protego

    try:
        resp = await client.get_following(f"{origin}/robots.txt", body_limit=ROBOTS_BYTES)
        if resp.status >= 500 or len(resp.body) >= ROBOTS_BYTES:
            return None  # a server error, or more than the crawl would read
        if resp.headers.get("content-encoding", "identity").strip().lower() != "identity":
            return None  # compressed although asked not to be: the crawl's to read
        text = ""
        if resp.status in (401, 403):  # ask about no page there
            text = "User-agent: *\nDisallow: /\n"
        elif resp.status < 300:
            text = resp.body.decode("utf-8", "replace")
        rp = Protego.parse(text)
    except Exception:
        return None
    if rp.crawl_delay(robots_agent) or rp.request_rate(robots_agent):
        return None
    return rp


def _as_before(c: Confirm, status: int, headers: dict[str, str]) -> bool:
    """Whether an answer to ``c`` is the one the previous run had."""
    location = headers.get("location")
    went = urljoin(c.url, location.strip()) if location else ""
    return (
        status == c.status
        and went == c.location
        and (c.content_type is None or headers.get("content-type", "") == c.content_type)
    )


@dataclass(frozen=True)
class Confirm:
    """A URL the pass asks once more (``method``, without following redirects): it is
    confirmed when it answers ``status`` again, for a redirect leads to ``location`` again
    and, if given, sends ``content_type`` again.
    ``page``: the crawl would fetch it as a page (robots.txt applies)."""

    url: str
    status: int
    location: str = ""
    page: bool = False
    method: str = "GET"
    #: The Content-Type it must send again (None: not looked at).
    content_type: str | None = None


def confirm_targets(confirms: Iterable[Confirm], settings: PassSettings) -> set[str]:
    """Ask ``confirms`` here (:mod:`crawler.rerun.replay`; the stored rows are asked by a
    forked pass meanwhile): the URLs that answered as before. Empty if the pass failed."""
    import asyncio

    try:
        return asyncio.run(_revalidate([], settings, confirms))[2]
    except Exception:
        return set()


class PendingRevalidation:
    """A revalidation pass started by ``FetchCache.start_revalidate``: running in a forked
    child, or (no fork) already run in this process; nothing stored: nothing to do.
    :meth:`finish` delivers the answers; ``abort`` stops a child (a no-op otherwise)."""

    def __init__(
        self,
        cache: FetchCache,
        rows: list[tuple[str, int, str, str]],
        settings: PassSettings,
        fork: bool = True,
    ):
        self._cache = cache
        #: The stored rows the pass asks about.
        self.rows = rows
        self._settings = settings
        self.pid: int | None = None
        self._child: processes.Forked | None = None
        self._result: tuple[set[tuple[str, int]], int] | None = None
        if not rows:
            return
        if not fork:
            self._result = self._in_process()
            return
        # Loaded before the fork: the child needs them (and the crawl, protego).
        import protego  # noqa: F401

        import crawler.http.client  # noqa: F401

        self._child = processes.fork(lambda sock: _revalidate_child(rows, settings, sock))
        if self._child is not None:
            self.pid = self._child.pid

    def finish(self) -> None:
        """Wait for the pass; its answers go to the cache's ``fresh`` and ``revalidated``.
        A child that failed or said nothing readable: the pass runs again in-process."""
        result = self._result
        if self.pid is not None:
            result = self._reap()
            if result is None:
                result = self._in_process()
        if result is not None:
            self._cache.fresh, self._cache.revalidated = result

    def _in_process(self) -> tuple[set[tuple[str, int]], int] | None:
        """The pass in this process; in a thread of its own when an event loop runs here
        (the spider's ``start``: ``asyncio.run`` cannot nest). None if it failed: then
        nothing is fresh and the crawl asks about everything itself."""
        import asyncio
        import threading

        def run() -> tuple[set[tuple[str, int]], int]:
            return asyncio.run(_revalidate(self.rows, self._settings))[:2]

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return run()
        box: list[tuple[set[tuple[str, int]], int]] = []
        thread = threading.Thread(target=lambda: box.append(run()), name="revalidate")
        thread.start()
        thread.join()
        return box[0] if box else None

    def _reap(self) -> tuple[set[tuple[str, int]], int] | None:
        child, self._child = self._child, None
        self.pid = None
        if child is None:
            return None
        with child.sock, child.sock.makefile("rb") as stream:
            data = stream.read()
        if child.wait() != processes.Ended(0) or not data:
            return None
        try:
            fresh, count = pickle.loads(data)
        except Exception:
            return None
        if not isinstance(fresh, set) or not isinstance(count, int):
            return None
        return fresh, count

    def abort(self) -> None:
        """Stop and reap the child (the audit is failing)."""
        child, self._child = self._child, None
        self.pid = None
        if child is not None:
            child.kill()
            child.sock.close()


def _revalidate_child(
    rows: list[tuple[str, int, str, str]], settings: PassSettings, sock: socket.socket
) -> None:  # pragma: no cover - runs in the child
    import asyncio

    sock.sendall(pickle.dumps(asyncio.run(_revalidate(rows, settings))[:2]))
