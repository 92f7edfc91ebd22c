"""crawler.app.processes: how forked children and commands end, and that nothing is left over."""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from crawler.app import processes

ROOT = Path(__file__).resolve().parent.parent
HANG = "import os, threading; print(os.getpid(), flush=True); threading.Event().wait()"

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def _reaped(pid: int) -> bool:
    """Whether child ``pid`` has been reaped (no zombie left of it)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def _ends(pid: int, timeout: float = 30.0) -> bool:
    """Whether process ``pid`` (not necessarily a child of this one) has ended or ends
    within ``timeout`` seconds; waits on a pidfd, which is readable once it has ended."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def _recv_all(sock) -> bytes:
    with sock, sock.makefile("rb") as stream:
        return stream.read()


def test_a_child_that_returns_exits_0_and_its_socket_carries_what_it_sent() -> None:
    child = processes.fork(lambda sock: sock.sendall(b"hello"))
    assert child is not None
    assert _recv_all(child.sock) == b"hello"
    assert child.wait() == processes.Ended(0)
    assert _reaped(child.pid)


def test_a_child_that_raises_exits_1_and_its_exception_comes_back() -> None:
    def run(sock) -> None:
        raise ValueError("bad page 7")

    child = processes.fork(run)
    assert child is not None
    ended = child.wait()
    assert ended is not None and ended.code == 1
    assert isinstance(ended.error, ValueError) and str(ended.error) == "bad page 7"
    assert _reaped(child.pid)


class _NotRebuilt(Exception):
    def __init__(self, what, where):  # a pickle cannot make it again (two arguments)
        super().__init__(f"{what} at {where}")


def test_an_exception_that_cannot_come_back_as_is_comes_back_as_its_text() -> None:
    def run(sock) -> None:
        raise _NotRebuilt("loop", "line 3")

    child = processes.fork(run)
    assert child is not None
    ended = child.wait()
    assert ended is not None and ended.code == 1
    assert isinstance(ended.error, RuntimeError)
    assert str(ended.error) == "_NotRebuilt: loop at line 3"


@pytest.mark.parametrize(("result", "code"), [(7, 7), (SystemExit(4), 4), (None, 0)])
def test_the_exit_status_is_what_the_child_says(result, code) -> None:
    def run(sock) -> int | None:
        if isinstance(result, BaseException):
            raise result
        return result

    child = processes.fork(run)
    assert child is not None
    assert child.wait() == processes.Ended(code)


def test_a_forked_child_that_hangs_is_killed_at_the_limit_and_reaped() -> None:
    child = processes.fork(lambda sock: threading.Event().wait())
    assert child is not None
    assert child.wait(timeout=0.05) is None  # still running
    ended = child.stop(0.2)
    assert ended.code == -signal.SIGKILL
    assert _reaped(child.pid)
    assert child.kill() == ended  # once reaped, nothing is signalled again
    child.sock.close()


def test_a_forked_child_has_the_policy_applied() -> None:
    """It ignores Ctrl-C (the parent stops it), dies of SIGTERM, and has frozen what it
    inherited; the parent's collector is as it was."""
    frozen = gc.get_freeze_count()

    def run(sock) -> None:
        status = Path("/proc/self/status").read_text()
        ignored = int(status.split("SigIgn:")[1].split()[0], 16)
        sock.sendall(
            b"%d %d %d"
            % (
                bool(ignored & (1 << (signal.SIGINT - 1))),
                bool(ignored & (1 << (signal.SIGTERM - 1))),
                gc.get_freeze_count() > 0,
            )
        )
        threading.Event().wait()

    child = processes.fork(run)
    assert child is not None
    try:
        assert child.sock.recv(100) == b"1 0 1"
        assert gc.get_freeze_count() == frozen
        os.kill(child.pid, signal.SIGTERM)
        assert child.wait() == processes.Ended(-signal.SIGTERM)
    finally:
        child.kill()
        child.sock.close()


def test_a_later_child_holds_none_of_an_earlier_childs_descriptors() -> None:
    """Closing the parent's end of the first child's socket ends it, although a second
    child was forked while the first ran (it let go of its copy)."""

    def serve(sock) -> None:
        while sock.recv(100):
            pass

    first = processes.fork(serve)
    second = processes.fork(serve)
    assert first is not None and second is not None
    try:
        first.sock.close()
        assert first.wait(timeout=30) == processes.Ended(0)
    finally:
        second.sock.close()
        assert second.stop(30) == processes.Ended(0)


def test_a_command_that_hangs_is_stopped_at_the_limit_with_its_process_group(
    tmp_path: Path,
) -> None:
    """SIGTERM to the group; one that ignores it gets SIGKILL after the grace time. What
    it started itself (the same process group) is stopped too."""
    pid_file = tmp_path / "pids"
    script = (
        "import os, signal, subprocess, sys, threading\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"g = subprocess.Popen([sys.executable, '-c', {HANG!r}], stdout=subprocess.PIPE)\n"
        "grandchild = g.stdout.readline().strip().decode()\n"
        f"open({str(pid_file)!r}, 'w').write(f'{{os.getpid()}} {{grandchild}}')\n"
        "threading.Event().wait()\n"
    )
    code = processes.run_command([sys.executable, "-c", script], 5.0, grace=0.2)
    assert code == processes.TIMED_OUT
    child, grandchild = (int(p) for p in pid_file.read_text().split())
    assert _reaped(child)
    assert _ends(grandchild)


def test_a_command_that_ends_gives_its_exit_code() -> None:
    assert processes.run_command([sys.executable, "-c", "raise SystemExit(3)"], 60) == 3


def test_children_end_with_a_killed_parent() -> None:
    """SIGKILL to the audit process: its forked child and its command end too."""
    parent_script = (
        "import sys, threading\n"
        "from crawler.app import processes\n"
        "child = processes.fork(lambda sock: threading.Event().wait())\n"
        "print(child.pid, flush=True)\n"
        f"cmd = [sys.executable, '-c', {HANG!r}]\n"
        "threading.Thread(target=processes.run_command, args=(cmd, 3600), daemon=True).start()\n"
        "threading.Event().wait()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_script], stdout=subprocess.PIPE, cwd=ROOT
    )
    try:
        assert parent.stdout is not None
        forked = int(parent.stdout.readline())
        command = int(parent.stdout.readline())  # printed by the command itself
        os.kill(parent.pid, signal.SIGKILL)
        assert parent.wait() == -signal.SIGKILL
        assert _ends(forked)
        assert _ends(command)
    finally:
        with contextlib.suppress(ProcessLookupError):
            parent.kill()
        parent.wait()


def test_children_are_killed_and_reaped_when_the_parent_exits() -> None:
    """A parent that exits with a child still running (a bug, an error on the way out):
    ``atexit`` kills and reaps it (the parent's own check runs after that)."""
    parent_script = (
        "import atexit, os, threading\n"
        "def check():\n"
        "    try:\n"
        "        os.waitpid(child.pid, os.WNOHANG)\n"
        "    except ChildProcessError:\n"
        "        print('reaped', flush=True)\n"
        "atexit.register(check)\n"
        "from crawler.app import processes\n"
        "child = processes.fork(lambda sock: threading.Event().wait())\n"
        "print(child.pid, flush=True)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", parent_script], capture_output=True, cwd=ROOT, check=True
    )
    pid, said = out.stdout.split()
    assert said == b"reaped"
    assert _ends(int(pid))


def test_alive() -> None:
    assert processes.alive(os.getpid())
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert not processes.alive(proc.pid)
