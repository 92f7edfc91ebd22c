"""``report.html``: one self-contained page for web editors (no external assets, no JS).

The view model is built here in Python; ``templates/report.html.j2`` only lays it out.
Sections: header (site, as-of date, completeness banner, counts), watched links,
by problem (grouped by check), by page.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from checks.groups import LINK_CHECKS, Group, group_findings, target_key
from checks.models import Check, Finding, LinkResult, Page, Report, Severity
from reports.jinja_env import get_env
from reports.json_report import age_days, ordered_findings, stale_pages
from reports.messages import explain_detail, finding_message

#: "By problem" section order and wording (plain English for non-technical editors).
CHECK_SECTIONS: dict[Check, tuple[str, str]] = {
    Check.BROKEN_LINK: (
        "Broken links",
        "These links lead nowhere. Correct the address or remove the link.",
    ),
    Check.MISSING_PDF: (
        "Missing PDFs",
        "These links promise a PDF document, but no PDF is delivered.",
    ),
    Check.STALE_PAGE: (
        "Stale pages",
        "These pages have not been reviewed within the allowed time. "
        "Check the content and update the review date.",
    ),
    Check.REDIRECT: (
        "Redirects to update",
        "These links still work, but go through a redirect. "
        "Replace the old address with the new one.",
    ),
    Check.UNVERIFIED_LINK: (
        "Unverified links",
        "The other website refused our automatic check. Please open these links yourself.",
    ),
    Check.MISSING_REVIEW_DATE: (
        "Missing review dates",
        "These pages show no review date, so their freshness cannot be checked.",
    ),
    Check.UNLINKED_PAGE: (
        "Pages not linked from the section",
        "These pages are listed in the sitemap, but no page of the section links to them. "
        "Link them where visitors look for them, or remove them if they are not needed.",
    ),
}

#: Short label per check, used in tables.
CHECK_LABELS: dict[Check, str] = {
    Check.BROKEN_LINK: "Broken link",
    Check.MISSING_PDF: "Missing PDF",
    Check.STALE_PAGE: "Stale page",
    Check.REDIRECT: "Redirect",
    Check.UNVERIFIED_LINK: "Unverified link",
    Check.MISSING_REVIEW_DATE: "Missing review date",
    Check.UNLINKED_PAGE: "Not linked from the section",
}


@dataclass(slots=True)
class Row:
    """One finding, ready for display."""

    check: str
    label: str
    severity: str
    page: str
    page_title: str
    target: str
    link_text: str
    detail: str
    explanation: str
    message: str
    watched: bool
    new_url: str = ""
    review_date: str = ""
    review_date_source: str = ""
    age_days: int | None = None
    #: In "By page": how many links on the page lead to the row's resource.
    links: int = 1
    #: An editor's decision in force ("dismissed by Karin: reason"), from the workspace.
    decided: str = ""


@dataclass(slots=True)
class ProblemGroup:
    """One check's section in "By problem": its problems (groups), capped."""

    check: str
    heading: str
    intro: str
    rows: list[GroupView]
    #: Findings (links or pages) of the check, all groups together.
    findings: int = 0
    #: Groups not shown (past :data:`SECTION_LIMIT`).
    more: int = 0


@dataclass(slots=True)
class PageView:
    url: str
    title: str
    status: int | None
    review_date: str
    review_date_source: str
    age_days: int | None
    stale: bool
    rows: list[Row] = field(default_factory=list)


def _new_url(link: LinkResult | None) -> str:
    if link is None:
        return ""
    if link.final_url and link.final_url != link.url:
        return link.final_url
    return link.redirect_chain[-1].url if link.redirect_chain else ""


def _row(f: Finding, pages: dict[str, Page], links: dict[str, LinkResult], report: Report) -> Row:
    page = pages.get(f.page)
    explanation = explain_detail(f.detail, f.check)
    # The catalog's sentence (reports.messages); the checks give codes only.
    message = finding_message(f) or explanation
    return Row(
        check=f.check.value,
        label=CHECK_LABELS[f.check],
        severity=f.severity.value,
        page=f.page,
        page_title=page.title if page else "",
        target=f.target,
        link_text=f.link_text,
        detail=f.detail,
        explanation=explanation,
        message=message,
        watched=f.watched,
        new_url=_new_url(links.get(f.target)) if f.check is Check.REDIRECT else "",
        review_date=page.review_date.isoformat() if page and page.review_date else "",
        review_date_source=(page.review_date_source or "") if page else "",
        age_days=age_days(page, report.run.as_of) if page else None,
        decided=decided_text(report, f),
    )


_KIND_WORDS = {"acknowledge": "Acknowledged", "dismiss": "Not a problem", "snooze": "Snoozed"}


def decided_text(report: Report, f: Finding) -> str:
    """The decision an editor made in the workspace about ``f`` (``run.stats["decisions"]``:
    ``[check, page, target, kind, by, reason, until]`` lists, recorded by the audit)."""
    decisions = report.run.stats.get("decisions")
    if not decisions or not isinstance(decisions, list):
        return ""
    for d in decisions:
        if isinstance(d, list) and len(d) == 7 and tuple(d[:3]) == f.key:
            kind, by, reason, until = d[3:]
            words = f"{_KIND_WORDS.get(str(kind), str(kind))} ({by}"
            words += f", until {str(until)[:10]})" if until else ")"
            return f"{words}: {reason}" if reason else words
    return ""


