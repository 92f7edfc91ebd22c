"""``report.csv``: one row per finding, for spreadsheets.

UTF-8 with a byte-order mark so Excel shows åäö; cells that a spreadsheet would run as a
formula get a leading apostrophe; cells are cut to fit Excel's 32,767-character limit.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from checks.models import Report
from reports.json_report import clean_unicode, ordered_findings
from reports.messages import finding_message

COLUMNS = (
    "severity",
    "check",
    "page",
    "page_title",
    "target",
    "link_text",
    "detail",
    "message",
    "watched",
)
#: Encoding to write ``report.csv`` with (UTF-8 with BOM).
ENCODING = "utf-8-sig"
#: Excel stops at 32,767 characters per cell; stay clearly below it.
MAX_CELL = 32_000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """Neutralise spreadsheet formulas (leading ``= + - @``, tab, CR) and cut huge cells."""
    text = clean_unicode(value)
    if len(text) > MAX_CELL:
        text = text[: MAX_CELL - 1] + "…"
    if text.startswith(_FORMULA_START):
        text = "'" + text
    return text


def render_csv(report: Report) -> str:
    """The CSV text (without BOM; the encoding in `reports.render.FORMATS` adds it)."""
    return "".join(iter_csv(report))


def iter_csv(report: Report, rows_per_chunk: int = 500) -> Iterator[str]:
    """The CSV text in chunks of ``rows_per_chunk`` rows, for writing as it goes."""
    titles = {p.url: p.title for p in report.pages}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for i, f in enumerate(ordered_findings(report.findings), 1):
        if i % rows_per_chunk == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
        writer.writerow(
            [
                f.severity.value,
                f.check.value,
                safe_cell(f.page),
                safe_cell(titles.get(f.page, "")),
                safe_cell(f.target),
                safe_cell(f.link_text),
                safe_cell(f.detail),
                safe_cell(finding_message(f)),
                "yes" if f.watched else "no",
            ]
        )
    yield buf.getvalue()
