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


class Detail(StrEnum):
    """The closed set of detail codes of a link verdict or finding (besides the pattern
    ``http_<status>``: see :func:`http_detail` and :func:`http_status`). A StrEnum, so a
    member equals (and serialises as) its string: report.json values stay plain strings."""

    # broken
    DNS = "dns"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    TLS = "tls"
    CONNECTION = "connection"
    REDIRECT_LOOP = "redirect_loop"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    SOFT_404 = "soft_404"
    MISSING_FRAGMENT = "missing_fragment"
    MALFORMED_URL = "malformed_url"
    REDIRECT_TO_HOME = "redirect_to_home"
    # skipped
    MAILTO = "mailto"
    TEL = "tel"
    JAVASCRIPT = "javascript"
    DATA = "data"
    SCHEME = "scheme"
    EXCLUDED = "excluded"
    ROBOTS = "robots"
    LIMIT = "limit"
    # redirect
    META_REFRESH = "meta_refresh"
    # missing_pdf
    NOT_A_PDF = "not_a_pdf"
    REDIRECTED_TO_HTML = "redirected_to_html"


#: The prefix of the one open-ended detail pattern, ``http_<status>`` (``http_404``).
HTTP_PREFIX = "http_"


def http_detail(status: int) -> str:
    """The detail code for an HTTP status: ``http_404``."""
    return f"{HTTP_PREFIX}{status}"


def http_status(detail: str) -> int | None:
    """The status in an ``http_<status>`` detail (three digits), else None."""
    rest = detail.removeprefix(HTTP_PREFIX)
    if rest is detail or len(rest) != 3 or not rest.isdigit():
        return None
    return int(rest)


def stale_detail(age_days: int) -> str:
    """The detail code of a ``stale_page`` finding: ``<age>_days``."""
    return f"{age_days}_days"


def stale_age(detail: str) -> int | None:
    """The age in a ``<age>_days`` detail, else None."""
    age = detail.removesuffix("_days")
    return int(age) if age != detail and age.isdigit() else None


#: Details a ``broken`` verdict can carry, besides ``http_<status>``.
BROKEN_DETAILS = frozenset(
    {
        Detail.DNS,
        Detail.REFUSED,
        Detail.TIMEOUT,
        Detail.TLS,
        Detail.CONNECTION,
        Detail.REDIRECT_LOOP,
        Detail.TOO_MANY_REDIRECTS,
        Detail.SOFT_404,
        Detail.MISSING_FRAGMENT,
        Detail.MALFORMED_URL,
        Detail.REDIRECT_TO_HOME,
    }
)
#: Details a ``skipped`` verdict can carry.
SKIPPED_DETAILS = frozenset(
    {
        Detail.MAILTO,
        Detail.TEL,
        Detail.JAVASCRIPT,
        Detail.DATA,
        Detail.SCHEME,
        Detail.EXCLUDED,
        Detail.ROBOTS,
        Detail.LIMIT,
    }
)
#: Details a ``redirect`` verdict can carry, besides ``http_<status>`` of the first hop.
REDIRECT_DETAILS = frozenset({Detail.META_REFRESH})
#: Details of the ``missing_pdf`` check, besides ``http_<status>``.
PDF_DETAILS = frozenset({Detail.NOT_A_PDF, Detail.REDIRECTED_TO_HTML})


class DateSource(StrEnum):
    """Where a page's review date was read from, strongest first (``checks.freshness``,
    ``checks.sitemap_checks``); the ``review_date_source`` of report.json."""

    TEXT = "text"
    TIME = "time"
    JSON_LD = "json-ld"
    META_ARTICLE_MODIFIED = "meta:article:modified_time"
    META_OG_UPDATED = "meta:og:updated_time"
    META_DCTERMS_MODIFIED = "meta:dcterms.modified"
    META_GOVUK_UPDATED = "meta:govuk:updated-at"
    SITEMAP_LASTMOD = "sitemap:lastmod"
    HTTP_LAST_MODIFIED = "http:last-modified"


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
