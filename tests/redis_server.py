"""A real Redis for the tests: ``redis-server`` on 127.0.0.1, a free port, a temporary
directory, no persistence (``--save "" --appendonly no``). Tests that need it are skipped,
with the reason, when the binary is missing (Debian package ``redis-server``)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes]

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self) -> object:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))  # up (NOAUTH: a password)
    except OSError:
        return False


@contextmanager
def redis_server(*extra: str) -> Iterator[RedisServer]:
    """A running server; ``extra``: more redis-server arguments (``--requirepass``, ...)."""
    if not shutil.which(REDIS_SERVER):
        pytest.skip(f"{REDIS_SERVER} not found (Debian package redis-server; .ci/run installs it)")
    with tempfile.TemporaryDirectory(prefix="sw-redis-") as tmp:
        port = _free_port()
        args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp]
        args += ["--save", "", "--appendonly", "no", "--logfile", f"{tmp}/redis.log", *extra]
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30  # a bound on waiting, not a timing assertion
            while not _answers(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = Path(tmp, "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"redis-server did not start: {log}")
                time.sleep(0.02)
            yield RedisServer(port, proc)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
