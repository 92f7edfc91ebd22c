"""crawler/http/http1.py read against h11 as the oracle (h11 is in the ``dev`` extra only).

Hypothesis builds valid and invalid response heads (status lines, header names and values,
bare LF line ends, obsolete folding, 1xx answers first, Content-Length variants, transfer
codings) and bodies (Content-Length, chunked with chunk-size syntax variants, extensions
and trailers, close-delimited, cut short), fed to both readers in random splits. http1 must
refuse exactly what h11 refuses and read the same status, headers and body from the rest.

Intended differences, kept out of the generated cases and pinned by examples below:
* only ``HTTP/1.0`` and ``HTTP/1.1`` status lines (h11 takes any ``HTTP/d.d``);
* a chunk extension holding NUL or CR is refused (h11 takes anything after ``;``);
* a trailer section is capped (``MAX_TRAILER_FIELDS`` fields, ``MAX_TRAILER`` bytes) and
  a head at ``MAX_FIELDS`` fields (h11 caps bytes only); trailer fields are syntax-checked
  but not read as framing fields (h11 also refuses a bad Content-Length there);
* a response with both Transfer-Encoding and Content-Length closes the connection after
  it (RFC 9112 section 6.1; h11 keeps it). Keep-alive is not compared here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawler.http import http1


class _Pieces:
    """A stream reader that hands out the given pieces one read at a time."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = list(pieces)

    async def read(self, n: int) -> bytes:
        if not self._pieces:
            return b""
        piece = self._pieces.pop(0)
        if len(piece) > n:
            self._pieces.insert(0, piece[n:])
            piece = piece[:n]
        return piece


