"""A small HTTP/1.1 client for the re-run's pass over asyncio streams: one request at a time
(``Client``) and pipelined status questions (``pipelined``), both written by
``_request_head`` and read by ``crawler.http.http1``, the audit's own response reader (one HTTP
stack; docs/decisions/0001-http-stack.md).

The pass before a re-run (``crawler.rerun.revalidate``) asks one question per stored URL
("changed since?") and reads no body but robots.txt. aiohttp costs ~0.4 s to import and
~0.3 ms a request here; this client imports in ~0.05 s and keeps one connection per
origin and worker (keep-alive; a short body it does not read, such as an error page, is
drained, a longer one closes the connection). Plain HTTP and HTTPS (certificates verified).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

from crawler.http import http1

_READ = 65536
_MAX_HEAD = 64 * 1024
#: A body nobody reads, up to this long (an error page), is read and dropped so the
#: connection can ask again; a longer one closes it.
_DRAIN = 64 * 1024


def _ascii(target: str) -> str:
    """The request target as sent: non-ASCII characters and spaces percent-encoded (UTF-8),
    as a browser sends a link written with them; what is encoded already stays."""
    if target.isascii() and " " not in target:
        return target
    return quote(target, safe="/?&=%:@!$'()*+,;~[]")


def _addressed(url: str) -> tuple[tuple[str, str, int], str, str]:
    """(origin key (scheme, host name, port), ``Host`` header, request target) of an
    http/https ``url``; raises ValueError for anything else (UnicodeError for a host
    name IDNA cannot encode)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"cannot ask {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    target = _ascii((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    host = parts.netloc.rpartition("@")[2]
    if not host.isascii():
        name, colon, port_text = host.rpartition(":") if parts.port else (host, "", "")
        host = name.encode("idna").decode("ascii") + colon + port_text
    return (scheme, parts.hostname, port), host, target


_TLS: ssl.SSLContext | None = None


def _tls(scheme: str) -> ssl.SSLContext | None:
    """The (verifying) TLS context for ``https``, made at its first use; None for http."""
    global _TLS
    if scheme != "https":
        return None
    if _TLS is None:
        _TLS = ssl.create_default_context()
    return _TLS


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes = b""


class _Conn:
    """One connection: its reading side (``crawler.http.http1.Stream``) and its writer."""

    __slots__ = ("stream", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stream = http1.Stream(reader)
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


#: Errors that mean a kept-alive connection had been closed by the server meanwhile.
_STALE = (ConnectionError, http1.ProtocolError, http1.DataLoss)


class Client:
    """Connections of one worker (one request at a time), by origin."""

    def __init__(self, user_agent: str, timeout: float) -> None:
        self.user_agent = user_agent
        self.timeout = timeout
        self._conns: dict[tuple[str, str, int], _Conn] = {}
        self._reused = False

    async def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        *,
        body_limit: int = 0,
    ) -> Answer:
        """One request, no redirects followed; reads up to ``body_limit`` bytes of body
        (a longer body is cut there). Raises OSError/ValueError/TimeoutError,
        ``http1.ProtocolError`` or ``http1.DataLoss``."""
        async with asyncio.timeout(self.timeout):  # no extra task, unlike wait_for
            return await self._asked(method, url, headers or {}, body_limit)

    async def _asked(
        self, method: str, url: str, headers: dict[str, str], body_limit: int
    ) -> Answer:
        try:
            return await self._request(method, url, headers, body_limit)
        except _STALE:
            if not self._reused:
                raise
        # A kept-alive connection the server had closed meanwhile: once more, afresh.
        return await self._request(method, url, headers, body_limit)

    async def get_following(self, url: str, *, body_limit: int, hops: int = 5) -> Answer:
        """GET ``url`` following up to ``hops`` redirects (robots.txt)."""
        for _ in range(hops + 1):
            answer = await self.request("GET", url, body_limit=body_limit)
            location = answer.headers.get("location")
            if answer.status not in (301, 302, 303, 307, 308) or not location:
                return answer
            url = urljoin(url, location.strip())
        return answer

    async def _request(
        self, method: str, url: str, headers: dict[str, str], body_limit: int
    ) -> Answer:
        made = _request_head(method, url, self.user_agent, headers)
        if made is None:
            raise ValueError(f"cannot ask {url!r} with these headers")
        key, request = made
        conn: _Conn | None = self._conns.pop(key, None)
        self._reused = conn is not None
        if conn is None:
            conn = await self._open(*key)
        try:
            conn.writer.write(request)
            head = await http1.read_head(conn.stream, method, _MAX_HEAD)
            answer = Answer(
                head.status,
                {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers},
            )
            if not body_limit and (head.length is None or not 0 <= head.length <= _DRAIN):
                return answer  # a long body nobody reads: drop the connection, don't drain it
            body = bytearray()
            async for piece in http1.body(conn.stream, head):
                if body_limit:  # else a short body drained to keep the connection
                    body += piece[: body_limit - len(body)]
                    if len(body) >= body_limit:
                        answer.body = bytes(body)
                        return answer
            answer.body = bytes(body)
            if head.keep and not conn.stream.buf:
                self._conns[key] = conn
                conn = None
            return answer
        finally:
            if conn is not None:
                conn.close()

    async def _open(self, scheme: str, host: str, port: int) -> _Conn:
        reader, writer = await asyncio.open_connection(host, port, ssl=_tls(scheme))
        return _Conn(reader, writer)

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()


