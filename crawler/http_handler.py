"""Scrapy's download handler for ``http`` and ``https``: HTTP/1.1 over asyncio streams
(switched on by name in ``crawler.scrapy_settings``).

Scrapy's own aiohttp handler cost every audit ~0.25 s before its first request: importing
aiohttp, and two verified SSL contexts (one made by aiohttp at import, one by the handler;
each loads the CA bundle) even for a site on plain HTTP. This one imports nothing but
Scrapy's base, makes its SSL context at the first ``https`` request, and keeps idle
connections per origin for the next request (keep-alive).

The response head is read whole and split (h11 did this before: 182 µs of CPU for one 20 KB
exchange in a microbenchmark, 14 µs now). What it accepts is HTTP/1.1's message
syntax (RFC 9112), as h11 did: status line ``HTTP/1.0`` or ``HTTP/1.1`` with a three-digit
code, header names that are tokens, CRLF or bare LF line ends, obsolete folded lines
joined; interim 1xx answers skipped (101 refused); the body framed by
``Transfer-Encoding: chunked`` (any other coding is refused), else ``Content-Length``
(several that differ are refused), else the end of the connection; none for HEAD, 204 and
304. A connection is kept only after a complete exchange on HTTP/1.1 without ``Connection:
close`` and with nothing sent beyond the response. A request header name that is not a
token, or a value with CR, LF or NUL, is never sent.

It plugs into Scrapy's ``BaseStreamingDownloadHandler``, which sends the
``headers_received`` and ``bytes_received`` signals, honours ``StopDownload``,
``download_maxsize`` and ``download_warnsize``, and makes the response; this module only
moves bytes. Errors become Scrapy's exceptions as the aiohttp handler's do: a name that
does not resolve ``CannotResolveHostError``, a refused connection or failed TLS handshake
or certificate ``DownloadConnectionRefusedError`` (the ``ssl.SSLError`` kept as
``__cause__``, where the spider reads ``tls``), the time limit ``DownloadTimeoutError``, a
body cut short ``ResponseDataLossError`` (or the ``dataloss`` flag), a malformed head and
anything else ``DownloadFailedError``. A request through a proxy (``meta["proxy"]``) goes to
Scrapy's aiohttp handler, made at the first such request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from scrapy.core.downloader.handlers._base_streaming import (
    BaseStreamingDownloadHandler,
    _BaseResponseArgs,
)
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    UnsupportedURLSchemeError,
)
from scrapy.http import Headers

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

_READ = 65536
#: A response head (status line and headers) longer than this is refused.
MAX_HEAD = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: A request header value may not hold these: a line break would end the head early and
#: smuggle another request in.
_BAD_VALUE = re.compile(rb"[\r\n\0]")
#: RFC 9110 token characters (header names).
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Statuses whose response never has a body (RFC 9112 section 6.3).
_NO_BODY = frozenset({204, 304})


class _ProtocolError(Exception):
    """The peer broke HTTP/1.1 (a malformed head, a framing it cannot follow)."""


class _DataLoss(Exception):
    """The connection ended before the body its response announced."""


class _Conn:
    """One connection and the bytes read from it but not yet used."""

    __slots__ = ("buf", "key", "reader", "writer")

    def __init__(
        self, key: tuple[str, str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.key = key
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()

    async def fill(self) -> bool:
        """Read more into ``buf``; False at the end of the stream."""
        data = await self.reader.read(_READ)
        if not data:
            return False
        self.buf += data
        return True

    async def take(self, most: int) -> bytes:
        """Up to ``most`` bytes (b"" at the end of the stream): what ``buf`` holds first."""
        buf = self.buf
        if buf:
            piece = bytes(buf[:most])
            del buf[:most]
            return piece
        return await self.reader.read(min(most, _READ))

    async def line(self, limit: int) -> bytes:
        """The next CRLF-ended line (bare LF accepted), without its end."""
        buf = self.buf
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end >= 0:
                line = bytes(buf[:end])
                del buf[: end + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(buf) > limit:
                raise _ProtocolError("response head too long")
            start = len(buf)
            if not await self.fill():
                raise _DataLoss("connection closed in the middle of a line")

    def close(self) -> None:
        self.writer.close()


class _Response:
    """A response head, and its connection to read the body from."""

    __slots__ = ("complete", "conn", "headers", "keep", "length", "status", "version")

    def __init__(
        self,
        conn: _Conn,
        version: str,
        status: int,
        headers: list[tuple[bytes, bytes]],
        length: int | None,
        keep: bool,
    ) -> None:
        self.conn = conn
        self.version = version
        self.status = status
        self.headers = headers
        #: Body length: bytes, -1 chunked, None until the connection closes.
        self.length = length
        #: The connection may serve another request once the body was read.
        self.keep = keep
        #: The whole body was read.
        self.complete = False

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self.conn
        try:
            if self.length == -1:
                async for piece in self._chunked():
                    yield piece
            elif self.length is not None:
                left = self.length
                while left:
                    piece = await conn.take(left)
                    if not piece:
                        raise _DataLoss(f"connection closed {left} bytes before the body ended")
                    left -= len(piece)
                    yield piece
            else:  # delimited by the end of the connection
                while piece := await conn.take(_READ):
                    yield piece
        except (_ProtocolError, OSError) as e:
            raise _DataLoss(str(e) or type(e).__name__) from e
        self.complete = True

    async def _chunked(self) -> AsyncIterator[bytes]:
        conn = self.conn
        while True:
            size_line = await conn.line(1024)
            size_text = size_line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
            if size < 0 or not size_text.isalnum():
                raise _ProtocolError(f"bad chunk size {size_text[:20]!r}")
            if size == 0:
                while await conn.line(MAX_HEAD):  # trailer fields, up to the empty line
                    pass
                return
            while size:
                piece = await conn.take(size)
                if not piece:
                    raise _DataLoss("connection closed before the last chunk")
                size -= len(piece)
                yield piece
            if await conn.line(2):
                raise _ProtocolError("chunk longer than its size")


_HEAD_END = re.compile(rb"\n\r?\n")


async def _head_lines(conn: _Conn) -> list[bytes]:
    """The next head's lines (CRLF or bare LF ends), read whole from ``conn``."""
    buf = conn.buf
    start = 0
    while True:
        end = _HEAD_END.search(buf, start)
        if end is not None:
            head = bytes(buf[: end.start()])
            del buf[: end.end()]
            return [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")]
        if len(buf) > MAX_HEAD:
            raise _ProtocolError("response head too long")
        start = max(0, len(buf) - 2)
        if not await conn.fill():
            if not buf:
                raise ConnectionResetError("closed before a response")
            raise _DataLoss("connection closed in the middle of the response head")


async def _read_head(conn: _Conn, method: str) -> _Response:
    """Read the final response head on ``conn`` (interim 1xx answers skipped)."""
    while True:
        lines = await _head_lines(conn)
        if sum(map(len, lines)) > MAX_HEAD:
            raise _ProtocolError("response head too long")
        status_line = lines[0]
        parts = status_line.split(b" ", 2)
        version = parts[0]
        if (
            len(parts) < 2
            or version not in (b"HTTP/1.1", b"HTTP/1.0")
            or len(parts[1]) != 3
            or not parts[1].isdigit()
        ):
            raise _ProtocolError(f"not an HTTP/1.x status line: {status_line[:60]!r}")
        status = int(parts[1])
        headers: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t"):  # obsolete line folding: joined with a space
                if not headers:
                    raise _ProtocolError("folded line before any header")
                name, value = headers[-1]
                headers[-1] = (name, value + b" " + line.strip(b" \t"))
                continue
            name, colon, value = line.partition(b":")
            if not colon or not _TOKEN.fullmatch(name):
                raise _ProtocolError(f"malformed header line {line[:60]!r}")
            headers.append((name, value.strip(b" \t")))
        if 100 <= status < 200:
            if status == 101:
                raise _ProtocolError("101 Switching Protocols")
            continue  # 100 Continue and the like: the final answer follows
        return _framed(conn, version, status, headers, method)


def _framed(
    conn: _Conn, version: bytes, status: int, headers: list[tuple[bytes, bytes]], method: str
) -> _Response:
    """The response with its body's framing (RFC 9112 section 6.3) and keep-alive."""
    keep = version == b"HTTP/1.1"
    length: int | None = None
    coding: bytes | None = None
    for name, value in headers:
        lname = name.lower()
        if lname == b"content-length":
            text = value.strip()
            if not text.isdigit() or (length is not None and int(text) != length):
                raise _ProtocolError(f"bad Content-Length {value[:30]!r}")
            length = int(text)
        elif lname == b"transfer-encoding":
            coding = value.strip().lower() if coding is None else coding + b"," + value.lower()
        elif lname == b"connection" and b"close" in (t.strip() for t in value.lower().split(b",")):
            keep = False
    if method == "HEAD" or status in _NO_BODY:
        length = 0
    elif coding is not None:
        if coding.replace(b" ", b"") != b"chunked":
            raise _ProtocolError(f"unsupported transfer coding {coding[:40]!r}")
        if length is not None:  # both: the coding decides, and the connection ends after
            keep = False
        length = -1
    elif length is None:
        keep = False  # the body ends with the connection
    return _Response(conn, version.decode("ascii"), status, headers, length, keep)


class HttpDownloadHandler(BaseStreamingDownloadHandler[_Response]):
    """``http``/``https`` downloads for the audit (see the module docstring)."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self._settings = crawler.settings
        self._ssl: ssl.SSLContext | None = None
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._keep = max(1, self._pool_size_per_host)
        self._proxy_handler: Any = None

    # -- Scrapy's handler interface -------------------------------------------------------

    async def download_request(self, request: Request) -> Response:
        if request.meta.get("proxy"):
            return await self._proxied().download_request(request)  # type: ignore[no-any-return]
        return await super().download_request(request)

    @asynccontextmanager
    async def _make_request(self, request: Request, timeout: float) -> AsyncIterator[_Response]:
        response: _Response | None = None
        try:
            async with asyncio.timeout(timeout):
                response = await self._start(request)
                yield response
        except TimeoutError as e:
            raise DownloadTimeoutError(
                f"Getting {request.url} took longer than {timeout} seconds."
            ) from e
        finally:
            if response is not None:
                self._done(response)

    @staticmethod
    def _extract_headers(response: _Response) -> Headers:
        return Headers(response.headers)

    @staticmethod
    def _build_base_response_args(
        response: _Response, request: Request, headers: Headers
    ) -> _BaseResponseArgs:
        writer = response.conn.writer
        peer = writer.get_extra_info("peername")
        ssl_object = writer.get_extra_info("ssl_object")
        return {
            "status": response.status,
            "url": request.url,
            "headers": headers,
            "certificate": (
                ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            ),
            "ip_address": ipaddress.ip_address(peer[0]) if peer else None,
            "protocol": response.version,
        }

    @staticmethod
    def _iter_body_chunks(response: _Response) -> AsyncIterator[bytes]:
        return response.chunks()

    @staticmethod
    def _is_dataloss_exception(exc: Exception) -> bool:
        return isinstance(exc, _DataLoss)

    async def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        if self._proxy_handler is not None:
            await self._proxy_handler.close()

    # -- connections ----------------------------------------------------------------------

    async def _start(self, request: Request) -> _Response:
        """Send ``request`` and read its response head, on an idle connection of its
        origin if there is one (once more on a new connection if that one turns out to
        have been closed meanwhile: a GET or HEAD only)."""
        parts = urlsplit(request.url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise UnsupportedURLSchemeError(f"cannot download {request.url!r}")
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError as e:
            raise DownloadFailedError(str(e)) from e
        key = (scheme, parts.hostname, port)
        host = parts.netloc.rpartition("@")[2]
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        idle = self._idle.get(key)
        if idle:
            conn = idle.pop()
            try:
                return await self._send(conn, request, host, target)
            except (_ProtocolError, _DataLoss, OSError):
                conn.close()
                if request.method not in ("GET", "HEAD"):
                    raise DownloadFailedError("kept-alive connection closed") from None
        conn = await self._connect(key)
        try:
            return await self._send(conn, request, host, target)
        except (_ProtocolError, _DataLoss, OSError) as e:
            conn.close()
            raise DownloadFailedError(str(e) or type(e).__name__) from e
        except BaseException:
            conn.close()
            raise

    async def _connect(self, key: tuple[str, str, int]) -> _Conn:
        scheme, host, port = key
        context = self._context() if scheme == "https" else None
        local = (self._bind_address[0], 0) if self._bind_address else None
        try:
            reader, writer = await asyncio.open_connection(
                host,
                port,
                ssl=context,
                server_hostname=host if context is not None else None,
                local_addr=local,
            )
        except socket.gaierror as e:
            raise CannotResolveHostError(f"{host}: {e}") from e
        except OSError as e:  # ssl.SSLError too (certificate, handshake): the spider says "tls"
            raise DownloadConnectionRefusedError(f"{host}:{port}: {e}") from e
        return _Conn(key, reader, writer)

    async def _send(self, conn: _Conn, request: Request, host: str, target: str) -> _Response:
        # Scrapy's URLs are ASCII already (IDNA hosts, percent-encoded paths).
        lines = [f"{request.method} {target} HTTP/1.1\r\nHost: {host}\r\n".encode("ascii")]
        for name, values in request.headers.items():
            if name.lower() in (b"host", b"proxy-authorization"):
                continue
            if not _TOKEN.fullmatch(name):
                raise _ProtocolError(f"invalid header name {name[:40]!r}")
            for value in values:
                if _BAD_VALUE.search(value):
                    raise _ProtocolError(f"line break in the value of header {name.decode()}")
                lines.append(b"%s: %s\r\n" % (name, value))
        body = request.body
        if body or request.method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            lines.append(b"Content-Length: %d\r\n" % len(body))
        lines.append(b"\r\n")
        if body:
            lines.append(body)
        conn.writer.write(b"".join(lines))
        return await _read_head(conn, request.method)

    def _done(self, response: _Response) -> None:
        """Keep the connection for the next request if its exchange ended cleanly (and
        the peer sent nothing beyond the response)."""
        conn = response.conn
        if response.complete and response.keep and not conn.buf:
            idle = self._idle.setdefault(conn.key, [])
            if len(idle) < self._keep:
                idle.append(conn)
                return
        conn.close()

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            from scrapy.utils.ssl import _make_ssl_context

            # Scrapy's settings (DOWNLOAD_VERIFY_CERTIFICATES, TLS versions, ciphers).
            self._ssl = _make_ssl_context(self._settings)
        return self._ssl

    def _proxied(self) -> Any:
        if self._proxy_handler is None:
            from scrapy.core.downloader.handlers._aiohttp import AiohttpDownloadHandler

            self._proxy_handler = AiohttpDownloadHandler(self.crawler)
        return self._proxy_handler
