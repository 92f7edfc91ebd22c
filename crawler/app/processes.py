"""Child processes: the one module that forks, spawns, signals and reaps.

An audit uses child processes for five jobs: parse workers (``crawler.pages.parse_worker``), the
re-run's revalidation pass (``crawler.rerun.revalidate``), the report child
(``crawler.app.report_writer``), the PDF reader (``crawler.pages.pdf_links``), the history's
schema check while Scrapy loads (``crawler.app.run``);
``sitewatch schedule`` runs each audit as a command of its own (``crawler.app.schedule``).
They all start here:

- :func:`fork`: a copy of this process runs a function with its end of a socket pair and
  ends with ``os._exit`` (status 0, the function's int, or 1 with the exception sent back
  to :meth:`Forked.wait`): it never returns into the parent's stack, runs no ``atexit``
  function and flushes no inherited buffer a second time.
- :func:`run_command` / :func:`spawn_async`: a command in a process group of its own
  (Ctrl-C in the terminal does not reach it; the parent stops it and whatever it started:
  :func:`stop`, SIGTERM then SIGKILL), killed at a time limit.

The same rules apply to every child, set in this one place:

- It ends with its parent (``PR_SET_PDEATHSIG`` on Linux, and a check that the parent is
  still the one that started it): a killed audit leaves no worker or reader running. The
  signal follows the *thread* that started the child, so children are started from a
  thread that waits for them (the main thread or the thread running the command).
- A forked child ignores SIGINT (Ctrl-C reaches the whole foreground process group: the
  parent stops its children itself) and dies of SIGTERM (the parent's Python handlers,
  Scrapy's among them, must not run in a copy of the parent).
- A forked child freezes the garbage collector's view of what it inherited
  (``gc.freeze``): a collection in the child would otherwise visit every inherited object
  and copy every page of the parent's memory it touches (copy-on-write). Done in the child,
  the parent's collector is left as it was.
- A helper child that only takes work the audit process hands it runs at a lower priority
  (``nice=HELPER_NICENESS``): when both want a core, the audit process, which keeps the
  downloads going and feeds the helpers, goes first.
- Children still running when this process exits normally are killed (``atexit``).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import asyncio

#: How much nicer parse workers run than the audit process. On the PostgreSQL manual, two
#: workers on two cores: audit 3.55 -> 3.35 s with 5, 3.48 s with 10 (8 alternating rounds
#: each; docs/performance.md).
HELPER_NICENESS = 5
#: Seconds a command gets between SIGTERM and SIGKILL when it is stopped.
GRACE = 10.0
#: Exit code :func:`run_command` reports for a command stopped at its time limit.
TIMED_OUT = -9
#: Longest error a forked child sends back (a pickled exception; it must fit in the pipe,
#: which the parent reads only once the child has ended).
_MAX_ERROR_BYTES = 60_000
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Ended:
    """How a child ended: its exit code (negative: the signal that killed it) and, for a
    forked child whose function raised, the exception (or a RuntimeError with its text)."""

    code: int
    error: BaseException | None = None


class Forked:
    """A forked child (:func:`fork`): ``pid`` and ``sock``, the parent's end of the pair
    (the caller's to use and close)."""

    def __init__(self, pid: int, sock: socket.socket, error_fd: int) -> None:
        self.pid = pid
        self.sock = sock
        self._error_fd: int | None = error_fd
        self.ended: Ended | None = None

    def wait(self, timeout: float | None = None) -> Ended | None:
        """Reap the child (at once if it has ended): how it ended; None if it is still
        running after ``timeout`` seconds."""
        if self.ended is not None:
            return self.ended
        if timeout is not None and not _ends_within(self.pid, timeout):
            return None
        try:
            _, status = os.waitpid(self.pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # reaped elsewhere (a test, a signal handler)
            code = -signal.SIGKILL
        self.ended = Ended(code, self._read_error())
        _forked.discard(self)
        return self.ended

    def kill(self) -> Ended:
        """SIGKILL the child and reap it (nothing once reaped: its pid may be another
        process's by then)."""
        if self.ended is None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
        ended = self.wait()
        assert ended is not None
        return ended

    def stop(self, timeout: float) -> Ended:
        """Let the child end on its own (its socket closed, say) within ``timeout``
        seconds, else kill it; reaped either way."""
        return self.wait(timeout) or self.kill()

    def _read_error(self) -> BaseException | None:
        fd, self._error_fd = self._error_fd, None
        if fd is None:
            return None
        with open(fd, "rb") as pipe:  # closes the descriptor; the child has ended
            data = pipe.read()
        if not data:
            return None
        try:
            error = pickle.loads(data)
        except Exception:
            return RuntimeError("the child's error could not be read")
        return error if isinstance(error, BaseException) else None

    def _close_in_child(self) -> None:
        """In a child forked later: let go of this child's parent-side descriptors (while
        the later child held the socket, this child would never see it close)."""
        self.sock.close()
        if self._error_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._error_fd)


#: Forked children not yet reaped; commands running (killed at exit if still there).
_forked: set[Forked] = set()
_commands: set[subprocess.Popen[bytes] | asyncio.subprocess.Process] = set()


def fork(run: Callable[[socket.socket], int | None], *, nice: int = 0) -> Forked | None:
    """Fork a child that calls ``run`` with its end of a socket pair and exits: status 0,
    the int ``run`` returned, the code of a ``SystemExit`` it raised, or 1 when it raised
    anything else (sent back as :attr:`Ended.error`). None where fork is not available or
    fails (the caller does the work itself)."""
    if not hasattr(os, "fork"):
        return None
    try:
        parent_end, child_end = socket.socketpair()
    except OSError:
        return None
    try:
        error_r, error_w = os.pipe()
    except OSError:
        parent_end.close()
        child_end.close()
        return None
    me = os.getpid()
    if "ctypes" in sys.modules:
        _prctl()  # looked up once here, not in every child
    try:
        pid = os.fork()
    except OSError:
        for s in (parent_end, child_end):
            s.close()
        os.close(error_r)
        os.close(error_w)
        return None
    if pid == 0:  # pragma: no cover - runs in the child (coverage does not follow fork)
        parent_end.close()
        os.close(error_r)
        _child_main(run, child_end, error_w, me, nice)
    child_end.close()
    os.close(error_w)
    child = Forked(pid, parent_end, error_r)
    _forked.add(child)
    _kill_at_exit()
    return child


def _child_main(
    run: Callable[[socket.socket], int | None],
    sock: socket.socket,
    error_w: int,
    parent: int,
    nice: int,
) -> NoReturn:  # pragma: no cover - runs in the child
    code = 1
    try:
        gc.freeze()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _end_with(parent)
        for sibling in list(_forked):
            sibling._close_in_child()
        _forked.clear()
        _commands.clear()
        if nice:
            with contextlib.suppress(OSError):
                os.nice(nice)
        status = run(sock)
        code = status if isinstance(status, int) else 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException as e:
        _send_error(error_w, e)
    finally:
        os._exit(code)


def _send_error(fd: int, exc: BaseException) -> None:  # pragma: no cover - runs in the child
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)  # some exceptions pickle but cannot be made again from it
    except Exception:
        data = b""
    if not data or len(data) > _MAX_ERROR_BYTES:
        data = pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"[:10_000]))
    view = memoryview(data)
    with contextlib.suppress(OSError):
        while view:
            view = view[os.write(fd, view) :]


