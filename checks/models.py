"""Plain data shared by the crawler, the checks and every renderer.

Everything here is immutable and free of Scrapy, Jinja2 and smtplib: the crawler
fills these in, ``checks`` turns them into findings, ``reports`` renders them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    """How much a finding matters; ordered error > warning > info."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 3, "warning": 2, "info": 1}[self.value]


class Verdict(StrEnum):
    """The closed set of outcomes for one checked link (see docs/report-format.md)."""

    OK = "ok"
    BROKEN = "broken"
    REDIRECT = "redirect"
    UNVERIFIED = "unverified"
    SKIPPED = "skipped"


class Check(StrEnum):
    """The closed set of checks a finding can come from."""

    STALE_PAGE = "stale_page"
    MISSING_REVIEW_DATE = "missing_review_date"
    BROKEN_LINK = "broken_link"
    REDIRECT = "redirect"
    MISSING_PDF = "missing_pdf"
    UNVERIFIED_LINK = "unverified_link"
    UNLINKED_PAGE = "unlinked_page"


#: Details a ``broken`` verdict can carry, besides ``http_<status>``.
BROKEN_DETAILS = frozenset(
    {
        "dns",
        "refused",
        "timeout",
        "tls",
        "connection",
        "redirect_loop",
        "too_many_redirects",
        "soft_404",
        "missing_fragment",
        "malformed_url",
        "redirect_to_home",
    }
)
#: Details a ``skipped`` verdict can carry.
SKIPPED_DETAILS = frozenset(
    {"mailto", "tel", "javascript", "data", "scheme", "excluded", "robots", "limit"}
)
#: Details a ``redirect`` verdict can carry, besides ``http_<status>`` of the first hop.
REDIRECT_DETAILS = frozenset({"meta_refresh"})
#: Details of the ``missing_pdf`` check, besides ``http_<status>``.
PDF_DETAILS = frozenset({"not_a_pdf", "redirected_to_html"})


@dataclass(frozen=True, slots=True)
class LinkRef:
    """One place a link target is referred to: the page and the link's text."""

    page: str
    text: str
    tag: str = "a"


@dataclass(frozen=True, slots=True)
class Page:
    """One crawled, in-scope page."""

    url: str
    status: int | None
    title: str = ""
    final_url: str = ""
    content_type: str = ""
    depth: int = 0
    review_date: dt.date | None = None
    review_date_source: str | None = None
    is_html: bool = True
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RedirectHop:
    url: str
    status: int


@dataclass(frozen=True, slots=True)
class LinkResult:
    """The verdict on one unique link target (URL including any #fragment)."""

    url: str
    verdict: Verdict
    detail: str = ""
    status: int | None = None
    final_url: str = ""
    redirect_chain: tuple[RedirectHop, ...] = ()
    content_type: str = ""
    #: Every place the link is found; a tuple, or a lazy sequence from the crawler
    #: (``crawler.crawl_state.SpilledRefs``, equal to the tuple of the same items).
    found_on: Sequence[LinkRef] = ()
    #: True when the link is a PDF link (by URL, link text or served type).
    pdf_link: bool = False
    #: For PDF links: None when not sniffed, else whether the body began with %PDF-.
    pdf_magic: bool | None = None
    #: Whether the link points into a watched target (config ``links.watched``).
    watched: bool = False
    #: True when the target lies inside the crawl scope.
    internal: bool = False
    #: For PDF links: the ``missing_pdf`` detail, empty when the PDF is real.
    pdf_problem: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem to tell somebody about."""

    check: Check
    severity: Severity
    page: str
    target: str = ""
    detail: str = ""
    message: str = ""
    link_text: str = ""
    watched: bool = False
    #: For ``redirect`` findings: where the link now leads (the address to change it to).
    new_url: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """Stable identity across runs: (check, page, target)."""
        return (self.check.value, self.page, self.target)


@dataclass(frozen=True, slots=True)
class RunInfo:
    started_at: dt.datetime
    finished_at: dt.datetime
    as_of: dt.date
    start_urls: tuple[str, ...]
    scopes: tuple[str, ...]
    complete: bool
    pages_crawled: int
    links_checked: int
    stats: dict[str, object] = field(default_factory=dict)
    site: str = ""
    #: Why the run is incomplete, if it is (e.g. "max_pages reached").
    incomplete_reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    """A whole audit: what every renderer consumes."""

    run: RunInfo
    pages: tuple[Page, ...]
    #: A tuple, or (from an audit) a lazy sequence made again from the crawl's temporary
    #: reference file each time it is iterated (``crawler.crawl_state.Links``, equal to
    #: the tuple of the same results): iterate it, rather than index it.
    links: Sequence[LinkResult]
    findings: tuple[Finding, ...]

    def counts(self) -> dict[str, int]:
        """Findings per severity, every severity present."""
        out = {s.value: 0 for s in Severity}
        for f in self.findings:
            out[f.severity.value] += 1
        return out
