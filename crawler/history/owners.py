"""Who records a run: the process (host, pid, start-time token) and whether it still runs."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a process from /proc, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = raw[raw.rfind(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    if len(fields) < 20:
        return None
    return fields[0], fields[19]


@dataclass(frozen=True, slots=True)
class RunOwner:
    """The process that records a run: host name, pid and a start-time token.

    ``token`` (boot id and the process's start time, from /proc on Linux; empty where
    unknown) tells a live owner from another process that got the same pid later.
    """

    host: str
    pid: int
    token: str = ""

    @classmethod
    def for_pid(cls, pid: int) -> RunOwner:
        stat = _proc_stat(pid)
        boot = _boot_id()
        token = f"{boot}:{stat[1]}" if stat and boot else ""
        return cls(socket.gethostname(), pid, token)

    @classmethod
    def current(cls) -> RunOwner:
        return cls.for_pid(os.getpid())

    @property
    def key(self) -> str:
        return f"{self.host}/{self.pid}/{self.token}"

    def alive(self) -> bool | None:
        """Whether the owner still runs: True, False, or None when it cannot be known
        (another host)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, belongs to another user
        except OSError:
            return None
        stat = _proc_stat(self.pid)
        if stat is None:
            return True  # no /proc: the pid exists, that is all we know
        if stat[0] in ("Z", "X"):
            return False  # exited; its parent has not reaped it yet
        if self.token:
            now = RunOwner.for_pid(self.pid).token
            if now and now != self.token:
                return False  # the pid was reused by a process started later
        return True


def _row_owner(row: Mapping[Any, Any]) -> RunOwner | None:
    if row["owner_pid"] is None:
        return None
    return RunOwner(row["owner_host"], int(row["owner_pid"]), row["owner_token"])
