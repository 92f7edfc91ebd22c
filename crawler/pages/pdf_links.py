"""Links inside PDFs: the URI link annotations of a PDF, read with pypdf in a child process.

A PDF's links are its pages' ``/Annots`` entries with ``/Subtype /Link`` whose action
``/A`` is a URI action (``/S /URI``, the address in ``/URI``; relative to the document's
``/URI /Base`` when it has one). Named destinations and ``/GoTo`` actions stay inside the
document; ``/Launch`` (run a program or open a local file) and ``/GoToR`` (another file,
by file name) are ignored: neither names a web address. The link's text is the page text
drawn inside the annotation's rectangle, when pypdf finds some there.

Reading a PDF is done in a child process (``python -m crawler.pages.pdf_links``), never in the
audit process: a hostile or broken PDF can make a parser loop, recurse or allocate without
end, and a child can be killed. The child (:class:`PdfReader`, one per audit, started at
the first PDF) gets each body on stdin and answers with JSON on stdout, one PDF at a time;
it limits its own memory (``resource``), and the audit kills it when a PDF takes longer
than ``TIMEOUT`` seconds (a new child reads the next PDF). A child per PDF cost ~0.2 s of
CPU each (Python and pypdf starting), one for all of them costs that once.

What could not be read is a ``problem``: ``encrypted`` (a password other than the empty
one is needed), ``corrupt`` (pypdf could not parse it, or the child died: out of memory),
``timeout`` (no answer in time), ``too_big`` (the crawler stopped the download at
``links.pdf_max_bytes``: see ``crawler.pages.pdf_fetch``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crawler.app import processes

#: Seconds a PDF may take to read before its child process is killed.
TIMEOUT = 10.0
#: Seconds a child stopped for time gets between SIGTERM and SIGKILL.
KILL_GRACE = 1.0
#: Links read from one PDF at most (the rest are dropped; ``PdfReading.dropped``).
MAX_LINKS = 2000
#: Characters of link text kept.
MAX_TEXT = 200
#: The child's address space limit (bytes).
CHILD_MEMORY = 1_500_000_000

PROBLEMS = ("encrypted", "corrupt", "timeout", "too_big")


@dataclass(frozen=True, slots=True)
class PdfLink:
    """One URI link annotation: the 1-based page it is on, its address, its text."""

    page: int
    uri: str
    text: str = ""


@dataclass(frozen=True, slots=True)
class PdfReading:
    """What a PDF's annotations say: its links and base URI, or why it could not be read."""

    links: tuple[PdfLink, ...] = ()
    base: str = ""
    problem: str = ""
    dropped: int = 0


def extract_links(data: bytes) -> PdfReading:
    """The URI links of the PDF ``data`` (in this process: see :func:`read_pdf`)."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    return PdfReading(problem="encrypted")
            except Exception:  # an unsupported algorithm, a missing crypto library
                return PdfReading(problem="encrypted")
        base = _base_uri(reader)
        links: list[PdfLink] = []
        dropped = 0
        for number, page in enumerate(reader.pages, start=1):
            found = _page_links(page)
            if not found:
                continue
            texts = _texts_in(page, [rect for _, rect in found])
            for (uri, _), text in zip(found, texts, strict=True):
                if len(links) >= MAX_LINKS:
                    dropped += 1
                    continue
                links.append(PdfLink(number, uri, text))
        return PdfReading(tuple(links), base, dropped=dropped)
    except (PdfReadError, ValueError, TypeError, KeyError, AttributeError, IndexError) as e:
        if "decrypt" in str(e).lower() or "password" in str(e).lower():
            return PdfReading(problem="encrypted")
        return PdfReading(problem="corrupt")
    except (RecursionError, MemoryError, AssertionError, OSError, ArithmeticError):
        return PdfReading(problem="corrupt")


def _get(obj: Any, key: str) -> Any:
    """``obj[key]`` dereferenced, or None."""
    try:
        value = obj.get(key) if hasattr(obj, "get") else None
        return value.get_object() if value is not None else None
    except Exception:
        return None


def _base_uri(reader: Any) -> str:
    uri = _get(reader.trailer.get("/Root").get_object(), "/URI")
    base = _get(uri, "/Base") if uri is not None else None
    return _as_text(base)


def _as_text(value: Any) -> str:
    """A PDF string as text; anything else (a number, a name, an array) is no text."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, str) and not value.startswith("/"):  # a NameObject is a str too
        return str(value)
    return ""


def _page_links(page: Any) -> list[tuple[str, tuple[float, float, float, float] | None]]:
    """(URI, rectangle) of each URI link annotation on ``page``, in page order."""
    annots = _get(page, "/Annots")
    out: list[tuple[str, tuple[float, float, float, float] | None]] = []
    if not isinstance(annots, list):
        return out
    for ref in annots:
        try:
            annot = ref.get_object()
        except Exception:
            continue
        if _get(annot, "/Subtype") != "/Link":
            continue
        action = _get(annot, "/A")
        if action is None or _get(action, "/S") != "/URI":
            continue
        uri = _as_text(_get(action, "/URI")).strip()
        if uri:
            out.append((uri, _rect(_get(annot, "/Rect"))))
    return out