def _framing_free(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Headers compared: h11 rewrites Content-Length and Transfer-Encoding values."""
    return [
        (n.lower(), v)
        for n, v in headers
        if n.lower() not in (b"content-length", b"transfer-encoding")
    ]


def read_http1(pieces: list[bytes], method: str) -> Any:
    async def go() -> Any:
        s = http1.Stream(_Pieces(pieces))  # type: ignore[arg-type]
        head = await http1.read_head(s, method)
        body = b"".join([p async for p in http1.body(s, head)])
        return head.status, _framing_free(head.headers), body

    try:
        return asyncio.run(go())
    except (http1.ProtocolError, http1.DataLoss, ConnectionResetError):
        return "error"


def read_h11(pieces: list[bytes], method: str) -> Any:
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=http1.MAX_HEAD)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    feed = iter([*pieces, b""])
    status, headers, body = 0, [], bytearray()
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(next(feed))
            elif isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    return "error"
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = _framing_free(list(event.headers.raw_items()))
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, headers, bytes(body)
            else:
                return "error"
    except (h11.RemoteProtocolError, StopIteration):
        return "error"


# -- the generated answers -----------------------------------------------------------------

_TOKEN = "!#$%&'*+-.^_`|~abcXYZ019"
names = st.one_of(
    st.text(_TOKEN, min_size=1, max_size=8),
    st.sampled_from(["Bad Name", "", "a@b", "x\x80", "Name "]),
).map(lambda t: t.encode("latin-1"))
values = st.one_of(
    st.text("abc ;=,/\t", max_size=10),
    st.text("a \t\x00\x0b\x0c\r\x7f\x01\xe9", max_size=6),
).map(lambda t: t.encode("latin-1"))
line_ends = st.sampled_from([b"\r\n", b"\r\n", b"\n"])


@st.composite
def header_lines(draw: Any, pool: Any = names) -> bytes:
    out = b""
    for name, value, end in draw(st.lists(st.tuples(pool, values, line_ends), max_size=5)):
        out += name + b":" + draw(st.sampled_from([b"", b" ", b"\t"])) + value + end
        if draw(st.integers(0, 9)) == 0:  # obsolete line folding
            out += draw(st.sampled_from([b" ", b"\t", b"  "])) + draw(values) + end
    return out


@st.composite
def status_lines(draw: Any) -> bytes:
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    code = draw(
        st.sampled_from([b"200", b"204", b"206", b"304", b"404", b"500", b"20", b"2000", b"2x0"])
    )
    reason = draw(st.sampled_from([b" OK", b"", b" ", b" Not Found", b" a\x00b", b"  OK"]))
    return version + b" " + code + reason + draw(line_ends)


def _size(n: int, style: int) -> bytes:
    return [
        b"%x" % n,
        b"%X" % n,
        b"000%x" % n,
        b"0x%x" % n,
        b" %x" % n,
        b"%x " % n,
        b"+%x" % n,
        b"-%x" % n,
        b"%x;name=value" % n,
        b'%x;a="q s";b' % n,
        b"%x ;ext" % n,
        b"%x\t" % n,
        b"0" * 20 + b"%x" % n,
    ][style]


@st.composite
def chunked(draw: Any) -> tuple[bytes, bytes]:
    """(framing header, body) of a chunked answer."""
    body = b""
    for data in draw(st.lists(st.binary(min_size=1, max_size=20), max_size=4)):
        size = len(data) + draw(st.sampled_from([0, 0, 0, 0, 1, -1]))
        style = draw(st.integers(0, 12)) if draw(st.booleans()) else 0
        body += _size(size, style) + draw(st.sampled_from([b"\r\n"] * 5 + [b"\n"]))
        body += data + draw(st.sampled_from([b"\r\n"] * 5 + [b"\n", b"", b"xx\r\n"]))
    last = draw(st.sampled_from([b"0", b"0", b"00", b"0;ext=1", b"0 ", b"0x0"]))
    trailer_names = st.sampled_from([b"Expires", b"X-Checksum", b"Server-Timing", b"Bad Name"])
    body += last + b"\r\n" + draw(header_lines(trailer_names)) + draw(line_ends)
    coding = draw(
        st.sampled_from([b"chunked", b"chunked", b"Chunked", b"chunked ", b"gzip, chunked"])
    )
    return b"Transfer-Encoding: " + coding + b"\r\n", body


@st.composite
def with_length(draw: Any) -> tuple[bytes, bytes]:
    body = draw(st.binary(max_size=30))
    n = len(body) + draw(st.sampled_from([0, 0, 0, 1]))
    value = draw(
        st.sampled_from([b"%d", b"%d, %d", b" %d ", b"+%d", b"0x%x", b"%d, 999", b"", b"%d\t"])
    )
    text = value % ((n, n) if value.count(b"%") == 2 else (n,) if b"%" in value else ())
    twice = draw(st.sampled_from([b"", b"", b"Content-Length: %d\r\n" % n]))
    return b"Content-Length: " + text + b"\r\n" + twice, body


close_delimited = st.binary(max_size=30).map(lambda body: (b"", body))


@st.composite
def answers(draw: Any) -> tuple[bytes, str]:
    interim = draw(st.sampled_from([b"", b"", b"", b"HTTP/1.1 100 Continue\r\n\r\n"]))
    framing, body = draw(st.one_of(chunked(), with_length(), close_delimited))
    head = draw(status_lines()) + draw(header_lines()) + framing + draw(line_ends)
    data = interim + head + body
    cut = draw(st.sampled_from([0, 0, 0, 1, 3]))
    return (data[: len(data) - cut] if cut else data), draw(st.sampled_from(["GET", "HEAD"]))


@st.composite
def split(draw: Any, data: bytes) -> list[bytes]:
    points = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    pieces, last = [], 0
    for p in [*points, len(data)]:
        if p > last:
            pieces.append(data[last:p])
            last = p
    return pieces


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_http1_reads_what_h11_reads(data: Any) -> None:
    answer, method = data.draw(answers())
    pieces = data.draw(split(answer))
    expected = read_h11(pieces, method)
    assert read_http1(pieces, method) == expected, (answer, method)


def test_the_generated_answers_cover_both_verdicts() -> None:
    """Not a generator that only makes answers both refuse (or both read)."""
    seen: set[bool] = set()

    @settings(max_examples=200, deadline=None, database=None)
    @given(answers())
    def probe(case: tuple[bytes, str]) -> None:
        seen.add(read_h11([case[0]], case[1]) == "error")

    probe()
    assert seen == {True, False}


# -- the intended differences --------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;a\x00\r\nx\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        + b"X: y\r\n" * (http1.MAX_TRAILER_FIELDS + 1)
        + b"\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: "
        + b"y" * http1.MAX_TRAILER
        + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n"
        + b"X: y\r\n" * (http1.MAX_FIELDS + 1)
        + b"Content-Length: 0\r\n\r\n",
    ],
)
def test_intended_differences_h11_reads_http1_refuses(answer: bytes) -> None:
    assert read_h11([answer], "GET") != "error"
    assert read_http1([answer], "GET") == "error"


def test_a_chunked_answer_that_also_has_a_length_ends_its_connection() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n"

    async def go() -> http1.Head:
        return await http1.read_head(http1.Stream(_Pieces([answer])), "GET")  # type: ignore[arg-type]

    head = asyncio.run(go())
    assert (head.length, head.keep) == (http1.CHUNKED, False)


@pytest.mark.parametrize(
    "size_line", [b"0x10", b"+10", b"-1", b" 10", b"10 ;x", b"1_0", b"", b"1" * 21]
)
def test_chunk_sizes_are_hex_digits_only(size_line: bytes) -> None:
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\n" % size_line
    answer += b"x" * 16 + b"\r\n0\r\n\r\n"
    assert read_http1([answer], "GET") == "error" == read_h11([answer], "GET")
