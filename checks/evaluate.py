"""Findings from crawled pages and link results: the audit's judgement.

Findings carry codes only (check, severity, detail); the words for them live in one catalog,
``reports.messages``, which the renderers use."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable

from checks.models import Check, Finding, LinkResult, Page, Severity, Verdict, stale_detail
from checks.policy import Policy
from checks.sitemap_checks import unlinked_findings


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
                    detail=stale_detail(age),
                )
            )
    return out


def link_finding(link: LinkResult) -> tuple[Check, str] | None:
    """The check and detail a link result calls for, if any."""
    if link.pdf_link and link.pdf_problem:
        return Check.MISSING_PDF, link.pdf_problem
    if link.verdict is Verdict.BROKEN:
        return Check.BROKEN_LINK, link.detail
    if link.verdict is Verdict.REDIRECT:
        return Check.REDIRECT, link.detail
    if link.verdict is Verdict.UNVERIFIED:
        return Check.UNVERIFIED_LINK, link.detail
    return None


def link_findings(links: Iterable[LinkResult], policy: Policy) -> list[Finding]:
    out: list[Finding] = []
    for link in links:
        judged = link_finding(link)
        if judged is None:
            continue
        check, detail = judged
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
