"""A reverse proxy on loopback that adds a fixed latency to every request (the bench's
politeness-bound scenario: a slow server, where per-host concurrency decides the time).

    python bench/delay_proxy.py --listen 127.0.0.1:18081 --upstream 127.0.0.1:18080 --delay 0.05

Each client connection gets its own upstream connection. Every request head read from the
client (and its body, by Content-Length) waits ``--delay`` seconds and is then forwarded;
the upstream's bytes go back unchanged. So each response arrives ``--delay`` later than the
upstream would send it, keep-alive included. ``GET /__delay_proxy/count`` answers the
number of requests forwarded since the last such call, the most that were waiting for
their response at once, and the mean number waiting from the first request to the last
answer (and is not forwarded itself).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

COUNT_PATH = b"/__delay_proxy/count"
MAX_HEAD = 64 * 1024


class Proxy:
    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.count = 0
        #: Requests forwarded or waiting whose response has not started yet, and the most.
        self.in_flight = 0
        self.max_in_flight = 0
        #: Time integral of ``in_flight`` and the span it covers (first request to last
        #: response start): their quotient is the mean number of requests waiting.
        self._area = 0.0
        self._since = 0.0
        self._first = self._last = 0.0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_writer = None
        waiting: list[int] = []  # requests of this connection not yet answered
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            back = asyncio.create_task(self._copy(up_reader, writer, waiting))
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    break
                if head.split(b" ", 2)[1:2] == [COUNT_PATH]:
                    span = self._last - self._first
                    mean = self._area / span if span > 0 else 0.0
                    body = b"%d %d %.2f" % (self.count, self.max_in_flight, mean)
                    self.count = self.max_in_flight = 0
                    self._area = self._first = self._last = 0.0
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                    )
                    continue
                head += await reader.readexactly(_content_length(head))
                if not self.count:
                    self._first = self._since = time.monotonic()
                self.count += 1
                waiting.append(1)
                self._change(+1)
                await asyncio.sleep(self.delay)
                up_writer.write(head)
            back.cancel()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._change(-len(waiting))
            waiting.clear()
            for w in (writer, up_writer):
                if w is not None:
                    w.close()

    def _change(self, by: int) -> None:
        now = time.monotonic()
        self._area += self.in_flight * (now - self._since)
        self._since = now
        self.in_flight += by
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    async def _copy(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, waiting: list[int]
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await src.read(65536):
                if waiting:  # a response starts (approximately: one per read with a wait)
                    waiting.pop()
                    self._change(-1)
                    self._last = time.monotonic()
                dst.write(data)
                await dst.drain()
        dst.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", required=True, type=_addr)
    ap.add_argument("--upstream", required=True, type=_addr)
    ap.add_argument("--delay", type=float, default=0.05)
    args = ap.parse_args()
    proxy = Proxy(args.upstream, args.delay)
    server = await asyncio.start_server(proxy.handle, *args.listen, limit=MAX_HEAD, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
