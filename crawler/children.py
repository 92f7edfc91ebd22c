"""``sitewatch`` commands run as child processes with a time limit (one audit per process:
Scrapy's reactor cannot restart). Used by the local scheduler (``crawler.schedule``) and
the Dramatiq workers (``crawler.worker``).

A child started with ``die_with_parent=True`` is killed by the kernel when the thread that
started it ends (``PR_SET_PDEATHSIG``, Linux): a worker killed with SIGKILL leaves no audit
running on without it, still writing to the history as the redelivered audit starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading

#: Set in a child's environment to the pid of the process it must not outlive.
PARENT_ENV = "SITEWATCH_DIE_WITH_PARENT"

#: The children running now (stopped by the scheduler's and the worker's signal handlers).
children: set[subprocess.Popen[bytes]] = set()
children_lock = threading.Lock()
#: Set by :func:`stop_all`: the children end because this process is being stopped.
shutting_down = threading.Event()


def run_child(
    args: list[str],
    timeout: float,
    *,
    die_with_parent: bool = False,
    env: dict[str, str] | None = None,
) -> int:
    """Run ``sitewatch ARGS`` in a child process; -9 when it was stopped for time.

    The child is stopped (SIGTERM, then SIGKILL, its whole process group) in a ``finally``:
    also when this thread is interrupted (a Dramatiq time limit, a shutdown). ``env``:
    variables added to this process's environment."""
    extra = dict(env or {})
    if die_with_parent:
        extra[PARENT_ENV] = str(os.getpid())
    env = {**os.environ, **extra} if extra else None
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", *args],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    with children_lock:
        children.add(proc)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        return -9
    finally:
        if proc.returncode is None:
            stop(proc)
        with children_lock:
            children.discard(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group, SIGKILL it after 10 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def stop_all() -> None:
    """Stop every child still running (a signal handler's clean-up)."""
    shutting_down.set()
    with children_lock:
        running = list(children)
    for proc in running:
        stop(proc)


def die_with_parent() -> None:
    """In a child started with ``die_with_parent=True``: ask the kernel for SIGKILL when
    the parent goes; exit at once if it went already. No-op elsewhere (one environment
    lookup on the audit path)."""
    want = os.environ.pop(PARENT_ENV, None)
    if not want or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if str(os.getppid()) != want:  # the parent died before prctl: do not run orphaned
        os._exit(3)
