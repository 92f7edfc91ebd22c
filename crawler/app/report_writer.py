"""Writing an audit's report files: :func:`write_reports`, or :func:`start_reports` +
:meth:`PendingReports.finish` to do other work (the history write) while they render.

With :data:`PARALLEL`, a forked child (``crawler.app.processes.fork``) starts rendering at
once, while this process does its other work (in ``sitewatch audit``: storing the run in
the history) and then renders too. The two share the formats as they go: the child takes
them from the front of :data:`ORDER` (HTML first), this process from the back (JSON
first), each claiming a format by creating its temporary file (``O_EXCL``; the files are
named after this process), until they meet. So how the work is split follows the site's
size and how long the history write takes, and the two finish close together.
:data:`PARALLEL` = False renders every format here, one after the other. Either way each
file is written to a temporary name and renamed in the order the formats were asked for;
a failed format (in either process, creating its file or rendering it) removes its
temporary file and those of the formats after it, and raises the same exception as
rendering here would.
The formats that need Jinja2 (``reports.render.JINJA_FORMATS``) are left to the child
while it runs, so the process that runs the audit does not import Jinja2 unless the child
stopped early. The renderers themselves are ``reports.render``'s: pure, no processes.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Iterable
from pathlib import Path

from checks.models import Report
from crawler.app import processes
from reports.render import FORMATS, JINJA_FORMATS, check_formats, render_to

#: Render in a forked child process too (where ``os.fork`` exists).
PARALLEL = True
#: The order the formats are shared in: the child takes them from the front, this process
#: from the back. The two biggest are at the ends (HTML, which needs Jinja2, for the child;
#: JSON for this process, which starts after the history write), the small ones in the
#: middle, where the two meet.
ORDER = ("html", "md", "junit", "csv", "json")
#: Longest exception a child sends back for a failed format (pickled).
_MAX_ERROR_BYTES = 50_000

__all__ = ["JINJA_FORMATS", "ORDER", "PARALLEL", "PendingReports", "start_reports", "write_reports"]


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
                gone = int(pid) != self.tag and not processes.alive(int(pid))
            else:
                continue
            if gone:
                with contextlib.suppress(OSError):
                    path.unlink()


class FormatFailed(Exception):
    """Sent back by the report child: format ``args[0]`` failed with ``args[1]``."""


def _child_share(report: Report, files: _Files, order: list[str]) -> None:  # pragma: no cover
    """The report child: render the formats of ``order`` from the front, as long as it can
    claim them. A failure ends it with :class:`FormatFailed` (exit status 1)."""
    for name in order:
        try:
            fd = files.claim(name)
            if fd is None:
                return  # the parent has come this far from the back
            render_to(report, name, fd)
        except BaseException as e:
            raise FormatFailed(name, _portable(e)) from None


def _portable(exc: BaseException) -> BaseException:  # pragma: no cover - runs in the child
    """``exc`` if the parent can have it back as it is (it pickles, is made again from its
    pickle and is small), else a RuntimeError with its type and text."""
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
        if len(data) <= _MAX_ERROR_BYTES:
            return exc
    except Exception:
        pass
    return RuntimeError(f"{type(exc).__name__}: {exc}"[:10_000])


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
        self._child: processes.Forked | None = None
        if PARALLEL and wanted:  # no fork: everything is rendered here
            files, order = self._files, self._order
            self._child = processes.fork(lambda sock: _child_share(report, files, order))
            if self._child is not None:
                self._child.sock.close()  # nothing to say: the files are the channel

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
                ended = child.wait()
                assert ended is not None
                # What nobody has taken (the child stopped early) is rendered here.
                for name in self._order:
                    if name not in self.rendered_here:
                        self._render_here(name, failures, exclusive=True)
                failures.extend(self._child_failure(ended))
        except BaseException:
            if child is not None:
                child.kill()
            self._files.remove(self.wanted)
            raise
        return self._rename(failures)

    def _child_failure(self, ended: processes.Ended) -> list[tuple[str, BaseException]]:
        """The format the child failed, with its exception; or, for a child that stopped
        (killed, say), an OSError on the first format left to it."""
        error = ended.error
        if isinstance(error, FormatFailed) and len(error.args) == 2:
            name, exc = error.args
            if name in FORMATS and isinstance(exc, BaseException):
                return [(name, exc)]
        if ended.code == 0:
            return []
        theirs = [n for n in self.wanted if n not in self.rendered_here]
        if not theirs:
            return []
        code = ended.code
        what = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        stopped = OSError(
            f"{' and '.join(FORMATS[n][0] for n in theirs)}: "
            f"the process rendering it stopped ({what})"
        )
        return [(theirs[0], stopped)]

    def _rename(self, failures: list[tuple[str, BaseException]]) -> dict[str, Path]:
        """Rename the files in the asked-for order, up to the first failed format."""
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
            render_to(self.report, name, fd)
        except Exception as e:
            failures.append((name, e))
        return True

    def abort(self) -> None:
        """Stop rendering and remove the temporary files (the caller is failing)."""
        child, self._child = self._child, None
        if child is not None:
            child.kill()
        self._files.remove(self.wanted)


def start_reports(report: Report, out_dir: Path, formats: Iterable[str]) -> PendingReports:
    """Begin writing ``report`` in each of ``formats`` into ``out_dir`` (created if missing).

    With :data:`PARALLEL`, a forked child starts rendering them now; call
    :meth:`PendingReports.finish` (or ``abort``) exactly once. An unknown format raises
    ``ValueError`` before anything is written.
    """
    wanted = check_formats(formats)
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
