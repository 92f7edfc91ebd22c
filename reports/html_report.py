"""``report.html``: one self-contained page for web editors (no external assets, no JS).

The view model is built here in Python; ``templates/report.html.j2`` only lays it out.
Sections: header (site, as-of date, completeness banner, counts), watched links,
by problem (grouped by check), by page.
"""

from __future__ import annotations

import http
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from checks.models import Check, Finding, LinkResult, Page, Report, Severity
from reports.jinja_env import get_env
from reports.json_report import age_days, ordered_findings, stale_pages

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

DETAIL_TEXTS: dict[str, str] = {
    "dns": "The domain name does not exist (DNS lookup failed).",
    "refused": "The server refused the connection.",
    "timeout": "The server did not answer in time.",
    "tls": "The secure connection failed (HTTPS certificate problem).",
    "connection": "The connection to the server failed.",
    "redirect_loop": "The link redirects in a loop.",
    "too_many_redirects": "The link goes through too many redirects.",
    "soft_404": "The page says it does not exist, although the server reports success.",
    "missing_fragment": "The page exists, but the anchor (#…) the link points to is missing.",
    "malformed_url": "The address is malformed.",
    "redirect_to_home": (
        "The link is redirected to the site's front page: the page it pointed to has moved "
        "or is gone."
    ),
    "not_a_pdf": "The server does not send a PDF file.",
    "redirected_to_html": "The PDF link redirects to an ordinary web page.",
}


def _http_phrase(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "unexpected answer"


def explain_detail(detail: str, check: Check | None = None) -> str:
    """A plain-English sentence for a detail code ("" when there is nothing to say)."""
    if detail in DETAIL_TEXTS:
        return DETAIL_TEXTS[detail]
    if detail.startswith("http_") and detail[5:].isdigit():
        code = int(detail[5:])
        if check is Check.REDIRECT:
            return f"The address has moved permanently (HTTP {code})."
        if check is Check.UNVERIFIED_LINK:
            return f"The website refused our automatic check ({code} {_http_phrase(code)})."
        if check is Check.MISSING_PDF:
            return f"The PDF is gone: the server answered {code} ({_http_phrase(code)})."
        return f"The server answered {code} ({_http_phrase(code)})."
    if check is Check.STALE_PAGE and detail.endswith("_days") and detail[:-5].isdigit():
        return f"Last reviewed {int(detail[:-5])} days ago."
    return ""


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


@dataclass(slots=True)
class WatchedGroup:
    target: str
    check: str
    label: str
    severity: str
    explanation: str
    new_url: str
    rows: list[Row] = field(default_factory=list)


@dataclass(slots=True)
class ProblemGroup:
    check: str
    heading: str
    intro: str
    rows: list[Row]


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
    # The checks' own sentence when there is one; the generic explanation otherwise.
    message = f.message or explanation
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
    )


def _watched_groups(rows: Sequence[Row]) -> list[WatchedGroup]:
    groups: dict[tuple[str, str], WatchedGroup] = {}
    for r in rows:
        if not r.watched:
            continue
        key = (r.target or r.page, r.check)
        group = groups.get(key)
        if group is None:
            group = groups[key] = WatchedGroup(
                target=r.target or r.page,
                check=r.check,
                label=r.label,
                severity=r.severity,
                explanation=r.explanation,
                new_url=r.new_url,
            )
        group.rows.append(r)
    return list(groups.values())


def build_context(report: Report) -> dict[str, object]:
    """Everything the template needs, in display order."""
    pages = {p.url: p for p in report.pages}
    # Only the links a redirect row needs: report.links may be read from disk, not held.
    targets = {f.target for f in report.findings if f.check is Check.REDIRECT}
    links = {link.url: link for link in report.links if link.url in targets}
    rows = [_row(f, pages, links, report) for f in ordered_findings(report.findings)]

    by_check: dict[str, list[Row]] = {check.value: [] for check in CHECK_SECTIONS}
    for r in rows:
        by_check[r.check].append(r)
    problem_groups = [
        ProblemGroup(check.value, heading, intro, by_check[check.value])
        for check, (heading, intro) in CHECK_SECTIONS.items()
    ]

    stale = stale_pages(report)
    views: dict[str, PageView] = {}

    def view_for(url: str) -> PageView:
        if url not in views:
            p = pages.get(url)
            views[url] = PageView(
                url=url,
                title=p.title if p else "",
                status=p.status if p else None,
                review_date=p.review_date.isoformat() if p and p.review_date else "",
                review_date_source=(p.review_date_source or "") if p else "",
                age_days=age_days(p, report.run.as_of) if p else None,
                stale=url in stale,
            )
        return views[url]

    for r in rows:  # pages appear in the order of their first (most important) finding
        view_for(r.page).rows.append(r)
    problem_pages = list(views.values())
    clean_urls = [p.url for p in report.pages if p.url not in views]
    clean_pages = [view_for(url) for url in clean_urls[:CLEAN_PAGES_LIMIT]]

    counts = report.counts()
    return {
        "run": report.run,
        "counts": counts,
        "total": sum(counts.values()),
        "severities": [s.value for s in Severity],
        "by_check": [(g.heading, g.check, len(g.rows)) for g in problem_groups],
        "watched_groups": _watched_groups(rows),
        "problem_groups": problem_groups,
        "problem_pages": problem_pages,
        "clean_pages": clean_pages,
        "clean_pages_more": max(len(clean_urls) - CLEAN_PAGES_LIMIT, 0),
        "reasons_limit": 20,
    }


#: How many problem-free pages are listed by name.
CLEAN_PAGES_LIMIT = 2000


def iter_html(report: Report) -> Iterator[str]:
    """``report.html`` in chunks (Jinja2 ``generate``), for writing as it renders."""
    return get_env().get_template("report.html.j2").generate(**build_context(report))


def render_html(report: Report) -> str:
    """The complete ``report.html`` document as a string."""
    return get_env().get_template("report.html.j2").render(**build_context(report))
