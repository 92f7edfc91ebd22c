"""A head start: the first pages fetched and read in a forked child while Scrapy imports.

The audit process spends its first ~0.3 s importing Scrapy and building its engine, on
one core, while the other waits. Just before those imports the audit forks this child:
it fetches pages from the start URLs the way the crawl would (one GET each, the crawl's
user agent, robots.txt, scope, exclusions and limits, at most ``CONNECTIONS`` connections,
never more than the per-host limit) and reads each HTML page as a parse worker does
(``parse_worker.read_page``). When the spider starts, it stops the child, which finishes
the requests under way and sends what it has (:meth:`HeadStart.take`). Each answer becomes
a Scrapy response to the request the spider makes for that URL, handled by the spider's
own code as if it had been downloaded (``AuditSpider._submit``), with the child's reading
instead of a parse worker's: the spider checks that it would have asked for the same one
(same encoding, same cache record), else it fetches the page itself. The spider handles a
page of the head start only once every page of a smaller depth has its answer, as the
crawl's own downloads come in about breadth first; else links would be found one level
too deep (``AuditSpider._held``).

What the child does not take is left to the crawl: an answer that sets a cookie (and
everything after it), a body in another content coding, a URL Scrapy would send
differently, a failed request, a PDF (read in full by the crawl: ``crawler.pdf_fetch``),
anything on a host whose robots.txt sets a pace or cannot be read cleanly. The child
reads robots.txt itself, so a host sees that request once more.
Only a crawl without ``crawl.delay`` gets a head start; a re-run with pages to revalidate
uses the second core for that pass instead. ``SITEWATCH_HEAD_START=0`` in the environment
turns it off.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from checks.verdicts import is_html_type, is_pdf_type
from crawler.crawl_state import CrawlState, Target
from crawler.extract import (
    CRAWL_TAGS,
    SNIFF_BYTES,
    declared_encoding,
    looks_like_html,
    parser_for,
)
from crawler.forked import fork_child
from crawler.urls import ResolveCache, path_trap, trap_shape

if TYPE_CHECKING:
    from crawler.fetch_cache import PassSettings
    from crawler.parse_worker import Answer, Reading
    from crawler.quick_http import Client

#: What ``_get`` says of an answer that sets a cookie.
SETS_COOKIE = "cookie"
#: The environment variable that turns the head start off ("0").
HEAD_START_ENV = "SITEWATCH_HEAD_START"
#: Connections the child fetches over (at most the crawl's per-host limit).
CONNECTIONS = 4
#: Pages the child takes at most (its answers wait in memory until the spider starts).
MAX_PAGES = 2000
#: How long :meth:`HeadStart.take` waits for the child's answers beyond the crawl's
#: timeout (the child finishes its requests under way first) before it gives up on them.
TAKE_MARGIN = 5.0
#: How long :meth:`HeadStart.close` waits for the child to exit before it kills it.
REAP_TIMEOUT = 1.0
#: Of a body the child read, the spider gets this much: all it looks at when it has the
#: reading (a ``<meta>`` charset, which w3lib looks for in the first 4,096 bytes; the
#: first bytes; whether there is a body). Sending whole bodies made taking them cost
#: more than the head start saved.
PREFIX = 4096


def enabled() -> bool:
    """Whether the audit may fork a head start here (``HEAD_START_ENV``, ``os.fork``)."""
    return hasattr(os, "fork") and os.environ.get(HEAD_START_ENV, "1") != "0"


@dataclass(frozen=True, slots=True)
class Taken:
    """One answer the child received to the GET the crawl would send for its URL."""

    status: int
    #: Response headers, names lower-cased, as received.
    headers: tuple[tuple[str, str], ...]
    #: The body; with a ``reading``, only its first ``PREFIX`` bytes.
    body: bytes
    #: The body was cut where the spider's download would have stopped.
    truncated: bool
    #: What a parse worker made of the body, read as ``encoding`` (``parse_worker.read_page``),
    #: with the re-run cache's record of the answer if ``recorded``; None: not read (the
    #: spider reads it).
    encoding: str | None = None
    recorded: bool = False
    reading: Reading | None = None


class HeadStart:
    """The forked child (:meth:`start`) and what it fetched (:meth:`take`)."""

    def __init__(self, pid: int, sock: socket.socket, timeout: float) -> None:
        self.pid: int | None = pid
        self._sock: socket.socket | None = sock
        #: How long :meth:`take` waits for the answers.
        self.timeout = timeout

    @classmethod
    def start(
        cls,
        state: CrawlState,
        settings: PassSettings,
        phrases: tuple[str, ...],
        record: bool,
    ) -> HeadStart | None:
        """Fork the child; None where fork is not available or fails. ``record``: the
        re-run cache will store the answers (the child encodes their records)."""

        def run(sock: socket.socket) -> None:  # pragma: no cover - runs in the child
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            # It writes nothing there, and must not keep the audit's output open (a
            # caller reading it to its end) should it outlive the audit for a moment.
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            os.close(null)
            _serve(sock, state, settings, phrases, record)

        forked = fork_child(run)
        if forked is None:
            return None
        return cls(*forked, timeout=settings.timeout + TAKE_MARGIN)

    def take(self) -> dict[str, bytes]:
        """Stop the child; its answers by URL, each a pickled :class:`Taken` (read with
        :func:`taken`), in the order it got them; none if it failed. The child is reaped
        by :meth:`close`."""
        sock, self._sock = self._sock, None
        if sock is None:
            return {}
        data = bytearray()
        try:
            sock.sendall(b"!")  # stop: the child sends what it has and exits
            sock.settimeout(self.timeout)
            while chunk := sock.recv(1 << 20):
                data += chunk
        except OSError:  # includes the timeout
            data.clear()
        finally:
            sock.close()
        try:
            answers = pickle.loads(data) if data else []  # a cut pickle does not load
            return {url: frame for url, frame in answers}
        except Exception:
            return {}

    def close(self) -> None:
        """Reap the child (killed if it is still there: the audit is failing, or it did
        not exit after sending its answers)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        pid, self.pid = self.pid, None
        if pid is None:
            return
        with contextlib.suppress(ChildProcessError, OSError):
            deadline = time.monotonic() + REAP_TIMEOUT
            while os.waitpid(pid, os.WNOHANG)[0] == 0:
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.001)


