"""Reading HTTP/1.1 responses from an asyncio stream: heads, framing, bodies.

Shared by the audit's download handler (``crawler.http.handler``, under Scrapy) and the
re-run pass's pipelined requests (``crawler.http.client``, which runs without Scrapy).
What it accepts is HTTP/1.1's message syntax (RFC 9112) as h11 reads it, checked by a
differential test against h11 (tests/test_http1_differential.py, which lists the few
intended differences): status line ``HTTP/1.0`` or ``HTTP/1.1`` with a three-digit code,
header names that are tokens, values without NUL, CR, VT or FF, CRLF or bare LF line ends
in heads and trailers, obsolete folded lines joined with a space; interim 1xx answers
skipped (101 refused); the body framed by exactly ``Transfer-Encoding: chunked`` (any other
coding is refused), else ``Content-Length`` (digits; several, or a list, that differ are
refused), else the end of the connection; none for HEAD, 204 and 304. Chunk framing is
strict: a size line is 1 to 20 hex digits (no ``0x``, sign or space before an extension),
an optional ``;`` extension, optional trailing spaces, CRLF; the data ends with CRLF; the
trailer section holds at most ``MAX_TRAILER_FIELDS`` fields in ``MAX_TRAILER`` bytes. A
head holds at most ``MAX_FIELDS`` fields in ``MAX_HEAD`` bytes. A connection may serve
another request only after an HTTP/1.1 answer without ``Connection: close`` whose framing
is not the connection's end.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

_READ = 65536
#: A response head (status line and headers) longer than this is refused.
MAX_HEAD = 64 * 1024
#: A response head with more header fields than this is refused.
MAX_FIELDS = 256
#: A trailer section longer than this, or with more fields, is refused.
MAX_TRAILER = 16 * 1024
MAX_TRAILER_FIELDS = 64
#: RFC 9110 token characters (header names).
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Statuses whose response never has a body (RFC 9112 section 6.3).
_NO_BODY = frozenset({204, 304})
_HEAD_END = re.compile(rb"\n\r?\n")
#: A chunk's size line (CR LF removed), as h11 reads it.
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;[^\x00\r]*)?[ \t]*")
_DIGITS = re.compile(rb"[0-9]{1,20}")
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
        """The next CRLF-ended line, without its end (chunk framing: a bare LF is refused)."""
        buf = self.buf
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end >= 0:
                if end == 0 or buf[end - 1] != 13:
                    raise ProtocolError("chunk line not ended by CRLF")
                line = bytes(buf[: end - 1])
                del buf[: end + 1]
                return line
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
    """The next head's lines (CRLF or bare LF ends), read whole; [] for an empty head (a
    blank line first: an empty trailer section)."""
    buf = s.buf
    start = 0
    while True:
        if buf[:1] == b"\n" or buf[:2] == b"\r\n":
            del buf[: 1 if buf[:1] == b"\n" else 2]
            return []
        end = _HEAD_END.search(buf, start)
        if end is not None:
            head = bytes(buf[: end.start() + 1])
            del buf[: end.end()]
            if len(head) > max_head:
                raise ProtocolError("response head too long")
            if _bad_bytes(head):
                raise ProtocolError("control character in the response head")
            return [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")][:-1]
        if len(buf) > max_head:
            raise ProtocolError("response head too long")
        start = max(0, len(buf) - 2)
        if not await s.fill():
            if not buf:
                raise ConnectionResetError("closed before a response")
            raise DataLoss("connection closed in the middle of the response head")


def _bad_bytes(head: bytes) -> bool:
    """Whether a head holds what h11 refuses in its lines: NUL, VT, FF, or a CR that does
    not end a line (byte scans: a regex with a look-ahead cost twice the whole parse)."""
    return (
        b"\0" in head
        or b"\x0b" in head
        or b"\x0c" in head
        or head.count(b"\r") != head.count(b"\r\n")
    )


def fields(lines: list[bytes], most: int) -> list[tuple[bytes, bytes]]:
    """Header (or trailer) lines as (name, value) pairs: obsolete folded lines joined to
    the one before with a space (as h11 does), names tokens, values without the spaces
    around them. Raises ``ProtocolError``."""
    folded: list[bytes] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):  # obsolete line folding
            if not folded:
                raise ProtocolError("folded line before any header")
            folded[-1] += b" " + line.lstrip(b" \t")
        else:
            folded.append(line)
    if len(folded) > most:
        raise ProtocolError("too many header fields")
    pairs = []
    for line in folded:
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN.fullmatch(name):
            raise ProtocolError(f"malformed header line {line[:60]!r}")
        pairs.append((name, value.strip(b" \t")))
    return pairs


async def read_head(s: Stream, method: str, max_head: int = MAX_HEAD) -> Head:
    """Read the final response head (interim 1xx answers skipped). Raises
    ``ProtocolError``, ``DataLoss``, or ``ConnectionResetError`` when the connection ends
    before any byte of it."""
    while True:
        lines = await _head_lines(s, max_head)
        status_line = lines[0] if lines else b""
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
        headers = fields(lines[1:], MAX_FIELDS)
        if 100 <= status < 200:
            _framed(version, status, headers, method)  # its fields checked as h11 does
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
            texts = {text.strip(b" \t") for text in value.split(b",")}
            text = texts.pop()
            if texts or not _DIGITS.fullmatch(text) or length not in (None, int(text)):
                raise ProtocolError(f"bad Content-Length {value[:30]!r}")
            length = int(text)
        elif lname == b"transfer-encoding":
            if coding is not None:
                raise ProtocolError("several Transfer-Encoding fields")
            coding = value.lower()
        elif lname == b"connection" and b"close" in (t.strip() for t in value.lower().split(b",")):
            keep = False
    if coding is not None and coding != b"chunked":
        raise ProtocolError(f"unsupported transfer coding {coding[:40]!r}")
    if method == "HEAD" or status in _NO_BODY or (method == "CONNECT" and 200 <= status < 300):
        length = 0
    elif coding is not None:
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
        match = _CHUNK_LINE.fullmatch(size_line)
        if match is None:
            raise ProtocolError(f"bad chunk size line {size_line[:20]!r}")
        size = int(match[1], 16)
        if size == 0:
            fields(await _head_lines(s, MAX_TRAILER), MAX_TRAILER_FIELDS)  # checked, dropped
            return
        while size:
            piece = await s.take(size)
            if not piece:
                raise DataLoss("connection closed before the last chunk")
            size -= len(piece)
            yield piece
        if await s.line(2):
            raise ProtocolError("chunk longer than its size")
