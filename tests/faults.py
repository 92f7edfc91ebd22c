"""Misbehaving HTTP servers for fault tests: ``Route(handler=...)`` behaviours that write raw
bytes, plus ``run_measured``: the real CLI in a child process with its peak RSS.

Every handler tolerates the client going away (the crawler stops reading on purpose) and
gives up after ``MAX_SECONDS`` so no server thread outlives a test by much.
"""

from __future__ import annotations

import gzip
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cli_runner import ROOT, CliResult

Handler = Callable[[Any], None]
MAX_SECONDS = 120.0
MB = 1024 * 1024


# --------------------------------------------------------------------------- raw writing


def _head(h: Any, status: int, headers: Iterable[tuple[str, str]]) -> None:
    h.close_connection = True
    h.send_response_only(status)
    for name, value in headers:
        h.send_header(name, value)
    h.end_headers()


def _stream(h: Any, chunks: Iterable[bytes], *, chunked: bool = False) -> None:
    """Write ``chunks`` until they end, the client leaves or MAX_SECONDS pass."""
    deadline = time.monotonic() + MAX_SECONDS
    try:
        for chunk in chunks:
            if chunked:
                h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            else:
                h.wfile.write(chunk)
            if time.monotonic() > deadline:
                return
        if chunked:
            h.wfile.write(b"0\r\n\r\n")
    except OSError:
        return


def html_doc(title: str, body: str) -> bytes:
    return (
        f'<!doctype html><html lang="sv"><head><meta charset="utf-8"><title>{title}</title>'
        f"</head><body>{body}</body></html>"
    ).encode()


