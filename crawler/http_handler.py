"""Scrapy's download handler for ``http`` and ``https``: HTTP/1.1 over asyncio streams,
parsed by h11 (switched on by name in ``crawler.scrapy_settings``).

Scrapy's own aiohttp handler cost every audit ~0.25 s before its first request: importing
aiohttp, and two verified SSL contexts (one made by aiohttp at import, one by the handler;
each loads the CA bundle) even for a site on plain HTTP. This one imports h11 (~0.05 s),
makes its SSL context at the first ``https`` request, and keeps idle connections per
origin for the next request (keep-alive).

It plugs into Scrapy's ``BaseStreamingDownloadHandler``, which sends the
``headers_received`` and ``bytes_received`` signals, honours ``StopDownload``,
``download_maxsize`` and ``download_warnsize``, and makes the response; this module only
moves bytes. Errors become Scrapy's exceptions as the aiohttp handler's do: a name that
does not resolve ``CannotResolveHostError``, a refused connection or failed TLS handshake
or certificate ``DownloadConnectionRefusedError`` (the ``ssl.SSLError`` kept as
``__cause__``, where the spider reads ``tls``), the time limit ``DownloadTimeoutError``, a
body cut short ``ResponseDataLossError`` (or the ``dataloss`` flag), anything else
``DownloadFailedError``. A request through a proxy (``meta["proxy"]``) goes to Scrapy's
aiohttp handler, made at the first such request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import h11
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
#: A response head (status line and headers) longer than this is refused (h11's limit).
MAX_HEAD = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _DataLoss(Exception):
    """The connection ended before the body its response announced."""


class _Conn:
    """One connection and its HTTP/1.1 state."""

    __slots__ = ("h", "key", "reader", "writer")

    def __init__(
        self, key: tuple[str, str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.key = key
        self.reader = reader
        self.writer = writer
        self.h = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)

    async def next_event(self) -> Any:
        while True:
            event = self.h.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.h.receive_data(await self.reader.read(_READ))

    def close(self) -> None:
        self.writer.close()


class _Response:
    """A response head, and its connection to read the body from."""

    __slots__ = ("complete", "conn", "event")

    def __init__(self, conn: _Conn, event: h11.Response) -> None:
        self.conn = conn
        self.event = event
        #: The whole body was read (the connection may serve another request).
        self.complete = False

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self.conn
        while True:
            try:
                event = await conn.next_event()
            except (h11.RemoteProtocolError, OSError) as e:
                raise _DataLoss(str(e) or type(e).__name__) from e
            if type(event) is h11.Data:
                yield bytes(event.data)
            elif type(event) is h11.EndOfMessage:
                self.complete = True
                return
            else:  # ConnectionClosed before the end of the body
                raise _DataLoss("connection closed before the body ended")


class H11DownloadHandler(BaseStreamingDownloadHandler[_Response]):
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
        return Headers(response.event.headers.raw_items())

    @staticmethod
    def _build_base_response_args(
        response: _Response, request: Request, headers: Headers
    ) -> _BaseResponseArgs:
        writer = response.conn.writer
        peer = writer.get_extra_info("peername")
        ssl_object = writer.get_extra_info("ssl_object")
        return {
            "status": response.event.status_code,
            "url": request.url,
            "headers": headers,
            "certificate": (
                ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            ),
            "ip_address": ipaddress.ip_address(peer[0]) if peer else None,
            "protocol": f"HTTP/{response.event.http_version.decode('ascii')}",
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
            except (h11.RemoteProtocolError, OSError):
                conn.close()
                if request.method not in ("GET", "HEAD"):
                    raise DownloadFailedError("kept-alive connection closed") from None
        conn = await self._connect(key)
        try:
            return await self._send(conn, request, host, target)
        except (h11.ProtocolError, OSError) as e:
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
        headers: list[tuple[bytes, bytes]] = [(b"Host", host.encode("ascii"))]
        for name, values in request.headers.items():
            if name.lower() in (b"host", b"proxy-authorization"):
                continue
            headers.extend((name, v) for v in values)
        body = request.body
        if body or request.method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            headers.append((b"Content-Length", str(len(body)).encode("ascii")))
        h = conn.h
        data = h.send(h11.Request(method=request.method, target=target, headers=headers))
        if body:
            data += h.send(h11.Data(data=body))
        data += h.send(h11.EndOfMessage())
        conn.writer.write(data)
        while True:
            event = await conn.next_event()
            if type(event) is h11.Response:
                return _Response(conn, event)
            if type(event) is h11.ConnectionClosed:
                raise ConnectionResetError("closed before a response")
            # h11.InformationalResponse (100 Continue and the like): the final one follows

    def _done(self, response: _Response) -> None:
        """Keep the connection for the next request if its exchange ended cleanly."""
        conn = response.conn
        h = conn.h
        if response.complete and h.our_state is h11.DONE and h.their_state is h11.DONE:
            h.start_next_cycle()
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