# -- pipelined status questions ----------------------------------------------------------

#: Requests written ahead of their answers on one connection.
PIPELINE_DEPTH = 64
#: An answer's head (status line and headers) longer than this ends the pipeline.
_MAX_PIPELINED_HEAD = 16 * 1024


_BREAKS = re.compile("[\r\n\0]")


class _Unclear(Exception):
    """An answer this parser does not follow with certainty: stop using the connection."""


#: The headers a pipelined answer keeps (``Answer.headers``; names in lower case).
_KEPT = {b"location": "location", b"content-type": "content-type", b"etag": "etag"}


async def _read_answer(s: http1.Stream, method: str) -> tuple[Answer, bool]:
    """Read one answer (``crawler.http.http1``; its body skipped, only the ``_KEPT`` headers);
    (answer, the connection stays open). Raises ``_Unclear`` for anything it does not
    follow with certainty: a malformed head or chunk, a body ended by the connection's
    close or longer than 64 KiB, a connection that ended early."""
    try:
        head = await http1.read_head(s, method, _MAX_PIPELINED_HEAD)
        if head.length is None:
            raise _Unclear("body delimited by the connection's end")
        if head.length > _DRAIN:
            raise _Unclear("long body")
        total = 0
        async for piece in http1.body(s, head):
            total += len(piece)
            if total > _DRAIN:
                raise _Unclear("long body")
    except (http1.ProtocolError, http1.DataLoss, ConnectionResetError) as e:
        raise _Unclear(str(e) or type(e).__name__) from e
    kept = {}
    for name, value in head.headers:
        key = _KEPT.get(name.lower())
        if key is not None:
            kept[key] = value.decode("latin-1")
    return Answer(head.status, kept), head.keep


def _request_head(
    method: str, url: str, user_agent: str, headers: dict[str, str]
) -> tuple[tuple[str, str, int], bytes] | None:
    """(origin key, request bytes) of a request without a body (``Client`` and
    ``pipelined``); None when it cannot be sent so (not http/https, a header value with a
    line break or a non-ASCII character)."""
    try:
        key, host, target = _addressed(url)
    except ValueError:  # not http/https, a bad port, a host name IDNA cannot encode
        return None
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {host}",
        f"User-Agent: {user_agent}",
        "Accept-Encoding: identity",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    if any(not line.isascii() or _BREAKS.search(line) for line in lines):
        return None  # a line break would end the head early: another request smuggled in
    return key, ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