def filler(
    total: int | None, line: bytes = b"<p>Fyllnad, fyllnad och fyllnad.</p>\n"
) -> Iterator[bytes]:
    """HTML filler in 64 KiB chunks: ``total`` bytes, or without end."""
    block = line * (65536 // len(line))
    sent = 0
    while total is None or sent < total:
        chunk = block if total is None else block[: total - sent]
        sent += len(chunk)
        yield chunk


def reset(h: Any) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0)."""
    conn = h.connection
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    h.close_connection = True


# --------------------------------------------------------------------------- behaviours


def reset_mid_body(h: Any) -> None:
    """Promise 100 kB, send 10 kB of a page, then reset the connection."""
    body = html_doc("Avbruten", '<a href="after.html">vidare</a>' + "<p>x</p>" * 20000)
    _head(h, 200, [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "100000")])
    try:
        h.wfile.write(body[:10000])
        h.wfile.flush()
        time.sleep(0.2)
    except OSError:
        return
    reset(h)


def trickle(h: Any) -> None:
    """A 600-byte page sent one byte a second (never finishes within any sane timeout)."""
    body = html_doc("Droppande", '<a href="after.html">vidare</a>' + "x" * 400)
    _head(
        h, 200, [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))]
    )

    def drip() -> Iterator[bytes]:
        for i in range(len(body)):
            yield body[i : i + 1]
            time.sleep(1.0)

    _stream(h, drip())


def truncated_gzip(h: Any) -> None:
    """A gzip body cut in half (the Content-Length matches the cut body)."""
    page = html_doc(
        "Halv gzip",
        '<a href="after.html">vidare</a>' + "".join(f"<p>stycke {i}</p>" for i in range(3000)),
    )
    gz = gzip.compress(page)
    body = gz[: len(gz) // 2]
    _head(
        h,
        200,
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Encoding", "gzip"),
            ("Content-Length", str(len(body))),
        ],
    )
    _stream(h, [body])


def corrupt_gzip(h: Any) -> None:
    """Content-Encoding: gzip on bytes that are not gzip at all."""
    body = b"\x1f\x8b\x08\x00" + random.Random(7).randbytes(5000)
    _head(
        h,
        200,
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Encoding", "gzip"),
            ("Content-Length", str(len(body))),
        ],
    )
    _stream(h, [body])


def gzip_bomb_parts(unpacked_gb: int = 10) -> tuple[bytes, bytes, int, bytes]:
    """(first block, repeated block, repeats, trailer) of a gzip stream of zeros.

    After a full flush the compressor forgets its history, so compressing the next MiB of
    zeros yields the same bytes every time: the stream is the first block, the repeated
    block ``repeats`` times and the trailer, ~1 kB per MiB unpacked, never all in memory.
    """
    zeros = bytes(MB)
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = c.compress(b"<!doctype html><html><head><title>Bomb</title></head><body>")
    first += c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    trailer = c.flush()
    return first, block, unpacked_gb * 1024 - 1, trailer


def gzip_bomb(h: Any) -> None:
    """~10 MB on the wire, 10 GiB of zeros unpacked, Content-Encoding: gzip."""
    first, block, repeats, trailer = gzip_bomb_parts()
    size = len(first) + len(block) * repeats + len(trailer)
    _head(
        h,
        200,
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Encoding", "gzip"),
            ("Content-Length", str(size)),
        ],
    )

    def parts() -> Iterator[bytes]:
        yield first
        batch = block * 64
        for _ in range(repeats // 64):
            yield batch
        for _ in range(repeats % 64):
            yield block
        yield trailer

    _stream(h, parts())


def _big_head() -> bytes:
    return (
        b'<!doctype html><html lang="sv"><head><meta charset="utf-8"><title>Stor sida</title>'
        b'</head><body><a href="after.html">vidare</a>\n'
    )


def huge_page(h: Any) -> None:
    """A 100 MB HTML page with a correct Content-Length, streamed."""
    total = 100 * MB
    head = _big_head()
    _head(h, 200, [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(total))])
    _stream(h, _chain(head, filler(total - len(head))))


def huge_page_unsized(h: Any) -> None:
    """A 100 MB HTML page without Content-Length (ends when the connection closes)."""
    total = 100 * MB
    head = _big_head()
    _head(h, 200, [("Content-Type", "text/html; charset=utf-8"), ("Connection", "close")])
    _stream(h, _chain(head, filler(total - len(head))))


def endless_chunked(h: Any) -> None:
    """Transfer-Encoding: chunked, and the chunks never stop."""
    _head(h, 200, [("Content-Type", "text/html; charset=utf-8"), ("Transfer-Encoding", "chunked")])
    _stream(h, _chain(_big_head(), filler(None)), chunked=True)


def _chain(first: bytes, rest: Iterable[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _page_with_type(content_type: str | None, body: bytes | None = None) -> Handler:
    def handler(h: Any) -> None:
        data = body if body is not None else html_doc("Typlös", '<a href="after.html">vidare</a>')
        headers = [("Content-Length", str(len(data)))]
        if content_type is not None:
            headers.insert(0, ("Content-Type", content_type))
        _head(h, 200, headers)
        _stream(h, [data])

    return handler


no_content_type = _page_with_type(None)
invalid_content_type = _page_with_type("text/html; charset=klingon-9; ;;==")
nonsense_content_type = _page_with_type("\x7f/\x01;;")
binary_as_html = _page_with_type("text/html; charset=utf-8", random.Random(5).randbytes(300_000))
invalid_utf8 = _page_with_type(
    "text/html; charset=utf-8",
    b'<!doctype html><html><head><meta charset="utf-8"><title>Tr\xc3\x28asig \xff\xfe'
    b'\xed\xa0\x80 kodning</title></head><body><a href="after.html">vid\xe4re</a>'
    b"<p>\xf0\x28\x8c\x28 \xc0\xaf</p></body></html>",
)


def never_answers(h: Any) -> None:
    """Accept the request, then say nothing until the client hangs up."""
    h.close_connection = True
    conn = h.connection
    conn.settimeout(0.5)
    deadline = time.monotonic() + MAX_SECONDS
    while time.monotonic() < deadline:
        try:
            if conn.recv(1, socket.MSG_PEEK) == b"":
                return
        except TimeoutError:
            continue
        except OSError:
            return
        time.sleep(0.5)


# --------------------------------------------------------------------------- measuring


@dataclass
class Measured:
    result: CliResult
    peak_rss_mb: float
    seconds: float


def run_measured(*args: str, cwd: Path, timeout: float = 180) -> Measured:
    """``sitewatch ARGS`` in a child process; its own peak RSS from ``wait4``'s rusage.

    (``RUSAGE_CHILDREN`` would be the maximum over every child this test process ever
    reaped; ``wait4`` reports this child alone.)
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out_path, err_path = cwd / "stdout.txt", cwd / "stderr.txt"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "crawler.app.cli", *args],
            cwd=cwd,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            proc.kill()

        timer = threading.Timer(timeout, kill)
        t0 = time.monotonic()
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - t0
    if killed.is_set():
        raise AssertionError(f"sitewatch {' '.join(args)} did not finish within {timeout} s")
    out_dir = cwd / "out"
    if "--out" in args:
        out_dir = Path(args[args.index("--out") + 1])
    result = CliResult(
        proc.returncode,
        out_path.read_text(encoding="utf-8", errors="replace"),
        err_path.read_text(encoding="utf-8", errors="replace"),
        out_dir,
    )
    return Measured(result, usage.ru_maxrss / 1024, seconds)
