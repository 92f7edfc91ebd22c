"""A forked helper process with a socket pair to the parent (the parse workers)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable


def fork_child(run: Callable[[socket.socket], None]) -> tuple[int, socket.socket] | None:
    """Fork a child that calls ``run`` with its end of a socket pair, then exits (status 1
    if ``run`` raised, else 0). Returns the child's pid and the parent's end of the pair;
    None where fork is not available or fails."""
    if not hasattr(os, "fork"):
        return None
    try:
        parent, child = socket.socketpair()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        parent.close()
        child.close()
        return None
    if pid == 0:  # pragma: no cover - runs in the child (coverage does not follow fork)
        code = 1
        try:
            parent.close()
            run(child)
            code = 0
        finally:
            os._exit(code)
    child.close()
    return pid, parent
