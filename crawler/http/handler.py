"""Scrapy's download handler for ``http`` and ``https``: HTTP/1.1 over asyncio streams
(switched on by name in ``crawler.engine.scrapy_settings``).

Scrapy's own aiohttp handler cost every audit ~0.25 s before its first request: importing
aiohttp, and two verified SSL contexts (one made by aiohttp at import, one by the handler;
each loads the CA bundle) even for a site on plain HTTP. This one imports nothing but
Scrapy's base, makes its SSL context at the first ``https`` request, and keeps idle
connections per origin for the next request (keep-alive).

Responses are read by ``crawler.http.http1`` (head read whole and split; h11 did this before:
182 µs of CPU for one 20 KB exchange in a microbenchmark, 14 µs now), which accepts
HTTP/1.1's message syntax as h11 did. A connection is kept only after a complete exchange
on HTTP/1.1 without ``Connection: close`` and with nothing sent beyond the response. A
request header name that is not a token, or a value with CR, LF or NUL, is never sent.

It plugs into Scrapy's ``BaseStreamingDownloadHandler``, which sends the
``headers_received`` and ``bytes_received`` signals, honours ``StopDownload``,
``download_maxsize`` and ``download_warnsize``, and makes the response; this module only
moves bytes. Errors become Scrapy's exceptions as the aiohttp handler's do: a name that
does not resolve ``CannotResolveHostError``, a refused connection or failed TLS handshake
or certificate ``DownloadConnectionRefusedError`` (the ``ssl.SSLError`` kept as
``__cause__``, where the spider reads ``tls``), the time limit ``DownloadTimeoutError``, a
body cut short ``ResponseDataLossError`` (or the ``dataloss`` flag), a malformed head and
anything else ``DownloadFailedError``.

A request through a proxy (``meta["proxy"]``, set by Scrapy's HttpProxyMiddleware from
``http_proxy``/``https_proxy``) is sent by this handler too: an ``http`` URL to the proxy
in absolute form with the middleware's ``Proxy-Authorization``; an ``https`` URL through a
``CONNECT`` tunnel (the credentials on the ``CONNECT`` only), TLS to the site inside it.
The proxy itself is spoken to in plain HTTP or, for an ``https://`` proxy URL, over TLS.
Connections are pooled by origin and proxy. (Scrapy's aiohttp handler did this before;
docs/decisions/0001-http-stack.md.)
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

from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    UnsupportedURLSchemeError,
)
from scrapy.http import Headers

from crawler.engine.scrapy_private import BaseResponseArgs as _BaseResponseArgs
from crawler.engine.scrapy_private import BaseStreamingDownloadHandler, make_ssl_context
from crawler.http import http1

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: A pooled connection's key: (scheme, host, port, proxy URL or "").
_Key = tuple[str, str, int, str]
#: A request header value may not hold these: a line break would end the head early and
#: smuggle another request in.
_BAD_VALUE = re.compile(rb"[\r\n\0]")


def headers_from(pairs: list[tuple[bytes, bytes]]) -> Headers:
    """``Headers(pairs)`` for names and values that are bytes, built without normalising
    each one through Headers' methods (the same dict: title-cased name -> values in order;
    tested equal)."""
    grouped: dict[bytes, list[bytes]] = {}
    for name, value in pairs:
        key = name.title()
        values = grouped.get(key)
        if values is None:
            grouped[key] = [value]
        else:
            values.append(value)
    headers = Headers()
    dict.update(headers, grouped)
    return headers


class _Conn:
    """One connection: its reading side (``crawler.http.http1.Stream``) and its writer."""

    __slots__ = ("_peer", "key", "stream", "writer")

    def __init__(
        self, key: _Key, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.key = key
        self.stream = http1.Stream(reader)
        self.writer = writer
        self._peer: tuple[Any, Any] | None = None

    def peer(self) -> tuple[Any, Any]:
        """(certificate, IP address) of the peer: the same for every answer on it."""
        if self._peer is None:
            writer = self.writer
            address = writer.get_extra_info("peername")
            ssl_object = writer.get_extra_info("ssl_object")
            self._peer = (
                ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None,
                ipaddress.ip_address(address[0]) if address else None,
            )
        return self._peer

    def close(self) -> None:
        self.writer.close()


class _Response:
    """A response head, and its connection to read the body from."""

    __slots__ = ("complete", "conn", "head")

    def __init__(self, conn: _Conn, head: http1.Head) -> None:
        self.conn = conn
        self.head = head
        #: The whole body was read.
        self.complete = False

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for piece in http1.body(self.conn.stream, self.head):
                yield piece
        except (http1.ProtocolError, OSError) as e:
            raise http1.DataLoss(str(e) or type(e).__name__) from e
        self.complete = True


class HttpDownloadHandler(BaseStreamingDownloadHandler[_Response]):
    """``http``/``https`` downloads for the audit (see the module docstring)."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self._settings = crawler.settings
        self._ssl: ssl.SSLContext | None = None
        self._idle: dict[_Key, list[_Conn]] = {}
        self._keep = max(1, self._pool_size_per_host)

    # -- Scrapy's handler interface -------------------------------------------------------

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
        return headers_from(response.head.headers)

    @staticmethod
    def _build_base_response_args(
        response: _Response, request: Request, headers: Headers
    ) -> _BaseResponseArgs:
        certificate, ip_address = response.conn.peer()
        return {
            "status": response.head.status,
            "url": request.url,
            "headers": headers,
            "certificate": certificate,
            "ip_address": ip_address,
            "protocol": response.head.version,
        }

    @staticmethod
    def _iter_body_chunks(response: _Response) -> AsyncIterator[bytes]:
        return response.chunks()

    @staticmethod
    def _is_dataloss_exception(exc: Exception) -> bool:
        return isinstance(exc, http1.DataLoss)

    async def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

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
        proxy = request.meta.get("proxy") or ""
        key = (scheme, parts.hostname, port, proxy)
        host = parts.netloc.rpartition("@")[2]
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if proxy and scheme == "http":
            target = f"http://{host}{target}"  # absolute form (RFC 9112 section 3.2.2)
            key = ("http", "", 0, proxy)  # one pool for every site asked through it
        idle = self._idle.get(key)
        if idle:
            conn = idle.pop()
            try:
                return await self._send(conn, request, host, target)
            except (http1.ProtocolError, http1.DataLoss, OSError):
                conn.close()
                if request.method not in ("GET", "HEAD"):
                    raise DownloadFailedError("kept-alive connection closed") from None
        conn = await self._connect(key, request.headers.get(b"Proxy-Authorization"))
        try:
            return await self._send(conn, request, host, target)
        except (http1.ProtocolError, http1.DataLoss, OSError) as e:
            conn.close()
            raise DownloadFailedError(str(e) or type(e).__name__) from e
        except BaseException:
            conn.close()
            raise

    async def _connect(self, key: _Key, proxy_auth: bytes | None) -> _Conn:
        scheme, host, port, proxy = key
        context = self._context() if scheme == "https" else None
        if not proxy:
            return _Conn(key, *await self._open(host, port, context))
        p = urlsplit(proxy)
        if p.scheme not in _DEFAULT_PORTS or not p.hostname:
            raise DownloadFailedError(f"cannot use the proxy {proxy!r}")
        try:
            p_port = p.port or _DEFAULT_PORTS[p.scheme]
        except ValueError as e:
            raise DownloadFailedError(f"cannot use the proxy {proxy!r}: {e}") from e
        p_context = self._context() if p.scheme == "https" else None
        conn = _Conn(key, *await self._open(p.hostname, p_port, p_context))
        if context is not None:
            try:
                await self._tunnel(conn, host, port, context, proxy_auth)
            except BaseException:
                conn.close()
                raise
        return conn

    async def _open(
        self, host: str, port: int, context: ssl.SSLContext | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        local = (self._bind_address[0], 0) if self._bind_address else None
        try:
            return await asyncio.open_connection(
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

    async def _tunnel(
        self, conn: _Conn, host: str, port: int, context: ssl.SSLContext, auth: bytes | None
    ) -> None:
        """Open a ``CONNECT`` tunnel to ``host:port`` through the proxy ``conn`` is
        connected to, and start TLS to the site inside it."""
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n".encode("ascii")
        if auth is not None:
            if _BAD_VALUE.search(auth):
                raise DownloadFailedError("line break in Proxy-Authorization")
            head += b"Proxy-Authorization: %s\r\n" % auth
        conn.writer.write(head + b"\r\n")
        try:
            answer = await http1.read_head(conn.stream, "CONNECT")
        except (http1.ProtocolError, http1.DataLoss, OSError) as e:
            raise DownloadFailedError(f"proxy: {e or type(e).__name__}") from e
        if not 200 <= answer.status < 300 or conn.stream.buf:
            raise DownloadConnectionRefusedError(
                f"the proxy answered {answer.status} to CONNECT {authority}"
            )
        try:
            await conn.writer.start_tls(context, server_hostname=host)
        except OSError as e:  # ssl.SSLError: the spider says "tls"
            raise DownloadConnectionRefusedError(f"{host}:{port}: {e}") from e

    async def _send(self, conn: _Conn, request: Request, host: str, target: str) -> _Response:
        # Proxy-Authorization goes to a proxy in the request (http) or on the CONNECT
        # (https, never through the tunnel), never to a site.
        forward_auth = bool(conn.key[3]) and conn.key[0] == "http"
        # Scrapy's URLs are ASCII already (IDNA hosts, percent-encoded paths).
        lines = [f"{request.method} {target} HTTP/1.1\r\nHost: {host}\r\n".encode("ascii")]
        # The stored (normalised) names and value lists, as Headers.items() gives them
        # without normalising each name again.
        for name, values in dict.items(request.headers):
            if name.lower() == b"host":
                continue
            if not http1.TOKEN.fullmatch(name):
                raise http1.ProtocolError(f"invalid header name {name[:40]!r}")
            if name.lower() == b"proxy-authorization" and not forward_auth:
                continue
            for value in values:
                if _BAD_VALUE.search(value):
                    raise http1.ProtocolError(f"line break in the value of header {name.decode()}")
                lines.append(b"%s: %s\r\n" % (name, value))
        body = request.body
        if body or request.method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            lines.append(b"Content-Length: %d\r\n" % len(body))
        lines.append(b"\r\n")
        if body:
            lines.append(body)
        conn.writer.write(b"".join(lines))
        return _Response(conn, await http1.read_head(conn.stream, request.method))

    def _done(self, response: _Response) -> None:
        """Keep the connection for the next request if its exchange ended cleanly (and
        the peer sent nothing beyond the response)."""
        conn = response.conn
        if response.complete and response.head.keep and not conn.stream.buf:
            idle = self._idle.setdefault(conn.key, [])
            if len(idle) < self._keep:
                idle.append(conn)
                return
        conn.close()

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            # Scrapy's settings (DOWNLOAD_VERIFY_CERTIFICATES, TLS versions, ciphers).
            self._ssl = make_ssl_context(self._settings)
        return self._ssl
