"""``summary.md``: a short Markdown summary for ``$GITHUB_STEP_SUMMARY`` and chat.

A heading, the completeness state, a counts table and the top problems (at most
:data:`MAX_ROWS` rows, one per problem: findings grouped by ``checks.groups``, so links to
one missing page make one row with their count).  Every cell is cleaned and cut by
:func:`reports.jinja_env.display_text` and then escaped for GitHub-flavoured Markdown, so
page content can neither break the table nor inject HTML, links or images.  The result
is always under :data:`MAX_BYTES`.
"""

from __future__ import annotations

from checks.groups import LINK_CHECKS, Group, group_findings
from checks.models import Check, Report, Severity
from reports.jinja_env import display_text, format_datetime
from reports.json_report import ordered_findings

MAX_ROWS = 50
#: GitHub rejects step summaries over 1 MiB; stay well below.
MAX_BYTES = 1024 * 1024 - 1
CELL_LIMIT = 200

_MD_ESCAPES = {
    "\\": "\\\\",
    "|": "\\|",
    "`": "\\`",
    "*": "\\*",
    "[": "\\[",
    "]": "\\]",
    "<": "&lt;",
    ">": "&gt;",
}
_MD_TABLE = str.maketrans(_MD_ESCAPES)


def md_cell(value: object, limit: int = CELL_LIMIT) -> str:
    """Text safe inside a GFM table cell: one line, cut, ``| ` * [ ] < > \\`` escaped."""
    return display_text(value, limit).translate(_MD_TABLE)


def render_markdown(report: Report) -> str:
    """The ``summary.md`` text."""
    run = report.run
    counts = report.counts()
    site = run.site or (run.start_urls[0] if run.start_urls else "unnamed site")
    lines = [
        f"# sitewatch report: {md_cell(site, 120)}",
        "",
        f"As of **{run.as_of.isoformat()}** · {run.pages_crawled} pages crawled · "
        f"{run.links_checked} links checked · run {format_datetime(run.started_at)} "
        f"to {format_datetime(run.finished_at)}",
        "",
    ]
    if run.complete:
        lines += ["The audit ran to completion.", ""]
    else:
        lines.append(
            "> ⚠️ **This audit is incomplete**: some pages or links were not checked, "
            "so problems may be missing."
        )
        for reason in run.incomplete_reasons[:10]:
            lines.append(f"> - {md_cell(reason)}")
        if len(run.incomplete_reasons) > 10:
            lines.append(f"> - … and {len(run.incomplete_reasons) - 10} more")
        lines.append("")

    lines += ["| Severity | Findings |", "| --- | ---: |"]
    lines += [f"| {s.value} | {counts[s.value]} |" for s in Severity]
    lines.append(f"| **total** | **{sum(counts.values())}** |")
    lines.append("")

    by_check = {c: 0 for c in Check}
    for f in report.findings:
        by_check[f.check] += 1
    lines += ["| Check | Findings |", "| --- | ---: |"]
    lines += [f"| {c.value} | {n} |" for c, n in by_check.items()]
    lines.append("")

    groups = group_findings(ordered_findings(report.findings))
    if groups:
        lines += [
            "## Top problems",
            "",
            "One row per problem: links to one missing page or PDF count once, however many "
            "pages or #anchors they come from.",
            "",
            "| Severity | Check | Target | Detail | On page | Link text |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        lines += [_group_row(g) for g in groups[:MAX_ROWS]]
        if len(groups) > MAX_ROWS:
            rest = groups[MAX_ROWS:]
            findings = sum(g.links for g in rest)
            lines += [
                "",
                f"… and {len(rest)} more problems ({findings} more findings; see report.html).",
            ]
        lines.append("")
    else:
        lines += ["No problems found.", ""]

    text = "\n".join(lines)
    return _cap(text)


def _group_row(g: Group) -> str:
    """One problem as a table row: the resource, and where it is linked from."""
    f = g.first
    severity = g.severity.value + (" ★ watched" if g.watched else "")
    target = g.key if g.check in LINK_CHECKS else ""
    if g.links == 1:
        where = md_cell(f.page)
    else:
        pages = "page" if g.pages == 1 else "pages"
        where = f"{g.links} times from {g.pages} {pages}, e.g. {md_cell(f.page)}"
    return (
        f"| {severity} | {g.check.value} | {md_cell(target)} | {md_cell(g.detail, 60)} "
        f"| {where} | {md_cell(f.link_text, 100)} |"
    )


def _cap(text: str) -> str:
    """Belt and braces: never exceed MAX_BYTES, cutting at a line boundary."""
    if len(text.encode("utf-8")) <= MAX_BYTES:
        return text
    note = "\n\n… summary cut to stay under 1 MiB (see report.html).\n"
    budget = MAX_BYTES - len(note.encode("utf-8"))
    cut = text.encode("utf-8")[:budget].decode("utf-8", "ignore")
    return cut[: cut.rfind("\n")] + note
