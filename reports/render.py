"""Entry point for writing reports: :func:`write_reports`, or :func:`start_reports` +
:meth:`PendingReports.finish` to do other work (the history write) while they render.

Each format has its own module; this one maps format names to renderers and file names
and writes the files.  Every renderer consumes only :class:`checks.models.Report`.

The formats that need Jinja2 (HTML and Markdown), JUnit XML and CSV (:data:`CHILD_FORMATS`) are
rendered in a forked child process while this process renders the others (and, in
``sitewatch audit``, stores the run in the history), so an audit's reports take about half
the wall time on a machine with two cores. :data:`PARALLEL` = False renders every format
here, one after the other. Either way each file is written to a temporary name and renamed
in the order the formats were asked for; a failed format (in either process) removes its
temporary file and those of the formats after it, and raises the same exception as
rendering here would.
The renderer modules are imported when first used, so the process that runs the audit
never imports Jinja2 when the child renders HTML and Markdown.
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

#: Render :data:`CHILD_FORMATS` in a forked child process (where ``os.fork`` exists).
PARALLEL = True
#: Formats the child renders: the ones that need Jinja2 (its import, the template's
#: compilation and the HTML rendering are about half of all report work), and JUnit XML
#: and CSV, which even out the two processes' shares (this one also stores the run: on
#: the PostgreSQL manual ~0.25 s, then JSON ~0.16 s, against ~0.42 s for the child's).
CHILD_FORMATS = ("html", "md", "junit", "csv")
#: The child's share when this process has little else to do (a replayed run's history
#: write copies its rows in SQL): JUnit XML then renders here.
LIGHT_CHILD_FORMATS = ("html", "md")

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


def _tmp(out_dir: Path, name: str) -> Path:
    return out_dir / f".{FORMATS[name][0]}.tmp"


def _render_to_tmp(report: Report, out_dir: Path, name: str) -> None:
    """Write format ``name`` to its temporary file (removed again if rendering fails)."""
    _file_name, render, encoding = FORMATS[name]
    tmp = _tmp(out_dir, name)
    chunked = CHUNKED.get(name)
    chunks: Iterable[str] = chunked(report) if chunked else (render(report),)
    try:
        # newline="" keeps the renderers' own line endings (CSV uses CRLF by RFC 4180).
        with open(tmp, "w", encoding=encoding, newline="") as fh:
            for chunk in chunks:
                fh.write(chunk)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _Child:
    """A forked process rendering some formats to their temporary files."""

    def __init__(self, report: Report, out_dir: Path, names: list[str]) -> None:
        self.names = names
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
            _child_main(report, out_dir, names, write_fd)
        os.close(write_fd)
        self.pid = pid
        self._read_fd: int | None = read_fd

    def wait(self) -> tuple[str, BaseException] | None:
        """Reap the child: None when every format was written, else (format, exception)."""
        data = b""
        if self._read_fd is not None:
            with open(self._read_fd, "rb") as pipe:  # closes the descriptor
                self._read_fd = None
                data = pipe.read()
        _, status = os.waitpid(self.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code == 0 and not data:
            return None
        if data:
            try:
                name, exc = pickle.loads(data)
                if isinstance(name, str) and isinstance(exc, BaseException):
                    return name, exc
            except Exception:  # reported below as a child that stopped
                pass
        what = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        failed = OSError(
            f"{' and '.join(FORMATS[n][0] for n in self.names)}: "
            f"the process rendering it stopped ({what})"
        )
        return self.names[0], failed

    def kill(self) -> None:
        """Stop and reap the child (this process is failing)."""
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            self.wait()


def _child_main(
    report: Report, out_dir: Path, names: list[str], write_fd: int
) -> None:  # pragma: no cover - runs in the child
    code = 0
    try:
        # Ctrl-C reaches the whole process group: the parent stops this child itself.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for name in names:
            try:
                _render_to_tmp(report, out_dir, name)
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
    except Exception:
        data = b""
    if not data or len(data) > _MAX_ERROR_BYTES:
        data = pickle.dumps((name, RuntimeError(f"{type(exc).__name__}: {exc}"[:10_000])))
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class PendingReports:
    """Reports being written: :meth:`finish` renders the rest, waits and renames."""

    def __init__(
        self,
        report: Report,
        out_dir: Path,
        wanted: list[str],
        child_formats: Iterable[str] = CHILD_FORMATS,
    ) -> None:
        self.report = report
        self.out_dir = out_dir
        self.wanted = wanted
        self._child: _Child | None = None
        share = set(child_formats)
        forked = [n for n in wanted if n in share]
        if PARALLEL and forked and hasattr(os, "fork"):
            with contextlib.suppress(OSError):  # no fork: everything is rendered here
                self._child = _Child(report, out_dir, forked)

    def finish(self) -> dict[str, Path]:
        """Render this process's formats, wait for the child, rename every file in order.

        Returns format name -> written path.  Raises what a failed format raised (the
        formats before it in the asked-for order are written; its temporary file and those
        of the formats after it are removed).
        """
        child, self._child = self._child, None
        here = [n for n in self.wanted if child is None or n not in child.names]
        failed: tuple[str, BaseException] | None = None
        try:
            for name in here:
                try:
                    _render_to_tmp(self.report, self.out_dir, name)
                except Exception as e:
                    failed = (name, e)
                    break
        except BaseException:
            if child is not None:
                child.kill()
            self._remove_tmp(self.wanted)
            raise
        if child is not None:
            try:
                child_failed = child.wait()
            except BaseException:
                child.kill()
                self._remove_tmp(self.wanted)
                raise
            if child_failed is not None and (
                failed is None or self.wanted.index(child_failed[0]) < self.wanted.index(failed[0])
            ):
                failed = child_failed
        written: dict[str, Path] = {}
        for i, name in enumerate(self.wanted):
            if failed is not None and name == failed[0]:
                self._remove_tmp(self.wanted[i:])
                raise failed[1]
            path = self.out_dir / FORMATS[name][0]
            _tmp(self.out_dir, name).replace(path)
            written[name] = path
        return written

    def abort(self) -> None:
        """Stop rendering and remove the temporary files (the caller is failing)."""
        child, self._child = self._child, None
        if child is not None:
            child.kill()
        self._remove_tmp(self.wanted)

    def _remove_tmp(self, names: Iterable[str]) -> None:
        for name in names:
            with contextlib.suppress(OSError):
                _tmp(self.out_dir, name).unlink(missing_ok=True)


def _check_formats(formats: Iterable[str]) -> list[str]:
    wanted = list(dict.fromkeys(formats))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise ValueError(
            f"unknown report format(s): {', '.join(unknown)}; choose from {', '.join(FORMATS)}"
        )
    return wanted


def start_reports(
    report: Report,
    out_dir: Path,
    formats: Iterable[str],
    child_formats: Iterable[str] = CHILD_FORMATS,
) -> PendingReports:
    """Begin writing ``report`` in each of ``formats`` into ``out_dir`` (created if missing).

    With :data:`PARALLEL`, the ``child_formats`` among them (default
    :data:`CHILD_FORMATS`) start rendering in a forked child now; call
    :meth:`PendingReports.finish` (or ``abort``) exactly once. An unknown format raises
    ``ValueError`` before anything is written.
    """
    wanted = _check_formats(formats)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return PendingReports(report, out_dir, wanted, child_formats)


def write_reports(report: Report, out_dir: Path, formats: Iterable[str]) -> dict[str, Path]:
    """Render ``report`` in each of ``formats`` into ``out_dir`` (created if missing).

    Returns format name -> written path.  An unknown format raises ``ValueError`` before
    anything is written.  Each file is written to a temporary name and then renamed, so a
    reader never sees a half-written report.
    """
    return start_reports(report, out_dir, formats).finish()


__all__ = [
    "CHILD_FORMATS",
    "CHUNKED",
    "FORMATS",
    "LIGHT_CHILD_FORMATS",
    "PARALLEL",
    "PendingReports",
    "start_reports",
    "write_reports",
]
