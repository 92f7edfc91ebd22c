"""Entry point for writing reports: :func:`write_reports`, or :func:`start_reports` +
:meth:`PendingReports.finish` to do other work (the history write) while they render.

Each format has its own module; this one maps format names to renderers and file names
and writes the files.  Every renderer consumes only :class:`checks.models.Report`.

With :data:`PARALLEL`, a forked child starts rendering at once, while this process does
its other work (in ``sitewatch audit``: storing the run in the history) and then renders
too. The two share the formats as they go: the child takes them from the front of
:data:`ORDER` (HTML first), this process from the back (JSON first), each claiming a
format by creating its temporary file (``O_EXCL``; the files are named after this
process), until they meet. So how the work is split follows the site's size and how long
the history write takes, and the two finish close together.
:data:`PARALLEL` = False renders every format here, one after the other. Either way each
file is written to a temporary name and renamed in the order the formats were asked for;
a failed format (in either process, creating its file or rendering it) removes its
temporary file and those of the formats after it, and raises the same exception as
rendering here would.
The renderer modules are imported when first used; the formats that need Jinja2 (HTML
and Markdown) are left to the child while it runs, so the process that runs the audit does
not import Jinja2 unless the child stopped early.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import pickle
import signal
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from checks.models import Report
from reports.csv_report import ENCODING as CSV_ENCODING

#: Render in a forked child process too (where ``os.fork`` exists).
PARALLEL = True
#: The order the formats are shared in: the child takes them from the front, this process
#: from the back. The two biggest are at the ends (HTML, which needs Jinja2, for the child;
#: JSON for this process, which starts after the history write), the small ones in the
#: middle, where the two meet.
ORDER = ("html", "md", "junit", "csv", "json")
#: Formats that need Jinja2: this process leaves them to a running child (importing Jinja2
#: and loading the template here would cost more than waiting for the child's Markdown).
JINJA_FORMATS = frozenset({"html", "md"})

_LAZY_RENDERERS = {
    "render_html": "reports.html_report",
    "iter_html": "reports.html_report",
    "render_markdown": "reports.markdown_report",
    "render_json": "reports.json_report",
    "iter_json": "reports.json_report",
    "report_to_dict": "reports.json_report",
    "render_csv": "reports.csv_report",
    "iter_csv": "reports.csv_report",
    "render_junit": "reports.junit_report",
    "iter_junit": "reports.junit_report",
}


def __getattr__(name: str) -> Any:
    """``from reports.render import render_html`` etc. import the renderer module then."""
    module = _LAZY_RENDERERS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def _lazy(name: str) -> Callable[..., Any]:
    """``name`` from its renderer module, imported at the first call."""
    module = _LAZY_RENDERERS[name]

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


#: Format name -> (file name, renderer, encoding).
FORMATS: dict[str, tuple[str, Callable[[Report], str], str]] = {
    "html": ("report.html", _lazy("render_html"), "utf-8"),
    "json": ("report.json", _lazy("render_json"), "utf-8"),
    "csv": ("report.csv", _lazy("render_csv"), CSV_ENCODING),
    "junit": ("junit.xml", _lazy("render_junit"), "utf-8"),
    "md": ("summary.md", _lazy("render_markdown"), "utf-8"),
}

#: Formats written chunk by chunk as they render (same text as the renderer above), so a
#: big site's report is never held whole in memory.
CHUNKED: dict[str, Callable[[Report], Iterable[str]]] = {
    "html": _lazy("iter_html"),
    "json": _lazy("iter_json"),
    "csv": _lazy("iter_csv"),
    "junit": _lazy("iter_junit"),
}

#: Longest error a child sends back (a pickled exception; more would fill the pipe).
_MAX_ERROR_BYTES = 60_000


class _Files:
    """The temporary files of one writing of the reports in ``out_dir``: named after the
    process that started it (``.report.html.<pid>.tmp``), so that two audits writing to
    one directory, or the orphaned child of a killed audit, never take each other's."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.tag = os.getpid()

    def tmp(self, name: str) -> Path:
        return self.out_dir / f".{FORMATS[name][0]}.{self.tag}.tmp"

    def claim(self, name: str, exclusive: bool = True) -> int | None:
        """Format ``name``'s temporary file, created now (a descriptor to write it); with
        ``exclusive``, None when it exists: the other process has taken the format.
        Raises OSError when it cannot be created."""
        flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
        try:
            return os.open(self.tmp(name), flags, 0o666)
        except FileExistsError:
            return None

    def remove(self, names: Iterable[str]) -> None:
        for name in names:
            with contextlib.suppress(OSError):
                self.tmp(name).unlink(missing_ok=True)

    def sweep(self) -> None:
        """Remove the temporary files that processes now gone left behind (killed while
        writing), and those of versions that named them without a pid."""
        names = {FORMATS[n][0] for n in FORMATS}
        for path in self.out_dir.glob(".*.tmp"):
            stem = path.name[1:-4]  # between the leading "." and ".tmp"
            file_name, _, pid = stem.rpartition(".")
            if stem in names:
                gone = True  # no pid: an older version's, killed
            elif file_name in names and pid.isdigit():
                gone = int(pid) != self.tag and not _alive(int(pid))
            else:
                continue
            if gone:
                with contextlib.suppress(OSError):
                    path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def _render_to(report: Report, name: str, fd: int) -> None:
    """Write format ``name`` to its claimed temporary file ``fd`` (closed here). A file
    left by a failure is removed by whoever finishes (``PendingReports.finish``)."""
    _file_name, render, encoding = FORMATS[name]
    # newline="" keeps the renderers' own line endings (CSV uses CRLF by RFC 4180).
    with open(fd, "w", encoding=encoding, newline="") as fh:
        chunked = CHUNKED.get(name)
        chunks: Iterable[str] = chunked(report) if chunked else (render(report),)
        for chunk in chunks:
            fh.write(chunk)


