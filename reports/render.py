"""The report formats: format name -> file name, renderer, encoding (:data:`FORMATS`),
and :func:`render_to`, which writes one format of a report to a file.

Each format has its own module; every renderer consumes only :class:`checks.models.Report`.
The renderer modules are imported when first used (the formats that need Jinja2, HTML and
Markdown, cost ~0.12 s to import and compile). Writing the files of an audit (temporary
names, renaming, sharing the formats with a forked child) is the crawler's:
``crawler.app.report_writer``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

from checks.models import Report
from reports.csv_report import ENCODING as CSV_ENCODING

#: Formats that need Jinja2 (the other formats are rendered without importing it).
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


def render_to(report: Report, name: str, fd: int) -> None:
    """Write format ``name`` of ``report`` to the open file ``fd`` (closed here), chunk by
    chunk where the format allows (a big site's report is never held whole in memory)."""
    _file_name, render, encoding = FORMATS[name]
    # newline="" keeps the renderers' own line endings (CSV uses CRLF by RFC 4180).
    with open(fd, "w", encoding=encoding, newline="") as fh:
        chunked = CHUNKED.get(name)
        chunks: Iterable[str] = chunked(report) if chunked else (render(report),)
        for chunk in chunks:
            fh.write(chunk)


def render_bytes(report: Report, name: str) -> bytes:
    """Format ``name`` of ``report``, as its file holds it."""
    _file_name, render, encoding = FORMATS[name]
    return render(report).encode(encoding)


def check_formats(formats: Iterable[str]) -> list[str]:
    """``formats`` without repeats; ValueError naming any unknown one."""
    wanted = list(dict.fromkeys(formats))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise ValueError(
            f"unknown report format(s): {', '.join(unknown)}; choose from {', '.join(FORMATS)}"
        )
    return wanted


__all__ = ["CHUNKED", "FORMATS", "JINJA_FORMATS", "check_formats", "render_bytes", "render_to"]
