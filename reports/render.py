"""Entry point for writing reports: :func:`write_reports`.

Each format has its own module; this one maps format names to renderers and file names
and writes the files.  Every renderer consumes only :class:`checks.models.Report`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from checks.models import Report
from reports.csv_report import ENCODING as CSV_ENCODING
from reports.csv_report import iter_csv, render_csv
from reports.html_report import iter_html, render_html
from reports.json_report import iter_json, render_json, report_to_dict
from reports.junit_report import iter_junit, render_junit
from reports.markdown_report import render_markdown

#: Format name -> (file name, renderer, encoding).
FORMATS: dict[str, tuple[str, Callable[[Report], str], str]] = {
    "html": ("report.html", render_html, "utf-8"),
    "json": ("report.json", render_json, "utf-8"),
    "csv": ("report.csv", render_csv, CSV_ENCODING),
    "junit": ("junit.xml", render_junit, "utf-8"),
    "md": ("summary.md", render_markdown, "utf-8"),
}

#: Formats written chunk by chunk as they render (same text as the renderer above), so a
#: big site's report is never held whole in memory.
CHUNKED: dict[str, Callable[[Report], Iterable[str]]] = {
    "html": iter_html,
    "json": iter_json,
    "csv": iter_csv,
    "junit": iter_junit,
}


def write_reports(report: Report, out_dir: Path, formats: Iterable[str]) -> dict[str, Path]:
    """Render ``report`` in each of ``formats`` into ``out_dir`` (created if missing).

    Returns format name -> written path.  An unknown format raises ``ValueError`` before
    anything is written.  Each file is written to a temporary name and then renamed, so a
    reader never sees a half-written report.
    """
    wanted = list(dict.fromkeys(formats))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise ValueError(
            f"unknown report format(s): {', '.join(unknown)}; choose from {', '.join(FORMATS)}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name in wanted:
        file_name, render, encoding = FORMATS[name]
        path = out_dir / file_name
        tmp = path.with_name(f".{file_name}.tmp")
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
        tmp.replace(path)
        written[name] = path
    return written


__all__ = [
    "CHUNKED",
    "FORMATS",
    "render_csv",
    "render_html",
    "render_json",
    "render_junit",
    "render_markdown",
    "report_to_dict",
    "write_reports",
]