def _end_with(parent: int) -> None:
    """Make this (child) process die with ``parent``: SIGKILL when the thread that started
    it ends (Linux), and exit now if ``parent`` is already gone (reparented)."""
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


_PRCTL: list[Callable[..., int] | None] = []


def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` (None off Linux), looked up once."""
    if not _PRCTL:
        func = None
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError, ImportError):
                import ctypes

                func = ctypes.CDLL(None, use_errno=True).prctl
        _PRCTL.append(func)
    return _PRCTL[0]


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (another user's counts: it cannot be signalled)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _ends_within(pid: int, timeout: float) -> bool:
    """Whether child ``pid`` ends within ``timeout`` seconds (not reaped here)."""
    with contextlib.suppress(AttributeError, OSError):
        fd = os.pidfd_open(pid)
        try:
            return bool(select.select([fd], [], [], timeout)[0])
        finally:
            os.close(fd)
    deadline = time.monotonic() + timeout  # no pidfd: ask now and then
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)


# -- commands ----------------------------------------------------------------------


def _preexec() -> Callable[[], None]:
    """What a command's child does before it runs the command: end with this process.
    ``prctl`` is looked up here: the child, between fork and exec, imports nothing and
    takes no lock (what makes ``preexec_fn`` unsafe beside other threads)."""
    parent = os.getpid()
    _prctl()
    return lambda: _end_with(parent)


#: Set by :func:`stop_commands`: the commands end because this process is being stopped.
shutting_down = threading.Event()


def run_sitewatch(
    args: Sequence[str], time_limit: float, env: Mapping[str, str] | None = None
) -> int:
    """``sitewatch ARGS`` (this interpreter) as a command: :func:`run_command`."""
    return run_command([sys.executable, "-m", "crawler.app.cli", *args], time_limit, env=env)


def run_command(
    cmd: Sequence[str],
    time_limit: float,
    *,
    grace: float = GRACE,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run ``cmd`` (stdin from /dev/null; ``env``: variables added to this process's) in a
    process group of its own and wait for it: its exit code, or :data:`TIMED_OUT` when it
    ran past ``time_limit`` seconds and was stopped (:func:`stop`). The command is stopped
    in a ``finally`` too (this thread interrupted: a Dramatiq time limit, a shutdown), and
    ends with the thread that started it (``PR_SET_PDEATHSIG``)."""
    proc = subprocess.Popen(
        list(cmd),
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_preexec(),
        env={**os.environ, **env} if env else None,
    )
    _commands.add(proc)
    _kill_at_exit()
    try:
        return proc.wait(timeout=time_limit)
    except subprocess.TimeoutExpired:
        stop(proc, grace)
        return TIMED_OUT
    finally:
        if proc.returncode is None:
            stop(proc, grace)
        _commands.discard(proc)


def stop(proc: subprocess.Popen[bytes], grace: float = GRACE) -> None:
    """Stop a command's process group: SIGTERM, then SIGKILL after ``grace`` seconds;
    reaped."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def stop_commands(grace: float = GRACE) -> None:
    """Stop every command :func:`run_command` is waiting for (this process is shutting
    down)."""
    shutting_down.set()
    for proc in list(_commands):
        if isinstance(proc, subprocess.Popen):
            stop(proc, grace)


async def spawn_async(cmd: Sequence[str], env: dict[str, str] | None = None) -> Any:
    """``cmd`` in a process group of its own, with pipes to its stdin and stdout (stderr
    to /dev/null): an ``asyncio.subprocess.Process``, stopped with :func:`stop_async`."""
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        start_new_session=True,
        preexec_fn=_preexec(),
    )
    _commands.add(proc)
    _kill_at_exit()
    return proc


async def stop_async(proc: asyncio.subprocess.Process, grace: float = 0.0) -> None:
    """Stop ``proc``'s process group (SIGTERM, then SIGKILL after ``grace`` seconds; at
    once with 0) and wait for it."""
    import asyncio

    _commands.discard(proc)
    if proc.returncode is None and grace > 0:
        _signal_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), grace)
    if proc.returncode is None:
        _signal_group(proc.pid, signal.SIGKILL)
    await proc.wait()


def kill_async(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL ``proc``'s process group without waiting (no event loop to wait in: the
    loop's child watcher reaps it)."""
    _commands.discard(proc)
    if proc.returncode is None:
        _signal_group(proc.pid, signal.SIGKILL)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


_registered = False


def _kill_at_exit() -> None:
    global _registered
    if not _registered:
        _registered = True
        atexit.register(_kill_all)


def _kill_all() -> None:
    """At exit: kill what is still running (forked children are reaped too)."""
    for child in list(_forked):
        child.kill()
    for proc in list(_commands):
        _signal_group(proc.pid, signal.SIGKILL)
    _commands.clear()


# -- this process -----------------------------------------------------------------


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The garbage collector off for a block of imports: they make tens of thousands of
    objects and no garbage, and the collector's passes over them only cost time (Scrapy
    and Twisted: 0.66 -> 0.58 s; SQLAlchemy and the audit's modules: ~13 ms, medians of
    5 alternating runs). Left as it was found."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def few_collections() -> None:
    """Freeze what exists now (modules, config) and collect the young generation less
    often. An audit allocates millions of small, long-lived objects (link references,
    pages; a replayed run reads them back from the history): with the default thresholds
    the collector rescans them over and over (5-10 % more CPU per crawl here; a replay of
    s2000 spent 16 ms in one full collection while reading the last run back). One audit
    per process, so nothing else is affected."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def exit_now(status: int) -> NoReturn:
    """End this process without tearing the interpreter down (freeing the millions of
    objects of a big audit one by one took a noticeable part of a run), after what
    Python's shutdown would do that matters: the ``atexit`` functions (logging's flush,
    lock files, children killed) and flushing stdout and stderr."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: shutdown would lose it the same way
            if status == 0:
                status = 120  # what Python itself exits with when flushing stdout fails
    os._exit(status)


def supervise(cmd: Sequence[str], count: int, restarted: Callable[[int, int], None]) -> int:
    """Keep ``count`` copies of ``cmd`` running until SIGTERM/SIGINT, which is passed on to
    each (``sitewatch worker --processes N``); a copy that ends otherwise is started again
    (``restarted(pid, status)`` is told). Returns 0 once every copy has ended."""
    running: dict[int, subprocess.Popen[bytes]] = {}
    stopping = threading.Event()

    def start() -> None:
        proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL)
        running[proc.pid] = proc

    def stop(signum: int, frame: object) -> None:
        stopping.set()
        for proc in list(running.values()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(count):
        start()
    while running:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if running.pop(pid, None) is not None and not stopping.is_set():
            restarted(pid, status)
            start()
    return 0
