"""Soft-moved links: an outside link whose redirects end on the site's front page.

"The page moved, the link lands on the home page": the server answers 200 in the end,
but the content the link promised is gone. :func:`lands_on_home` says whether a redirect
chain looks like that; :func:`soft_moved` turns an ``ok``/``redirect`` verdict of such a
link into ``broken`` / ``redirect_to_home`` (docs/report-format.md, "Soft-moved links").

Only links outside the crawl scope are judged (``LinkResult.internal`` false): a section's
own redirects are the editors' to arrange.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from checks.models import Detail, RedirectHop, Verdict
from checks.policy import Policy

DETAIL = Detail.REDIRECT_TO_HOME
#: A last path segment that names a directory's default page, not a page of its own.
_INDEX_NAMES = ("index.", "default.", "start.")


def path_depth(url: str) -> int:
    """Path segments of ``url``, ignoring an index file name: ``/`` 0, ``/en/`` 1,
    ``/en/index.html`` 1, ``/a/b/c.html`` 3. -1 for a URL that cannot be split."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return -1
    segments = [s for s in path.split("/") if s]
    if segments and segments[-1].lower().startswith(_INDEX_NAMES):
        segments.pop()
    return len(segments)


def lands_on_home(url: str, chain: tuple[RedirectHop, ...], final_url: str) -> bool:
    """Whether the link to ``url`` was redirected (``chain``) onto a root or landing page:
    the final path has at most one segment, and it or a hop on the way (``/a/b`` -> ``/``
    -> ``/sv/``) has fewer segments than the original's."""
    if not chain or not final_url:
        return False
    start, end = path_depth(url), path_depth(final_url)
    if not 0 <= end <= 1:
        return False
    least = min((path_depth(h.url) for h in chain[1:]), default=end)
    return min(end, least) < start


def soft_moved(
    verdict: Verdict,
    detail: str,
    *,
    url: str,
    chain: tuple[RedirectHop, ...],
    final_url: str,
    internal: bool,
    policy: Policy,
) -> tuple[Verdict, str]:
    """The verdict and detail after the soft-moved rule (unchanged when it does not apply)."""
    if (
        internal
        or verdict not in (Verdict.OK, Verdict.REDIRECT)
        or not policy.redirect_to_home
        or not lands_on_home(url, chain, final_url)
        or policy.home_redirect_allowed(url)
    ):
        return verdict, detail
    return Verdict.BROKEN, DETAIL
