"""A small HTTP/1.1 client for the re-run's pass: h11 over asyncio streams.

The pass before a re-run (``crawler.fetch_cache``) asks one question per stored URL
("changed since?") and reads no body but robots.txt. aiohttp costs ~0.4 s to import and
~0.3 ms a request here; this client imports in ~0.05 s and keeps one connection per
origin and worker (keep-alive; a short body it does not read, such as an error page, is
drained, a longer one closes the connection). Plain HTTP and HTTPS (certificates verified).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from urllib.parse import quote, urljoin, urlsplit

import h11

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


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    h: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT, _MAX_HEAD))

    def close(self) -> None:
        self.writer.close()


class Client:
    """Connections of one worker (one request at a time), by origin."""

    _ssl: ssl.SSLContext | None = None

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
        (a longer body is cut there). Raises OSError/ValueError/TimeoutError/h11 errors."""
        async with asyncio.timeout(self.timeout):  # no extra task, unlike wait_for
            return await self._asked(method, url, headers or {}, body_limit)

    async def _asked(
        self, method: str, url: str, headers: dict[str, str], body_limit: int
    ) -> Answer:
        try:
            return await self._request(method, url, headers, body_limit)
        except (ConnectionError, h11.RemoteProtocolError):
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
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"cannot ask {url!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, parts.hostname, port)
        conn = self._conns.pop(key, None)
        self._reused = conn is not None
        if conn is None:
            conn = await self._open(scheme, parts.hostname, port)
        target = _ascii((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        host = parts.netloc.rpartition("@")[2]
        if not host.isascii():
            name, colon, port_text = host.rpartition(":") if parts.port else (host, "", "")
            host = name.encode("idna").decode("ascii") + colon + port_text
        request = h11.Request(
            method=method,
            target=target,
            headers=[
                ("Host", host),
                ("User-Agent", self.user_agent),
                ("Accept-Encoding", "identity"),
                *headers.items(),
            ],
        )
        try:
            conn.writer.write(conn.h.send(request) + conn.h.send(h11.EndOfMessage()))
            answer: Answer | None = None
            body = bytearray()
            while True:
                event = conn.h.next_event()
                if event is h11.NEED_DATA:
                    data = await conn.reader.read(_READ)
                    conn.h.receive_data(data)
                    continue
                if isinstance(event, h11.Response):
                    answer = Answer(
                        event.status_code,
                        {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers},
                    )
                    length = answer.headers.get("content-length", "")
                    if (
                        method != "HEAD"
                        and event.status_code not in (204, 304)
                        and not body_limit
                        and not (length.isdigit() and int(length) <= _DRAIN)
                    ):
                        break  # a long body nobody reads: drop the connection, don't drain it
                elif isinstance(event, h11.Data):
                    if body_limit:  # else a short body drained to keep the connection
                        body += event.data[: body_limit - len(body)]
                        if len(body) >= body_limit:
                            break
                elif isinstance(event, h11.EndOfMessage):
                    assert answer is not None
                    answer.body = bytes(body)
                    if conn.h.our_state is h11.DONE and conn.h.their_state is h11.DONE:
                        conn.h.start_next_cycle()
                        self._conns[key] = conn
                        conn = None  # type: ignore[assignment]
                    return answer
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionError("closed before the answer ended")
            assert answer is not None
            answer.body = bytes(body)
            return answer
        finally:
            if conn is not None:
                conn.close()

    async def _open(self, scheme: str, host: str, port: int) -> _Conn:
        context = None
        if scheme == "https":
            if Client._ssl is None:
                Client._ssl = ssl.create_default_context()
            context = Client._ssl
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        return _Conn(reader, writer)

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()
