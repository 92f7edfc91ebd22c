"""Findings from crawled pages and link results: the audit's judgement."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable

from checks.models import Check, Finding, LinkResult, Page, Severity, Verdict
from checks.policy import Policy
from checks.sitemap_checks import unlinked_findings

_PDF_WORDS = {
    "not_a_pdf": "the link promises a PDF but the server sends something else",
    "redirected_to_html": "the PDF link now leads to a web page instead of a PDF",
}


def sort_key(f: Finding) -> tuple[int, int, str, str, str]:
    """Watched targets first, then errors before warnings before info, then by page."""
    return (0 if f.watched else 1, -f.severity.rank, f.page, f.check.value, f.target)


def page_age_days(page: Page, as_of: dt.date) -> int | None:
    if page.review_date is None:
        return None
    return (as_of - page.review_date).days


def freshness_findings(pages: Iterable[Page], policy: Policy, as_of: dt.date) -> list[Finding]:
    out: list[Finding] = []
    for page in pages:
        if not page.is_html or page.status != 200 or page.error:
            continue
        if page.review_date is None:
            out.append(
                Finding(
                    Check.MISSING_REVIEW_DATE,
                    policy.severity(Check.MISSING_REVIEW_DATE),
                    page.url,
                    message="No review date found on the page.",
                )
            )
            continue
        age = (as_of - page.review_date).days
        limit = policy.max_age_for(page.url)
        if age > limit:
            out.append(
                Finding(
                    Check.STALE_PAGE,
                    policy.severity(Check.STALE_PAGE),
                    page.url,
                    detail=f"{age}_days",
                    message=(
                        f"Last reviewed {page.review_date.isoformat()} ({age} days ago; "
                        f"the limit is {limit} days)."
                    ),
                )
            )
    return out


def link_finding(link: LinkResult) -> tuple[Check, str, str] | None:
    """The check, detail and message a link result calls for, if any."""
    if link.pdf_link and link.pdf_problem:
        d = link.pdf_problem
        words = _PDF_WORDS.get(d) or f"the PDF is gone (HTTP {d.removeprefix('http_')})"
        return Check.MISSING_PDF, d, f"Missing PDF: {words}."
    if link.verdict is Verdict.BROKEN:
        return Check.BROKEN_LINK, link.detail, f"Broken link ({describe_detail(link.detail)})."
    if link.verdict is Verdict.REDIRECT:
        moved = (
            "leads to a page that refreshes to"
            if link.detail == "meta_refresh"
            else "has moved permanently; update it to"
        )
        return Check.REDIRECT, link.detail, f"The link {moved} {link.final_url}"
    if link.verdict is Verdict.UNVERIFIED:
        return (
            Check.UNVERIFIED_LINK,
            link.detail,
            f"Could not verify the link: the site refused the check ({link.detail}).",
        )
    return None


def describe_detail(detail: str) -> str:
    """Plain English for a broken-link detail."""
    if detail.startswith("http_"):
        return f"the server answered HTTP {detail[5:]}"
    return {
        "dns": "the host name does not exist",
        "refused": "the server refused the connection",
        "timeout": "the server did not answer in time",
        "tls": "the secure connection failed (certificate or TLS error)",
        "connection": "the connection failed",
        "redirect_loop": "the link redirects in a loop",
        "too_many_redirects": "the link redirects too many times",
        "soft_404": "the page says it cannot be found",
        "missing_fragment": "the #anchor does not exist on the target page",
        "malformed_url": "the address is malformed",
        "redirect_to_home": "the link now leads to the site's front page; the page has moved",
    }.get(detail, detail)


def link_findings(links: Iterable[LinkResult], policy: Policy) -> list[Finding]:
    out: list[Finding] = []
    for link in links:
        judged = link_finding(link)
        if judged is None:
            continue
        check, detail, message = judged
        severity = Severity.ERROR if link.watched else policy.severity(check)
        seen: set[str] = set()
        for ref in link.found_on:
            if ref.page in seen:
                continue
            seen.add(ref.page)
            out.append(
                Finding(
                    check,
                    severity,
                    ref.page,
                    target=link.url,
                    detail=detail,
                    message=message,
                    link_text=ref.text,
                    watched=link.watched,
                    new_url=link.final_url if check is Check.REDIRECT else "",
                )
            )
    return out


def evaluate(
    pages: Iterable[Page],
    links: Iterable[LinkResult],
    policy: Policy,
    as_of: dt.date,
    unlinked: Collection[str] = (),
) -> tuple[Finding, ...]:
    """All findings of one audit, in report order (``unlinked``: the pages reached only
    through a sitemap, ``checks.sitemap_checks``)."""
    if unlinked:
        pages = list(pages)
    found = freshness_findings(pages, policy, as_of) + link_findings(links, policy)
    if unlinked:
        found += unlinked_findings(unlinked, pages, policy)
    return tuple(sorted(found, key=sort_key))


def at_or_above(
    findings: Iterable[Finding], level: Severity | None, checks: frozenset[Check]
) -> list[Finding]:
    """Findings that make the audit fail (``--fail-on``)."""
    return [
        f
        for f in findings
        if (level is not None and f.severity.rank >= level.rank) or f.check in checks
    ]
