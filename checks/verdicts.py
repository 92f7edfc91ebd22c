"""Turn what the crawler observed about one resource into a link verdict.

The crawler fills in a :class:`Probe` (status, error, redirect chain, anchors seen,
first bytes); :func:`judge` maps it onto the closed :class:`~checks.models.Verdict` set.
"""

from __future__ import annotations

from dataclasses import dataclass

from checks.fragments import fragment_found
from checks.models import Detail, RedirectHop, Verdict, http_detail
from checks.policy import Policy

PERMANENT_REDIRECTS = frozenset({301, 308})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Failures worth retrying before a verdict (and treated as flaky by history).
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 522, 524})
TRANSIENT_ERRORS = frozenset({Detail.TIMEOUT, Detail.REFUSED, Detail.CONNECTION})

PDF_MAGIC = b"%PDF-"
HTML_TYPES = ("text/html", "application/xhtml+xml")


def is_html_type(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in HTML_TYPES


def is_pdf_type(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/pdf"


@dataclass(frozen=True, slots=True)
class Probe:
    """Everything the crawler learnt about one URL (without fragment)."""

    url: str
    status: int | None = None
    #: A network-level failure: dns, refused, timeout, tls, connection,
    #: redirect_loop, too_many_redirects, malformed_url.
    error: str | None = None
    final_url: str = ""
    chain: tuple[RedirectHop, ...] = ()
    content_type: str = ""
    #: The final page matched a soft-404 phrase.
    soft_404: bool = False
    #: Anchors (id and a/@name) on the final page, when its body was parsed.
    ids: frozenset[str] | None = None
    #: First bytes of the body when they were read (PDF sniffing).
    head_bytes: bytes | None = None
    method: str = "GET"
    #: Where the final page's meta refresh sends the visitor after a delay longer than
    #: ``crawl.max_refresh_delay`` (quicker ones are followed: hops in ``chain``).
    refresh_to: str = ""


def judge(probe: Probe, fragment: str | None, policy: Policy) -> tuple[Verdict, str]:
    """The verdict and detail for a link to ``probe.url`` (+ ``#fragment``)."""
    if probe.error:
        return Verdict.BROKEN, probe.error
    status = probe.status
    if status is None:
        return Verdict.BROKEN, Detail.CONNECTION
    if status in policy.unverified_statuses:
        return Verdict.UNVERIFIED, http_detail(status)
    if status >= 400:
        return Verdict.BROKEN, http_detail(status)
    if status in REDIRECT_STATUSES:
        # A redirect without a usable Location, left unfollowed.
        return Verdict.BROKEN, http_detail(status)
    if probe.soft_404:
        return Verdict.BROKEN, Detail.SOFT_404
    if (
        fragment
        and probe.ids is not None
        and is_html_type(probe.content_type)
        and not fragment_found(fragment, probe.ids)
    ):
        return Verdict.BROKEN, Detail.MISSING_FRAGMENT
    new_url = permanent_target(probe.chain, probe.final_url)
    if new_url:
        return Verdict.REDIRECT, http_detail(probe.chain[0].status)
    if probe.refresh_to:
        return Verdict.REDIRECT, Detail.META_REFRESH
    return Verdict.OK, ""


def permanent_target(chain: tuple[RedirectHop, ...], final_url: str) -> str:
    """Where a link should point instead, when its chain starts with permanent hops.

    Follows consecutive 301/308 hops from the start; a later temporary hop means the
    permanent target is the URL it left from. Empty when the first hop is temporary.
    """
    if not chain or chain[0].status not in PERMANENT_REDIRECTS:
        return ""
    for i, hop in enumerate(chain):
        if hop.status not in PERMANENT_REDIRECTS:
            return chain[i].url
    return final_url


def pdf_problem(probe: Probe) -> str | None:
    """The ``missing_pdf`` detail for a PDF link, or None when the PDF is real."""
    if probe.error or probe.status is None:
        return None  # reported as a broken link instead
    if probe.status >= 400:
        return http_detail(probe.status)
    if probe.head_bytes is not None:
        if probe.head_bytes.startswith(PDF_MAGIC):
            return None
        if probe.chain and is_html_type(probe.content_type):
            return Detail.REDIRECTED_TO_HTML
        return Detail.NOT_A_PDF
    # Not sniffed (e.g. HEAD only): judge by type.
    if is_html_type(probe.content_type):
        return Detail.REDIRECTED_TO_HTML if probe.chain else Detail.NOT_A_PDF
    return None