#: A pipelined request: (its index, method, the entity tag it asks about, its bytes).
_Piped = tuple[int, str, str, bytes]


def same_etag(asked: str, answered: str | None) -> bool:
    """Whether a 304 names the entity tag ``asked`` (``If-None-Match``'s weak comparison);
    a 304 without one is not taken."""
    if not answered:
        return False
    return asked.strip().removeprefix("W/") == answered.strip().removeprefix("W/")


async def pipelined(
    requests: list[tuple[str, str, dict[str, str]]],
    *,
    user_agent: str,
    timeout: float,
    connections: int,
) -> list[Answer | None]:
    """The answer to each of ``requests`` (method, URL, headers): its status and its
    ``Location``, ``Content-Type`` and ``ETag`` headers (no body), asked
    over at most ``connections`` kept-alive connections per origin with up to
    ``PIPELINE_DEPTH`` requests written ahead of their answers (HTTP/1.1 pipelining).

    Only requests that carry ``If-None-Match`` are pipelined, and a 304 is taken only when
    it names the entity tag its request asked about (weak comparison): an answer sent out
    of order, or paired with the wrong request, ends the connection instead of marking
    another page unchanged. Requests without an entity tag are left None (the caller asks
    them one at a time on kept-alive connections, ``Client``).

    Only the status line, those headers and the framing ones are read; bodies up to
    64 KiB are skipped. None for a request whose answer is not known for certain: not sent, a
    connection that failed or closed, an answer this parser does not follow (a long body,
    a body ended by the connection's close): the caller asks those again another way.
    Each connection stops at the first such answer.
    """
    results: list[Answer | None] = [None] * len(requests)
    by_origin: dict[tuple[str, str, int], list[_Piped]] = {}
    for i, (method, url, headers) in enumerate(requests):
        etag = headers.get("If-None-Match", "")
        made = _request_head(method, url, user_agent, headers) if etag else None
        if made is not None:
            by_origin.setdefault(made[0], []).append((i, method, etag, made[1]))

    async def connection(key: tuple[str, str, int], todo: list[_Piped]) -> bool:
        """Ask ``todo`` (taking what is sent off it) over one connection; True when the
        server closed it cleanly (``Connection: close``) and the rest may be asked on a
        new one."""
        scheme, host, port = key
        writer = None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, ssl=_tls(scheme))
            s = http1.Stream(reader)
            while todo:
                batch = todo[:PIPELINE_DEPTH]
                del todo[:PIPELINE_DEPTH]
                writer.write(b"".join(piped[3] for piped in batch))
                for n, (i, method, etag, _) in enumerate(batch):
                    async with asyncio.timeout(timeout):
                        answer, keep = await _read_answer(s, method)
                    if answer.status == 304 and not same_etag(etag, answer.headers.get("etag")):
                        raise _Unclear("a 304 for another entity tag: answers out of step")
                    results[i] = answer
                    if not keep:
                        todo[:0] = batch[n + 1 :]  # unanswered: for a new connection
                        return True
            return False
        except (_Unclear, OSError, TimeoutError, ValueError):
            todo.clear()  # left to the caller
            return False
        finally:
            if writer is not None:
                writer.close()

    async def origin(key: tuple[str, str, int], rows: list[_Piped]) -> None:
        # Each connection takes an even share. What a cleanly closed connection left
        # (a server's limit of answers per connection) is asked on a new one, as long as
        # the connections got answers.
        n = max(1, connections)
        shares = [rows[k::n] for k in range(n)]
        while True:
            shares = [share for share in shares if share]
            if not shares:
                return
            before = sum(map(len, shares))
            closed = await asyncio.gather(*(connection(key, share) for share in shares))
            if not any(closed) or before - sum(map(len, shares)) < len(shares):
                return

    await asyncio.gather(*(origin(key, rows) for key, rows in by_origin.items()))
    return results