#: Example places (page and link text) shown per problem; the rest is counted ("… and N
#: more") and listed in full in report.json and report.csv.
EXAMPLE_PLACES = 20
#: Problems (groups) shown per check in "By problem"; the rest is counted.
SECTION_LIMIT = 1000
#: Pages with problems shown in "By page" (most important first); the rest is counted.
PROBLEM_PAGES_LIMIT = 1000
#: How many problem-free pages are listed by name.
CLEAN_PAGES_LIMIT = 2000


@dataclass(slots=True)
class GroupView:
    """One problem: a check on one resource, with a capped list of the places that link it."""

    check: str
    label: str
    severity: str
    watched: bool
    #: The resource (target without #fragment; the full target for missing_fragment).
    target: str
    #: Distinct link addresses (e.g. #fragments) that lead to it.
    targets: int
    detail: str
    explanation: str
    message: str
    new_url: str
    links: int
    pages: int
    #: The first :data:`EXAMPLE_PLACES` places, as rows.
    rows: list[Row]
    #: Places not shown.
    more: int
    #: An editor's decision on every place of the problem (see ``Row.decided``).
    decided: str = ""


def _group_view(
    g: Group, pages: dict[str, Page], links: dict[str, LinkResult], report: Report
) -> GroupView:
    first = g.first
    rows = [_row(f, pages, links, report) for f in g.findings[:EXAMPLE_PLACES]]
    explanation = explain_detail(g.detail, g.check)
    new_url = rows[0].new_url if g.check is Check.REDIRECT else ""
    if new_url and g.targets > 1:
        new_url = target_key(new_url)
    return GroupView(
        check=g.check.value,
        label=CHECK_LABELS[g.check],
        severity=g.severity.value,
        watched=g.watched,
        target=g.key if g.check in LINK_CHECKS else "",
        targets=g.targets,
        detail=g.detail,
        explanation=explanation,
        message=finding_message(first) or explanation,
        new_url=new_url,
        links=g.links,
        pages=g.pages,
        rows=rows,
        more=max(g.links - len(rows), 0),
        decided=rows[0].decided
        if rows and all(r.decided for r in rows) and not g.links > len(rows)
        else "",
    )


def _page_rows(
    findings: list[Finding], pages: dict[str, Page], links: dict[str, LinkResult], report: Report
) -> list[Row]:
    """One row per problem on one page (links to one missing resource make one row)."""
    out = []
    for g in group_findings(findings):
        row = _row(g.first, pages, links, report)
        if g.links > 1:
            row.target = g.key
            row.links = g.links
        out.append(row)
    return out


def build_context(report: Report) -> dict[str, object]:
    """Everything the template needs, in display order."""
    pages = {p.url: p for p in report.pages}
    # Only the links a redirect row needs: report.links may be read from disk, not held.
    targets = {f.target for f in report.findings if f.check is Check.REDIRECT}
    links = {link.url: link for link in report.links if link.url in targets}
    ordered = ordered_findings(report.findings)
    groups = group_findings(ordered)

    by_check: dict[str, list[Group]] = {check.value: [] for check in CHECK_SECTIONS}
    for g in groups:
        by_check[g.check.value].append(g)
    problem_groups = [
        ProblemGroup(
            check.value,
            heading,
            intro,
            [_group_view(g, pages, links, report) for g in by_check[check.value][:SECTION_LIMIT]],
            findings=sum(g.links for g in by_check[check.value]),
            more=max(len(by_check[check.value]) - SECTION_LIMIT, 0),
        )
        for check, (heading, intro) in CHECK_SECTIONS.items()
    ]
    watched_groups = [_group_view(g, pages, links, report) for g in groups if g.watched]

    stale = stale_pages(report)
    by_page: dict[str, list[Finding]] = {}
    for f in ordered:  # pages appear in the order of their first (most important) finding
        by_page.setdefault(f.page, []).append(f)

    def view_for(url: str) -> PageView:
        p = pages.get(url)
        return PageView(
            url=url,
            title=p.title if p else "",
            status=p.status if p else None,
            review_date=p.review_date.isoformat() if p and p.review_date else "",
            review_date_source=(p.review_date_source or "") if p else "",
            age_days=age_days(p, report.run.as_of) if p else None,
            stale=url in stale,
        )

    problem_pages = []
    for url, found in list(by_page.items())[:PROBLEM_PAGES_LIMIT]:
        view = view_for(url)
        view.rows = _page_rows(found, pages, links, report)
        problem_pages.append(view)
    clean_urls = [p.url for p in report.pages if p.url not in by_page]
    clean_pages = [view_for(url) for url in clean_urls[:CLEAN_PAGES_LIMIT]]

    counts = report.counts()
    return {
        "run": report.run,
        "counts": counts,
        "total": sum(counts.values()),
        "severities": [s.value for s in Severity],
        "by_check": [
            (g.heading, g.check, len(by_check[g.check]), g.findings) for g in problem_groups
        ],
        "watched_groups": watched_groups,
        "problem_groups": problem_groups,
        "problem_pages": problem_pages,
        "problem_pages_more": max(len(by_page) - PROBLEM_PAGES_LIMIT, 0),
        "clean_pages": clean_pages,
        "clean_pages_more": max(len(clean_urls) - CLEAN_PAGES_LIMIT, 0),
        "reasons_limit": 20,
    }


def iter_html(report: Report) -> Iterator[str]:
    """``report.html`` in chunks (Jinja2 ``generate``), for writing as it renders."""
    return get_env().get_template("report.html.j2").generate(**build_context(report))


def render_html(report: Report) -> str:
    """The complete ``report.html`` document as a string."""
    return get_env().get_template("report.html.j2").render(**build_context(report))