def read_taken(frame: bytes) -> Taken | None:
    """One answer of :meth:`HeadStart.take`; None if it does not read back."""
    try:
        got = pickle.loads(frame)
    except Exception:
        return None
    return got if isinstance(got, Taken) else None


def _serve(
    sock: socket.socket,
    state: CrawlState,
    settings: PassSettings,
    phrases: tuple[str, ...],
    record: bool,
) -> None:  # pragma: no cover - runs in the child
    """Fetch until the parent asks (a byte on ``sock``), then send it the answers and
    exit. Requests under way when it asks are finished first (and their answers sent):
    when the crawl starts, none of the child's requests is still being served, so the
    crawl's per-host limits hold."""
    import asyncio  # in the child only: the audit process forks it before importing asyncio

    # Each answer pickled as it comes: the parent waits for little but their sending.
    answers: list[tuple[str, bytes]] = []
    asked: list[bytes] = []  # the parent's byte once it came (b"": it went away)
    try:
        with contextlib.suppress(Exception):
            asyncio.run(_fetch(sock, state, settings, phrases, record, answers, asked))
        sock.setblocking(True)
        if not asked:  # the pages ran out (or the fetching failed) before it asked
            asked.append(sock.recv(1))
        if asked[0]:
            sock.sendall(pickle.dumps(answers, protocol=pickle.HIGHEST_PROTOCOL))
        sock.close()
    finally:
        os._exit(0)


