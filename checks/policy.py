"""What the checks need to know from configuration, as one frozen value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from checks.models import Check, Severity

DEFAULT_SEVERITIES: Mapping[Check, Severity] = {
    Check.STALE_PAGE: Severity.ERROR,
    Check.MISSING_REVIEW_DATE: Severity.WARNING,
    Check.BROKEN_LINK: Severity.ERROR,
    Check.REDIRECT: Severity.WARNING,
    Check.MISSING_PDF: Severity.ERROR,
    Check.UNVERIFIED_LINK: Severity.WARNING,
    Check.UNLINKED_PAGE: Severity.INFO,
}


@dataclass(frozen=True)
class Policy:
    max_age_days: int = 365
    #: URL prefix -> max age in days; the longest matching prefix wins.
    max_age_by_prefix: Mapping[str, int] = field(default_factory=dict)
    severities: Mapping[Check, Severity] = field(default_factory=lambda: dict(DEFAULT_SEVERITIES))
    #: URL prefixes or bare host names that editors care most about.
    watched: tuple[str, ...] = ()
    unverified_statuses: frozenset[int] = frozenset({401, 403, 429, 999})
    soft_404_phrases: tuple[str, ...] = ()
    #: Judge outside links redirected onto a front page as broken (``checks.soft_moved``).
    redirect_to_home: bool = True
    #: URL prefixes or bare host names whose redirects to a front page are accepted.
    redirect_to_home_ok: tuple[str, ...] = ()

    def max_age_for(self, url: str) -> int:
        best, best_len = self.max_age_days, -1
        for prefix, days in self.max_age_by_prefix.items():
            if url.startswith(prefix) and len(prefix) > best_len:
                best, best_len = days, len(prefix)
        return best

    def severity(self, check: Check) -> Severity:
        return self.severities.get(check, DEFAULT_SEVERITIES[check])

    def is_watched(self, url: str) -> bool:
        return _matches(url, self.watched)

    def home_redirect_allowed(self, url: str) -> bool:
        """Whether ``url`` may redirect to a front page (``links.redirect_to_home_ok``)."""
        return _matches(url, self.redirect_to_home_ok)


def _matches(url: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``url`` starts with a URL prefix of ``patterns`` or is on a host named there
    (or a subdomain of it)."""
    if not patterns:
        return False
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    for w in patterns:
        if "/" in w:
            if url.startswith(w):
                return True
        elif host == w.lower() or host.endswith("." + w.lower()):
            return True
    return False
