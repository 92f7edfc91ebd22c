"""A re-run of an unchanged site, answered from the last run without a crawl.

The weekly re-run of a site that did not change costs mostly what surrounds the crawl
(Scrapy's start-up, replaying every stored page through the spider). When the site's
previous run was complete and made with the same settings, this module asks the server
whether anything changed, with one pass of bare requests (the small client of
``crawler.http.client``; the stored rows in a forked ``PendingRevalidation``, the targets to
confirm here with ``revalidate.confirm_targets``):

* every stored in-scope URL conditionally (``If-None-Match``/``If-Modified-Since``): it
  must answer 304;
* every target the crawl would check again (anything that answered an error status, each
  redirect hop that no stored row covers, watched targets, and outside targets whose
  cached verdict has aged past ``links.cache_max_age``) once more, without following
  redirects: it must give the same status and lead to the same place; an outside target
  the crawl asks with HEAD (no #fragment, no PDF) must also send the same content type.

If every answer is as before, the previous run's pages and links are the answer (read
back from the history, ``Store.snapshot``) and the findings are judged again for the new
``--as-of``. Anything else (one page answered 200, a link now answers differently, an
error with no status, an outside page whose body matters, a newer partial run) and the
audit crawls as usual, reusing the pass's 304s. ``history.replay = false`` turns this off.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from checks.models import LinkResult, Page, Verdict
from checks.policy import Policy
from checks.refresh import REFRESH_STATUS
from checks.soft_moved import DETAIL as SOFT_MOVED
from crawler.config import Config
from crawler.rerun.fetch_cache import FetchCache
from crawler.rerun.revalidate import Confirm, PassSettings, confirm_targets

#: Bump when what a run stores for replay changes meaning.
#: 3: fragments matched as browsers do, meta refresh followed, stylesheet references,
#: <object>, <track> ... read (issue 16): runs stored before are not replayed.
REPLAY_VERSION = 3
_PERMANENT = (301, 308)


def replay_key(cfg: Config) -> str:
    """The settings a run's pages and links depend on (not how fast it asks)."""
    crawl = dataclasses.replace(
        cfg.crawl, concurrency=0, per_host_concurrency=0, parse_workers="auto"
    )
    blob = repr((REPLAY_VERSION, cfg.site, crawl, cfg.links, cfg.effective_scopes()))
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class Plan:
    """What must hold for run ``source``'s pages and links to stand for this run."""

    source: int
    pages: tuple[Page, ...]
    links: tuple[LinkResult, ...]
    links_checked: int
    #: In-scope URLs that must answer 304 (in any probe mode stored for them).
    fresh: frozenset[str]
    #: Targets to ask again (URL -> what they must answer).
    confirms: tuple[Confirm, ...]


class NotReplayable(Exception):
    """The previous run cannot stand for this one; the audit crawls."""


def plan(
    source: int,
    pages: tuple[Page, ...],
    links: tuple[LinkResult, ...],
    links_checked: int,
    *,
    in_scope: Iterable[str],
    cache: FetchCache,
    policy: Policy,
) -> Plan:
    """What to ask the server before reusing run ``source``; raises NotReplayable."""
    planner = _Planner(tuple(in_scope), cache, policy)
    fragmented = {link.url.partition("#")[0] for link in links if "#" in link.url}
    seen: set[str] = set()
    for link in links:
        base = link.url.partition("#")[0]
        if base in seen or link.verdict is Verdict.SKIPPED:
            continue
        seen.add(base)
        planner.link(link, base, base in fragmented)
    fresh, confirms = planner.fresh, planner.confirms
    for page in pages:
        if page.status is None:
            raise NotReplayable(f"{page.url}: {page.error or 'no answer'}")
        if page.url not in seen and page.url not in fresh and page.url not in confirms:
            planner.final_answer(page.url, page.status, "", None)
    return Plan(
        source=source,
        pages=pages,
        links=links,
        links_checked=links_checked,
        fresh=frozenset(fresh),
        confirms=tuple(confirms.values()),
    )


