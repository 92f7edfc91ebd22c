"""The re-run pass against a server that answers pipelined requests out of order.

HTTP/1.1 pairs answers with requests by their order only. A server (or a middlebox) that
breaks that order would pair a 304 with the wrong request, and a changed page would be
taken as unchanged. The pass therefore pipelines only questions that carry
``If-None-Match`` and takes a 304 only when it names the entity tag its request asked
about (crawler/http/client.py ``pipelined``); the rest is asked one at a time.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from types import TracebackType

from crawler.rerun.revalidate import PassSettings, _revalidate

PAGES = 8
CHANGED = {1, 4}


class ReorderingServer:
    """Answers the complete requests it holds in reverse order. The first connection's
    answers wait until all ``first_batch`` requests arrived (a pipelined batch); later
    connections are answered as their requests come (one at a time: in order). Each
    answer is right for its own request: 200 with a new ETag for a page in ``CHANGED``,
    else 304 (with the entity tag asked about, if any)."""

    def __init__(self, first_batch: int) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._first_batch = first_batch
        self.connections = 0
        #: Requests answered in a batch of more than one, reversed.
        self.reordered = 0
        #: (path, carried If-None-Match) of every request, in arrival order.
        self.asked: list[tuple[str, bool]] = []

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.port}/p{n}.html"

    def __enter__(self) -> ReorderingServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            wait_for = self._first_batch if self.connections == 1 else 1
            threading.Thread(target=self._serve, args=(conn, wait_for), daemon=True).start()

    def _serve(self, conn: socket.socket, wait_for: int) -> None:
        buf = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                heads = buf.split(b"\r\n\r\n")
                if len(heads) - 1 < wait_for:
                    continue
                buf = heads.pop()
                wait_for = 1
                if len(heads) > 1:
                    self.reordered += len(heads)
                try:
                    conn.sendall(b"".join(self._answer(h) for h in reversed(heads)))
                except OSError:
                    return

    def _answer(self, head: bytes) -> bytes:
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        n = int(path.removeprefix("/p").removesuffix(".html"))
        fields = dict(line.split(": ", 1) for line in lines[1:])
        etag = fields.get("If-None-Match", "")
        self.asked.append((path, bool(etag)))
        if n in CHANGED:
            body = b"<p>ny</p>"
            return b'HTTP/1.1 200 OK\r\nETag: "new%d"\r\nContent-Length: %d\r\n\r\n%s' % (
                n,
                len(body),
                body,
            )
        tag = f"ETag: {etag}\r\n" if etag else ""
        return f"HTTP/1.1 304 Not Modified\r\n{tag}\r\n".encode("latin-1")


def _pass(rows: list[tuple[str, int, str, str]]) -> set[tuple[str, int]]:
    settings = PassSettings("sitewatch-test", 1, 1, 5.0, obey_robots=False)
    fresh, asked, _ = asyncio.run(_revalidate(rows, settings))
    assert asked == len(rows)
    return fresh


def test_questions_with_only_if_modified_since_are_never_pipelined() -> None:
    """Pipelined and answered in reverse, they would mark the changed pages unchanged."""
    with ReorderingServer(first_batch=1) as server:
        rows = [(server.url(n), 4, "", "Sat, 01 Nov 2026 10:00:00 GMT") for n in range(PAGES)]
        fresh = _pass(rows)
    assert fresh == {(server.url(n), 4) for n in range(PAGES) if n not in CHANGED}
    assert server.reordered == 0 and len(server.asked) == PAGES


def test_a_304_paired_with_another_request_is_not_taken() -> None:
    """All questions carry an ETag: pipelined in one batch, answered in reverse; the first
    304 names another entity tag, so the connection is dropped and every question is
    asked again on its own. No changed page is taken as unchanged."""
    with ReorderingServer(first_batch=PAGES) as server:
        rows = [(server.url(n), 4, f'"e{n}"', "") for n in range(PAGES)]
        fresh = _pass(rows)
    assert server.reordered == PAGES  # the test did send a reversed batch
    assert fresh == {(server.url(n), 4) for n in range(PAGES) if n not in CHANGED}
    asked_alone = [path for path, _ in server.asked[PAGES:]]
    assert sorted(asked_alone) == sorted(f"/p{n}.html" for n in range(PAGES))


def test_mixed_questions_pipeline_only_those_with_an_etag() -> None:
    with ReorderingServer(first_batch=PAGES // 2) as server:
        rows = [
            (server.url(n), 4, f'"e{n}"' if n % 2 else "", "Sat, 01 Nov 2026 10:00:00 GMT")
            for n in range(PAGES)
        ]
        fresh = _pass(rows)
    assert fresh == {(server.url(n), 4) for n in range(PAGES) if n not in CHANGED}
    first_batch = server.asked[: PAGES // 2]
    assert all(with_etag for _, with_etag in first_batch)