async def _fetch(
    sock: socket.socket,
    state: CrawlState,
    settings: PassSettings,
    phrases: tuple[str, ...],
    record: bool,
    answers: list[tuple[str, bytes]],
    asked: list[bytes],
) -> None:
    """Fetch and read pages breadth first from the start URLs until the parent asks (a
    byte on ``sock``, put in ``asked``), the pages run out, or a limit is reached; each
    answer goes to ``answers`` as (URL, pickled ``Taken``)."""
    import asyncio

    from w3lib.url import safe_url_string

    from crawler.fetch_cache import read_robots
    from crawler.quick_http import Client
    from crawler.scrapy_settings import REQUEST_HEADERS

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()  # no more requests: the parent asked, or a limit is reached
    more = asyncio.Event()  # the queue may have grown, or the fetching is over

    def on_ask() -> None:
        loop.remove_reader(sock.fileno())
        try:
            byte = sock.recv(1)
        except OSError:
            byte = b""
        if not byte:  # the audit process is gone (killed): nobody wants the answers
            os._exit(0)
        asked.append(byte)
        stop.set()
        more.set()

    sock.setblocking(False)
    loop.add_reader(sock.fileno(), on_ask)
    p = state.settings
    limit = min(p.max_pages, MAX_PAGES)
    n = max(1, min(CONNECTIONS, settings.per_host, settings.concurrency))
    clients = [Client(settings.user_agent, settings.timeout, REQUEST_HEADERS) for _ in range(n)]
    robots: dict[str, Any] = {}
    queue: deque[tuple[str, int, bool]] = deque((u, 0, True) for u in p.start_urls)
    seen = set(p.start_urls)
    shapes: Counter[str] = Counter()
    resolver = ResolveCache()
    busy = 0

    def follow(page_url: str, reading: Reading, depth: int) -> None:
        page, resolved, _ = reading
        if page is None or resolved is None or depth + 1 > p.max_depth:
            return
        for (_, _, tag), (base, _, skip) in zip(page.links, resolved, strict=True):
            if skip or tag not in CRAWL_TAGS or base in seen or len(seen) >= limit:
                continue
            if not state.in_scope(base) or state.excluded(base):
                continue
            # Not a page the spider would crawl (``_link``): a PDF by its path, a trap.
            if Target(base, internal=True).path_is_pdf or path_trap(base, p.max_path_segments):
                continue
            shape = trap_shape(base)
            shapes[shape] += 1
            if shapes[shape] > p.max_pages_per_pattern:
                continue
            if settings.obey_robots:
                rp = robots.get(_origin(base))
                if rp is None or not rp.can_fetch(base, settings.robots_agent):
                    continue
            seen.add(base)
            queue.append((base, depth + 1, False))
        more.set()

    async def worker(client: Client) -> None:
        nonlocal busy
        while not stop.is_set():
            if not queue:
                if not busy:
                    return
                more.clear()
                await more.wait()
                continue
            url, depth, start = queue.popleft()
            if settings.obey_robots and start and robots.get(_origin(url)) is None:
                continue  # robots.txt sets a pace (or could not be read): the crawl's
            if safe_url_string(url) != url:
                continue  # Scrapy would send it otherwise: left to the crawl
            busy += 1
            try:
                got = await _get(client, url, p.max_page_bytes, phrases, record, resolver)
            except Exception:
                got = None
            finally:
                busy -= 1
                more.set()
            if got is None:
                continue
            if got == SETS_COOKIE:
                stop.set()  # the crawl would send the cookie from here on: its pages
                more.set()
                return
            assert isinstance(got, Taken)
            answers.append((url, pickle.dumps(got, protocol=pickle.HIGHEST_PROTOCOL)))
            if len(answers) >= limit:
                stop.set()
                more.set()
            elif got.reading is not None and not stop.is_set():
                follow(url, got.reading, depth)

    async def crawl() -> None:
        if settings.obey_robots:
            origins = {_origin(u) for u in p.start_urls}
            parsers = await asyncio.gather(
                *(read_robots(clients[0], o, settings.robots_agent) for o in origins)
            )
            robots.update(zip(origins, parsers, strict=True))
        await asyncio.gather(*(worker(c) for c in clients))

    try:
        await crawl()
    finally:
        if not asked:
            loop.remove_reader(sock.fileno())
        for c in clients:
            c.close()


async def _get(
    client: Client,
    url: str,
    max_page_bytes: int,
    phrases: tuple[str, ...],
    record: bool,
    resolver: ResolveCache,
) -> Taken | str | None:
    """One page as the crawl would get it; ``SETS_COOKIE`` if it sets one; None: not
    taken."""
    from crawler.parse_worker import read_page  # imports asyncio: in the child only

    answer = await client.request("GET", url, body_limit=max_page_bytes)
    headers = answer.headers
    if "set-cookie" in headers or "set-cookie2" in headers:
        return SETS_COOKIE
    if headers.get("content-encoding", "identity").strip().lower() != "identity":
        return None
    ctype = headers.get("content-type", "")
    if is_pdf_type(ctype):
        return None  # the crawl reads a PDF in full (crawler.pdf_fetch): not cut here
    body = answer.body
    cap = SNIFF_BYTES if ctype and not is_html_type(ctype) else max_page_bytes
    truncated = len(body) >= cap
    if truncated:
        body = body[:cap]
    items = tuple(headers.items())
    html = is_html_type(ctype) or (not ctype and looks_like_html(body))
    if answer.status != 200 or not html or not body:
        return Taken(answer.status, items, body, truncated)
    encoding = declared_encoding(ctype, body)
    if encoding is None or parser_for(encoding) is None:
        return Taken(answer.status, items, body, truncated)  # Scrapy's guess: the spider's
    cache_answer: Answer | None = None
    if record and ("etag" in headers or "last-modified" in headers):
        cache_answer = (200, ctype, "GET", True, True, truncated)
    reading = read_page(
        body,
        encoding,
        url,
        headers.get("last-modified"),
        phrases,
        True,
        resolver,
        cache_answer,
    )
    recorded = cache_answer is not None
    return Taken(answer.status, items, body[:PREFIX], truncated, encoding, recorded, reading)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
