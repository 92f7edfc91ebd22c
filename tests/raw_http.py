"""A raw HTTP server on loopback for client tests: answers from a function, bytes as given."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import TracebackType


class RawServer:
    """Answers the n-th request on each connection with ``answer(n)`` (None: close the
    connection instead), reading requests as they come, pipelined or not; with
    ``close_after``, closes each connection silently after that many answers. Counts
    connections and keeps every request head it read."""

    def __init__(
        self, answer: Callable[[int], bytes | None], close_after: int | None = None
    ) -> None:
        self._answer = answer
        self._close_after = close_after
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port: int = self._sock.getsockname()[1]
        self.connections = 0
        self.heads: list[bytes] = []
        self._stop = threading.Event()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> RawServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._sock.close()

    def _accept(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf, n = b"", 0
        with conn, contextlib.suppress(OSError):  # OSError: the client gave up on it
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                self.heads.append(head)
                reply = self._answer(n)
                n += 1
                if reply is None:
                    return
                conn.sendall(reply)
                if self._close_after is not None and n >= self._close_after:
                    return
