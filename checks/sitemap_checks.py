"""What a sitemap adds to the audit: a weak review date, and pages nobody links to.

* :func:`with_lastmod` -- a sitemap ``<lastmod>`` is the review date of a page that shows
  none of its own (visible text, ``<time>``, JSON-LD, ``<meta>``: ``checks.freshness``),
  and wins over the HTTP ``Last-Modified`` header, which CMSs often set to the render time.
  Its source is :data:`SITEMAP_LASTMOD`.
* :func:`unlinked_findings` -- an ``unlinked_page`` finding (info by default) for every
  page the crawl reached only through a sitemap: no link from the section leads to it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from checks.freshness import ReviewDate
from checks.models import Check, DateSource, Detail, Finding, Page, http_detail
from checks.policy import Policy

SITEMAP_LASTMOD = DateSource.SITEMAP_LASTMOD
#: The one source a sitemap date outranks.
WEAKER_SOURCES = frozenset({DateSource.HTTP_LAST_MODIFIED})


def with_lastmod(review: ReviewDate | None, lastmod: dt.date | None) -> ReviewDate | None:
    """``review``, or the sitemap's ``lastmod`` when the page has no date of its own."""
    if lastmod is None:
        return review
    if review is None or review.source in WEAKER_SOURCES:
        return ReviewDate(lastmod, SITEMAP_LASTMOD)
    return review


def unlinked_findings(urls: Iterable[str], pages: Iterable[Page], policy: Policy) -> list[Finding]:
    """One finding per page reached only through a sitemap (``urls``), with the page's
    HTTP problem as detail (``http_404``, ``timeout`` ...) when it did not answer well."""
    wanted = set(urls)
    if not wanted:
        return []
    severity = policy.severity(Check.UNLINKED_PAGE)
    out: list[Finding] = []
    for page in pages:
        if page.url not in wanted:
            continue
        wanted.discard(page.url)
        detail = ""
        if page.error and page.error != Detail.SOFT_404:
            detail = page.error
        elif page.status is not None and page.status >= 400:
            detail = http_detail(page.status)
        out.append(Finding(Check.UNLINKED_PAGE, severity, page.url, detail=detail))
    return out