def _rect(value: Any) -> tuple[float, float, float, float] | None:
    try:
        x1, y1, x2, y2 = (float(v) for v in value)
    except Exception:
        return None
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def _texts_in(page: Any, rects: list[tuple[float, float, float, float] | None]) -> list[str]:
    """The text drawn inside each rectangle (text runs by their starting point)."""
    parts: list[list[str]] = [[] for _ in rects]

    def visit(text: str, cm: Any, tm: Any, font: Any, size: Any) -> None:
        if not text.strip():
            return
        x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        for i, r in enumerate(rects):
            if r is not None and r[0] - 1 <= x <= r[2] + 1 and r[1] - 1 <= y <= r[3] + 1:
                parts[i].append(text)

    with contextlib.suppress(Exception):
        page.extract_text(visitor_text=visit)
    return [" ".join("".join(p).split())[:MAX_TEXT] for p in parts]


# -- the child process -------------------------------------------------------------


def _limit_self() -> None:  # pragma: no cover - runs in the child
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))
    except (ImportError, ValueError, OSError):
        pass


def _answer(data: bytes) -> bytes:  # pragma: no cover - runs in the child
    try:
        reading = extract_links(data)
    except Exception:
        reading = PdfReading(problem="corrupt")
    out = {
        "links": [[x.page, x.uri, x.text] for x in reading.links],
        "base": reading.base,
        "problem": reading.problem,
        "dropped": reading.dropped,
    }
    return json.dumps(out).encode()


def main() -> None:  # pragma: no cover - runs in the child
    """Read PDFs from stdin, each as a 4-byte length and the body, until stdin closes;
    answer each on stdout as a 4-byte length and JSON."""
    _limit_self()
    sys.setrecursionlimit(5000)
    logging.disable(logging.WARNING)  # pypdf's warnings about broken files
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = stdin.read(_LEN.size)
        if len(head) < _LEN.size:
            return
        (n,) = _LEN.unpack(head)
        data = stdin.read(n)
        if len(data) < n:
            return
        out = _answer(data)
        stdout.write(_LEN.pack(len(out)) + out)
        stdout.flush()


_LEN = struct.Struct("!I")
_ROOT = str(Path(__file__).resolve().parent.parent)
#: The child's command line (``main`` of this module).
CHILD = [sys.executable, "-m", "crawler.pages.pdf_links"]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _ROOT + (os.pathsep + path if path else "")
    return env


class PdfReader:
    """One child process that reads PDFs one at a time (started on first use). A child
    that takes longer than ``timeout`` with a PDF is killed (``timeout``), one that dies
    has read a ``corrupt`` one; the next PDF starts a new child."""

    def __init__(self, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._lock: asyncio.Lock | None = None
        #: Children started (the first, and one after each killed or dead one).
        self.started = 0

    async def read(self, data: bytes) -> PdfReading:
        """The links of the PDF ``data``."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            try:
                proc = await self._child()
            except OSError:
                return PdfReading(problem="corrupt")
            try:
                out = await asyncio.wait_for(self._ask(proc, data), self.timeout)
            except TimeoutError:
                await self._kill()
                return PdfReading(problem="timeout")
            except (OSError, asyncio.IncompleteReadError, ValueError):
                await self._kill()
                return PdfReading(problem="corrupt")
            except asyncio.CancelledError:
                await self._kill()
                raise
        return _decode(out)

    async def _child(self) -> asyncio.subprocess.Process:
        if self._proc is None or self._proc.returncode is not None:
            self._proc = await processes.spawn_async(CHILD, env=_child_env())
            self.started += 1
        return self._proc

    @staticmethod
    async def _ask(proc: asyncio.subprocess.Process, data: bytes) -> bytes:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(_LEN.pack(len(data)) + data)
        await proc.stdin.drain()
        (n,) = _LEN.unpack(await proc.stdout.readexactly(_LEN.size))
        return await proc.stdout.readexactly(n)

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            await processes.stop_async(proc, KILL_GRACE)

    def close(self) -> None:
        """Stop the child (it exits when its stdin closes; killed if it is busy)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        processes.kill_async(proc)
        # Reaped by asyncio's child watcher; the pipes close with the transport.
        transport = getattr(proc, "_transport", None)
        if transport is not None:
            transport.close()


async def read_pdf(data: bytes, timeout: float = TIMEOUT) -> PdfReading:
    """The links of the PDF ``data``, read in a child process of its own."""
    reader = PdfReader(timeout)
    try:
        return await reader.read(data)
    finally:
        await reader._kill()


def _decode(out: bytes) -> PdfReading:
    """The child's answer; a child that died (memory, CPU limit) read a corrupt PDF."""
    try:
        got = json.loads(out)
        links = tuple(PdfLink(int(p), str(u), str(x)) for p, u, x in got["links"])
        return PdfReading(links, str(got["base"]), str(got["problem"]), int(got["dropped"]))
    except (ValueError, KeyError, TypeError):
        return PdfReading(problem="corrupt")


if __name__ == "__main__":  # pragma: no cover
    main()