class _Child:
    """A forked process rendering the formats of ``order`` from the front, as long as it
    can claim them."""

    def __init__(self, report: Report, files: _Files, order: list[str]) -> None:
        read_fd, write_fd = os.pipe()
        parent = os.getpid()
        # The child's collector leaves the objects that exist now alone: scanning them
        # would copy every page of the report (copy-on-write) into the child.
        frozen_before = gc.get_freeze_count()
        gc.freeze()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            raise
        finally:
            if frozen_before == 0 and os.getpid() == parent:
                gc.unfreeze()  # a library caller: its collector as it was
        if pid == 0:  # pragma: no cover - runs in the child (coverage does not follow fork)
            os.close(read_fd)
            _child_main(report, files, order, write_fd)
        os.close(write_fd)
        self.pid = pid
        self._read_fd: int | None = read_fd
        self._reaped = False

    def wait(self) -> tuple[int, tuple[str, BaseException] | None]:
        """Reap the child: its exit code (negative: the signal that killed it), and the
        format that failed in it with the exception, if it sent one."""
        data = b""
        if self._read_fd is not None:
            with open(self._read_fd, "rb") as pipe:  # closes the descriptor
                self._read_fd = None
                data = pipe.read()
        _, status = os.waitpid(self.pid, 0)
        self._reaped = True
        code = os.waitstatus_to_exitcode(status)
        if data:
            try:
                name, exc = pickle.loads(data)
                if isinstance(name, str) and isinstance(exc, BaseException):
                    return code, (name, exc)
            except Exception:  # reported as a child that stopped
                pass
        return code, None

    def kill(self) -> None:
        """Stop and reap the child (this process is failing); nothing once it is reaped
        (its pid may be another process's by then)."""
        if self._reaped:
            return
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            self.wait()


def _child_main(
    report: Report, files: _Files, order: list[str], write_fd: int
) -> None:  # pragma: no cover - runs in the child
    code = 0
    try:
        # Ctrl-C reaches the whole process group: the parent stops this child itself.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for name in order:
            try:
                fd = files.claim(name)
                if fd is None:
                    break  # the parent has come this far from the back
                _render_to(report, name, fd)
            except BaseException as e:
                code = 1
                _send_error(write_fd, name, e)
                break
    except BaseException:
        code = 2
    finally:
        os._exit(code)


