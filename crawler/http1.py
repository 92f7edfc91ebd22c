"""Reading HTTP/1.1 responses from an asyncio stream: heads, framing, bodies.

Shared by the audit's download handler (``crawler.http_handler``, under Scrapy) and the
re-run pass's pipelined requests (``crawler.quick_http``, which runs without Scrapy).
What it accepts is HTTP/1.1's message syntax (RFC 9112), as h11 does: status line
``HTTP/1.0`` or ``HTTP/1.1`` with a three-digit code, header names that are tokens, CRLF or
bare LF line ends, obsolete folded lines joined with a space; interim 1xx answers skipped
(101 refused); the body framed by ``Transfer-Encoding: chunked`` (any other coding is
refused), else ``Content-Length`` (several that differ are refused), else the end of the
connection; none for HEAD, 204 and 304. A connection may serve another request only after
an HTTP/1.1 answer without ``Connection: close`` whose framing is not the connection's end.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

_READ = 65536
#: A response head (status line and headers) longer than this is refused.
MAX_HEAD = 64 * 1024
#: RFC 9110 token characters (header names).
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Statuses whose response never has a body (RFC 9112 section 6.3).
_NO_BODY = frozenset({204, 304})
_HEAD_END = re.compile(rb"\n\r?\n")
#: ``Head.length`` of a chunked body.
CHUNKED = -1


class ProtocolError(Exception):
    """The peer broke HTTP/1.1 (a malformed head, a framing this reader does not follow)."""


class DataLoss(Exception):
    """The connection ended before the head or body it had begun."""


class Stream:
    """The reading side of one connection, and the bytes read but not yet used."""

    __slots__ = ("buf", "reader")

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
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
                raise ProtocolError("line too long")
            start = len(buf)
            if not await self.fill():
                raise DataLoss("connection closed in the middle of a line")


class Head:
    """A response's status line, headers and framing."""

    __slots__ = ("headers", "keep", "length", "status", "version")

    def __init__(
        self,
        version: str,
        status: int,
        headers: list[tuple[bytes, bytes]],
        length: int | None,
        keep: bool,
    ) -> None:
        self.version = version
        self.status = status
        self.headers = headers
        #: Body length: bytes, ``CHUNKED``, or None (until the connection closes).
        self.length = length
        #: The connection may serve another request once the body was read.
        self.keep = keep


async def _head_lines(s: Stream, max_head: int) -> list[bytes]:
    """The next head's lines (CRLF or bare LF ends), read whole."""
    buf = s.buf
    start = 0
    while True:
        end = _HEAD_END.search(buf, start)
        if end is not None:
            head = bytes(buf[: end.start()])
            del buf[: end.end()]
            return [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")]
        if len(buf) > max_head:
            raise ProtocolError("response head too long")
        start = max(0, len(buf) - 2)
        if not await s.fill():
            if not buf:
                raise ConnectionResetError("closed before a response")
            raise DataLoss("connection closed in the middle of the response head")


async def read_head(s: Stream, method: str, max_head: int = MAX_HEAD) -> Head:
    """Read the final response head (interim 1xx answers skipped). Raises
    ``ProtocolError``, ``DataLoss``, or ``ConnectionResetError`` when the connection ends
    before any byte of it."""
    while True:
        lines = await _head_lines(s, max_head)
        if sum(map(len, lines)) > max_head:
            raise ProtocolError("response head too long")
        status_line = lines[0]
        parts = status_line.split(b" ", 2)
        version = parts[0]
        if (
            len(parts) < 2
            or version not in (b"HTTP/1.1", b"HTTP/1.0")
            or len(parts[1]) != 3
            or not parts[1].isdigit()
        ):
            raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:60]!r}")
        status = int(parts[1])
        headers: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t"):  # obsolete line folding: joined with a space
                if not headers:
                    raise ProtocolError("folded line before any header")
                name, value = headers[-1]
                headers[-1] = (name, value + b" " + line.strip(b" \t"))
                continue
            name, colon, value = line.partition(b":")
            if not colon or not TOKEN.fullmatch(name):
                raise ProtocolError(f"malformed header line {line[:60]!r}")
            headers.append((name, value.strip(b" \t")))
        if 100 <= status < 200:
            if status == 101:
                raise ProtocolError("101 Switching Protocols")
            continue  # 100 Continue and the like: the final answer follows
        return _framed(version, status, headers, method)


def _framed(version: bytes, status: int, headers: list[tuple[bytes, bytes]], method: str) -> Head:
    """The head with its body's framing (RFC 9112 section 6.3) and keep-alive."""
    keep = version == b"HTTP/1.1"
    length: int | None = None
    coding: bytes | None = None
    for name, value in headers:
        lname = name.lower()
        if lname == b"content-length":
            text = value.strip()
            if not text.isdigit() or (length is not None and int(text) != length):
                raise ProtocolError(f"bad Content-Length {value[:30]!r}")
            length = int(text)
        elif lname == b"transfer-encoding":
            coding = value.strip().lower() if coding is None else coding + b"," + value.lower()
        elif lname == b"connection" and b"close" in (t.strip() for t in value.lower().split(b",")):
            keep = False
    if method == "HEAD" or status in _NO_BODY:
        length = 0
    elif coding is not None:
        if coding.replace(b" ", b"") != b"chunked":
            raise ProtocolError(f"unsupported transfer coding {coding[:40]!r}")
        if length is not None:  # both: the coding decides, and the connection ends after
            keep = False
        length = CHUNKED
    elif length is None:
        keep = False  # the body ends with the connection
    return Head(version.decode("ascii"), status, headers, length, keep)


async def body(s: Stream, head: Head) -> AsyncIterator[bytes]:
    """The body's pieces as they arrive; it ended cleanly when the iteration does. Raises
    ``DataLoss`` (the connection ended early) or ``ProtocolError`` (a malformed chunk)."""
    if head.length == CHUNKED:
        async for piece in _chunked(s):
            yield piece
    elif head.length is not None:
        left = head.length
        while left:
            piece = await s.take(left)
            if not piece:
                raise DataLoss(f"connection closed {left} bytes before the body ended")
            left -= len(piece)
            yield piece
    else:  # delimited by the end of the connection
        while piece := await s.take(_READ):
            yield piece


async def _chunked(s: Stream) -> AsyncIterator[bytes]:
    while True:
        size_line = await s.line(1024)
        size_text = size_line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
        if size < 0 or not size_text.isalnum():
            raise ProtocolError(f"bad chunk size {size_text[:20]!r}")
        if size == 0:
            while await s.line(MAX_HEAD):  # trailer fields, up to the empty line
                pass
            return
        while size:
            piece = await s.take(size)
            if not piece:
                raise DataLoss("connection closed before the last chunk")
            size -= len(piece)
            yield piece
        if await s.line(2):
            raise ProtocolError("chunk longer than its size")
