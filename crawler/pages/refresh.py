"""The crawl's side of ``<meta http-equiv="refresh">`` (parsed by ``checks.refresh``).

A page whose refresh comes within ``crawl.max_refresh_delay`` seconds is a redirect to a
visitor: the spider follows it as it follows a 3xx, with a hop of status
:data:`~checks.refresh.REFRESH_STATUS` (0) in the chain, and the page itself is neither
recorded nor read for links (nobody sees it). A start URL's refresh target is crawled even
outside the start URL's directory (on the same host): its directory joins the scope, as a
visitor lands there (a javadoc root's ``index.html`` refreshing to ``api/index.html``, a
municipality's ``/x/index.html`` to ``/y/``). A slower refresh shows the page first: the
page is crawled, its refresh target checked as one of its links (tag ``meta``) but not
crawled from it, and links to the page are judged ``redirect``/``meta_refresh``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from crawler.pages.urls import Resolved, directory_of, resolve

if TYPE_CHECKING:
    from crawler.pages.extract import ParsedPage
    from crawler.state.crawl_state import CrawlState

#: The tag and text a refresh target is recorded with as a link of its page.
REFRESH_TAG = "meta"
REFRESH_TEXT = '<meta http-equiv="refresh">'


def refresh_target(page: ParsedPage, page_url: str) -> Resolved | None:
    """Where ``page``'s meta refresh leads (joined to its base URL); None when it has
    none, reloads the page itself or leads to no fetchable URL (``mailto:``, ...)."""
    refresh = page.refresh
    if refresh is None or not refresh[1]:
        return None
    nxt = resolve(page.base_url or page_url, refresh[1])
    if nxt.skip is not None or nxt.base == resolve(page_url, "").base:
        return None
    return nxt


def is_redirect(page: ParsedPage, max_delay: int) -> bool:
    """Whether the refresh comes quickly enough to be followed like a redirect."""
    return page.refresh is not None and page.refresh[0] <= max_delay


def target_url(nxt: Resolved) -> str:
    return nxt.base if nxt.fragment is None else f"{nxt.base}#{nxt.fragment}"


def widen_scope(state: CrawlState, start_url: str, url: str) -> None:
    """A start URL refreshes to ``url``: crawl ``url``'s directory too, if on its host."""
    a, b = urlsplit(start_url), urlsplit(url)
    if (a.scheme, a.netloc) == (b.scheme, b.netloc) and not state.in_scope(url):
        state.add_scope(directory_of(url))


def dead_end_note(state: CrawlState) -> str | None:
    """A note when the crawl read no page beyond its start URLs although it was free to
    (no limit stopped it): a start page that only refreshes away, slowly or to another
    site, or links to nothing in scope. The run is not failed for it, but it says so."""
    starts = set(state.settings.start_urls)
    if any(p.url not in starts for p in state.pages) or state.not_crawled:
        return None
    return (
        f"only the start page(s) were crawled ({len(state.pages)} page(s)): "
        "they lead to no other page in scope (check the start URL and scope)"
    )