def _send_error(fd: int, name: str, exc: BaseException) -> None:  # pragma: no cover - child
    try:
        data = pickle.dumps((name, exc))
        pickle.loads(data)  # some exceptions pickle but cannot be made again from it
    except Exception:
        data = b""
    if not data or len(data) > _MAX_ERROR_BYTES:
        data = pickle.dumps((name, RuntimeError(f"{type(exc).__name__}: {exc}"[:10_000])))
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class PendingReports:
    """Reports being written: :meth:`finish` renders the rest, waits and renames."""

    def __init__(self, report: Report, out_dir: Path, wanted: list[str]) -> None:
        self.report = report
        self.out_dir = out_dir
        self.wanted = wanted
        #: The formats this process rendered (after :meth:`finish`).
        self.rendered_here: list[str] = []
        self._order = sorted(wanted, key=ORDER.index)
        self._files = _Files(out_dir)
        self._files.sweep()
        self._child: _Child | None = None
        if PARALLEL and wanted and hasattr(os, "fork"):
            with contextlib.suppress(OSError):  # no fork: everything is rendered here
                self._child = _Child(report, self._files, self._order)

    def finish(self) -> dict[str, Path]:
        """Render the formats the child has not taken, wait for it, rename every file in
        order.

        Returns format name -> written path.  Raises what a failed format raised (the
        formats before it in the asked-for order are written; its temporary file and those
        of the formats after it are removed).
        """
        child, self._child = self._child, None
        failures: list[tuple[str, BaseException]] = []
        try:
            # From the back of the order while the child works from the front: a format
            # the child has claimed means it has claimed all before it too. The formats
            # that need Jinja2 are left to a running child.
            for name in reversed(self._order):
                if child is not None and name in JINJA_FORMATS:
                    break
                if not self._render_here(name, failures, exclusive=child is not None):
                    break
            if child is not None:
                code, error = child.wait()
                # What nobody has taken (the child stopped early) is rendered here.
                for name in self._order:
                    if name not in self.rendered_here:
                        self._render_here(name, failures, exclusive=True)
                if error is not None:
                    failures.append(error)
                elif code != 0:
                    theirs = [n for n in self.wanted if n not in self.rendered_here]
                    what = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
                    stopped = OSError(
                        f"{' and '.join(FORMATS[n][0] for n in theirs)}: "
                        f"the process rendering it stopped ({what})"
                    )
                    if theirs:
                        failures.append((theirs[0], stopped))
        except BaseException:
            if child is not None:
                child.kill()
            self._files.remove(self.wanted)
            raise
        failed = min(failures, key=lambda f: self.wanted.index(f[0]), default=None)
        written: dict[str, Path] = {}
        for i, name in enumerate(self.wanted):
            if failed is not None and name == failed[0]:
                self._files.remove(self.wanted[i:])
                raise failed[1]
            path = self.out_dir / FORMATS[name][0]
            self._files.tmp(name).replace(path)
            written[name] = path
        return written

    def _render_here(
        self, name: str, failures: list[tuple[str, BaseException]], *, exclusive: bool
    ) -> bool:
        """Render ``name`` here unless the child has claimed it (False). A failure,
        creating the file or rendering, is added to ``failures``; the caller goes on, since
        without a child nobody else would render the other formats. Not ``exclusive``
        (there is no child), the file is this process's alone: one left over is
        overwritten."""
        try:
            fd = self._files.claim(name, exclusive=exclusive)
        except OSError as e:
            self.rendered_here.append(name)
            failures.append((name, e))
            return True
        if fd is None:
            return False
        self.rendered_here.append(name)
        try:
            _render_to(self.report, name, fd)
        except Exception as e:
            failures.append((name, e))
        return True

    def abort(self) -> None:
        """Stop rendering and remove the temporary files (the caller is failing)."""
        child, self._child = self._child, None
        if child is not None:
            child.kill()
        self._files.remove(self.wanted)


def _check_formats(formats: Iterable[str]) -> list[str]:
    wanted = list(dict.fromkeys(formats))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise ValueError(
            f"unknown report format(s): {', '.join(unknown)}; choose from {', '.join(FORMATS)}"
        )
    return wanted


def start_reports(report: Report, out_dir: Path, formats: Iterable[str]) -> PendingReports:
    """Begin writing ``report`` in each of ``formats`` into ``out_dir`` (created if missing).

    With :data:`PARALLEL`, a forked child starts rendering them now; call
    :meth:`PendingReports.finish` (or ``abort``) exactly once. An unknown format raises
    ``ValueError`` before anything is written.
    """
    wanted = _check_formats(formats)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return PendingReports(report, out_dir, wanted)


def write_reports(report: Report, out_dir: Path, formats: Iterable[str]) -> dict[str, Path]:
    """Render ``report`` in each of ``formats`` into ``out_dir`` (created if missing).

    Returns format name -> written path.  An unknown format raises ``ValueError`` before
    anything is written.  Each file is written to a temporary name and then renamed, so a
    reader never sees a half-written report.
    """
    return start_reports(report, out_dir, formats).finish()


__all__ = [
    "CHUNKED",
    "FORMATS",
    "ORDER",
    "PARALLEL",
    "PendingReports",
    "start_reports",
    "write_reports",
]
