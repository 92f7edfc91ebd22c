"""Links inside PDFs: the URI link annotations of a PDF, read with pypdf in a child process.

A PDF's links are its pages' ``/Annots`` entries with ``/Subtype /Link`` whose action
``/A`` is a URI action (``/S /URI``, the address in ``/URI``; relative to the document's
``/URI /Base`` when it has one). Named destinations and ``/GoTo`` actions stay inside the
document; ``/Launch`` (run a program or open a local file) and ``/GoToR`` (another file,
by file name) are ignored: neither names a web address. The link's text is the page text
drawn inside the annotation's rectangle, when pypdf finds some there.

Reading a PDF is done in a child process (``python -m crawler.pdf_links``), never in the
audit process: a hostile or broken PDF can make a parser loop, recurse or allocate without
end, and a child can be killed. It gets the body on stdin and answers with JSON on stdout;
it limits its own memory and CPU time (``resource``), and the audit kills it after
``TIMEOUT`` seconds (:func:`read_pdf`). What could not be read is a ``problem``:
``encrypted`` (a password other than the empty one is needed), ``corrupt`` (pypdf could not
parse it), ``timeout`` (no answer in time), ``too_big`` (the crawler stopped the download
at ``links.pdf_max_bytes``: see ``crawler.pdf_fetch``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Seconds a PDF may take to read before its child process is killed.
TIMEOUT = 10.0
#: Links read from one PDF at most (the rest are dropped; ``PdfReading.dropped``).
MAX_LINKS = 2000
#: Characters of link text kept.
MAX_TEXT = 200
#: The child's address space limit (bytes) and CPU seconds.
CHILD_MEMORY = 1_500_000_000
CHILD_CPU = int(TIMEOUT) + 2
#: PDFs read at the same time (one child each).
CONCURRENT = 2

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
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


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
        resource.setrlimit(resource.RLIMIT_CPU, (CHILD_CPU, CHILD_CPU))
    except (ImportError, ValueError, OSError):
        pass


def main() -> None:  # pragma: no cover - runs in the child
    _limit_self()
    sys.setrecursionlimit(5000)
    data = sys.stdin.buffer.read()
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
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()


_ROOT = str(Path(__file__).resolve().parent.parent)
#: The child's command line (``main`` of this module).
CHILD = [sys.executable, "-m", "crawler.pdf_links"]
_gate: asyncio.Semaphore | None = None


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _ROOT + (os.pathsep + path if path else "")
    return env


async def read_pdf(data: bytes, timeout: float = TIMEOUT) -> PdfReading:
    """The links of the PDF ``data``, read in a child process killed after ``timeout``."""
    global _gate
    if _gate is None:
        _gate = asyncio.Semaphore(CONCURRENT)
    async with _gate:
        try:
            proc = await asyncio.create_subprocess_exec(
                *CHILD,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                env=_child_env(),
            )
        except OSError:
            return PdfReading(problem="corrupt")
        try:
            out, _ = await asyncio.wait_for(proc.communicate(data), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            return PdfReading(problem="timeout")
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise
    return _decode(out)


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