class _Planner:
    """The plan being made: the URLs that must answer 304, the targets to confirm."""

    def __init__(self, scopes: tuple[str, ...], cache: FetchCache, policy: Policy) -> None:
        self.scopes = scopes
        self.cache = cache
        self.policy = policy
        self.fresh: set[str] = set()
        self.confirms: dict[str, Confirm] = {}

    def scoped(self, url: str) -> bool:
        return any(url.startswith(s) for s in self.scopes)

    def confirm(self, url: str, status: int, location: str = "", **kw: Any) -> None:
        c = Confirm(url, status, location, page=self.scoped(url), **kw)
        if self.confirms.setdefault(url, c) != c:
            raise NotReplayable(f"{url} answered two ways")

    def final_answer(
        self, url: str, status: int | None, detail: str, head_type: str | None
    ) -> None:
        """``url`` answered ``status`` at the end of its chain (or directly); with
        ``head_type`` the crawl would ask it with HEAD and see that content type."""
        if status is None:
            raise NotReplayable(f"{url}: {detail or 'no answer'}")
        if status >= 400:
            if detail and detail != f"http_{status}":
                raise NotReplayable(f"{url}: {detail}")
            self.confirm(url, status)
        elif self.scoped(url):
            self.fresh.add(url)
        elif not self.policy.is_watched(url) and self.cache.cached_link(url, 0) is not None:
            pass  # the crawl would reuse the cached outside verdict too
        elif head_type is not None:
            self.confirm(url, status, method="HEAD", content_type=head_type)
        else:
            raise NotReplayable(f"{url}: an outside answer with a body to read")

    def link(self, link: LinkResult, base: str, fragmented: bool) -> None:
        """What ``link`` (first seen at ``base``) needs to answer again."""
        policy, cache = self.policy, self.cache
        live = not link.internal and (policy.is_watched(base) or cache.cached_link(base, 0) is None)
        if not link.internal and not live:
            return  # the crawl would reuse the cached outside verdict too
        # An outside target the crawl asks live with HEAD (no #fragment to look up, no
        # PDF to sniff) and found working: its status and content type are all that
        # verdict rests on. (A verdict read from a body, such as soft_404, is not; a
        # redirect onto a front page, checks.soft_moved, rests on the chain alone.)
        head = (
            live
            and not link.pdf_link
            and not fragmented
            and (link.verdict in (Verdict.OK, Verdict.REDIRECT) or link.detail == SOFT_MOVED)
        )
        head_type = link.content_type if head else None
        chain = link.redirect_chain
        if link.detail == "meta_refresh" or any(h.status == REFRESH_STATUS for h in chain):
            raise NotReplayable(f"{base}: a meta refresh (read from the body)")
        if not chain:
            detail = link.detail if link.verdict is not Verdict.OK else ""
            self.final_answer(base, link.status, detail, head_type)
            return
        if link.verdict is Verdict.REDIRECT and any(h.status not in _PERMANENT for h in chain):
            raise NotReplayable(f"{base}: mixed redirect chain")
        final = link.final_url
        for hop, nxt in zip(chain, [*(h.url for h in chain[1:]), final], strict=True):
            self.confirm(hop.url, hop.status, nxt, method="HEAD" if head else "GET")
        detail = link.detail if link.verdict not in (Verdict.OK, Verdict.REDIRECT) else ""
        self.final_answer(final, link.status, detail, head_type)


def holds(
    p: Plan,
    rows: Iterable[tuple[str, int, str, str]],
    fresh: set[tuple[str, int]],
    confirmed: set[str],
) -> bool:
    """Whether the pass's answers (to the stored ``rows``) show the site as the plan's
    run saw it: every URL it needs unchanged answered 304 in every mode stored for it."""
    answered = {url for url, _mode in fresh}
    changed = {url for url, mode, *_ in rows if (url, mode) not in fresh}
    return (
        p.fresh <= answered
        and p.fresh.isdisjoint(changed)
        and all(c.url in confirmed for c in p.confirms)
    )


def ask_again(p: Plan, settings: PassSettings) -> set[str]:
    """The plan's targets to confirm, asked here (a forked pass asks the stored rows
    meanwhile); the URLs that answered as before."""
    return confirm_targets(p.confirms, settings)
