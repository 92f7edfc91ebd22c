"""Which targets become which requests: the frontier of pages to crawl, links found on a
page, redirects followed, retries (the ``Frontier`` part of ``AuditSpider``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from scrapy import Request
from scrapy.http import Response
from scrapy.http.request import NO_CALLBACK

from checks.models import RedirectHop
from checks.refresh import REFRESH_STATUS
from checks.verdicts import (
    Probe,
    is_html_type,
)
from crawler.engine.modes import (
    _VERBATIM_URL,
    FULL,
    FULL_BYTES,
    HEAD,
    PAGE,
    SNIFF,
    _retry_after,
    says_pdf,
)
from crawler.pages.extract import (
    CRAWL_TAGS,
    EMBED_TAGS,
    RESOURCE_TAGS,
    SNIFF_BYTES,
    STYLESHEET_TAGS,
)
from crawler.pages.parse_worker import (
    Resolution,
)
from crawler.pages.refresh import (
    widen_scope,
)
from crawler.pages.sitemaps import same_page
from crawler.pages.stylesheets import stylesheet_refs
from crawler.pages.urls import Resolved, path_trap, resolve, trap_shape
from crawler.rerun.revalidate import conditional_headers
from crawler.state.crawl_state import CrawlState, Target

#: Page requests handed to Scrapy at a time (issued, not yet answered). Further pages wait
#: in the spider's own frontier as their targets (with ``Target.depth``), instead of a ~2 KB
#: Request in Scrapy's scheduler: at 20,000 pages the scheduler held 15,000 requests.
FRONTIER = 1000


class Frontier:
    """Requests of the audit spider (mixed into ``crawler.engine.spider.AuditSpider``)."""

    def _request(
        self,
        t: Target,
        mode: int,
        url: str | None = None,
        chain: tuple[RedirectHop, ...] = (),
        tries: int = 0,
        depth: int = 0,
        method: str | None = None,
        conditional: bool = True,
    ) -> Request:
        self.state.issued += 1
        meta = {
            "sw": t.url,
            "sw_mode": mode,
            "sw_chain": chain,
            "sw_try": tries,
            "sw_depth": depth,
            "dont_redirect": True,
            "handle_httpstatus_all": True,
            "download_timeout": self.timeout,
            # Bodies are cut at sw_cap by _on_bytes and crawler.engine.compression, never dropped.
            "download_maxsize": 0,
            "dont_obey_robotstxt": mode != PAGE or bool(chain) or t.start,
        }
        if _VERBATIM_URL.fullmatch(url or t.url):
            meta["verbatim_url"] = True
        if mode == SNIFF:
            meta["sw_cap"] = SNIFF_BYTES
        elif mode == FULL:
            meta["sw_cap"] = FULL_BYTES
        elif mode == PAGE:
            meta["sw_cap"] = self.max_page_bytes
        if t.pdf_hint and mode in (SNIFF, FULL) and method != "HEAD":
            self._pdfs.on_request(t, meta)  # a PDF to read (crawler.pages.pdf_fetch): a bigger cap
        headers = None
        target_url = url or t.url
        if conditional and self.cache is not None and self.state.in_scope(target_url):
            known = self.cache.validators(target_url, mode)
            if known is not None:
                headers = conditional_headers(*known)
                meta["sw_cond"] = True
                self.state.stats["conditional_requests"] += 1
        return Request(
            target_url,
            method=method or ("HEAD" if mode == HEAD else "GET"),
            headers=headers,
            # Never given to a callback: the dispatch hands the outcome to _answer.
            callback=NO_CALLBACK,
            meta=meta,
            dont_filter=True,
            priority=0 if mode == PAGE else 1,
        )

    def _ensure(self, t: Target, needed: int, depth: int = 0) -> Request | None:
        """Issue the probe ``t`` still needs, unless one as strong is issued already."""
        if t.mode >= needed or t.skip:
            return None
        host = t.host
        if host in self.dns_failed and not t.probe:
            t.mode = needed
            t.probe = Probe(t.url, error="dns", method="-")
            self.state.stats["dns_cached"] += 1
            return None
        cache = self.cache
        if (
            cache is not None
            and not t.internal
            and not self.state.policy.is_watched(t.url)
            and not (t.pdf_hint and self._pdfs.reads(t))  # read every run (pdf_fetch)
        ):
            probe = cache.cached_link(t.url, needed)
            if probe is not None:
                t.mode = needed
                t.probe = probe
                cache.live_links.pop(t.url, None)
                self.state.stats["links_from_cache"] += 1
                return None
        if (
            cache is not None
            and t.internal
            and not t.start
            and not t.stylesheet  # its body is read again: no replay of a stored answer
            and (t.url, needed) in cache.fresh
        ):
            t.mode = needed
            if needed == PAGE:
                self.state.pages_scheduled += 1
            self._replays.append((t, needed, depth))
            return None
        t.mode = needed
        if needed == PAGE:
            st = self.state
            st.pages_scheduled += 1
            t.depth = depth
            if not t.start and (self._frontier or st.issued - st.resolved >= FRONTIER):
                self._frontier.append(t)
                return None
        return self._request(t, needed, depth=depth, conditional=not t.stylesheet)

    def _feed(self) -> Iterator[Request]:
        """Requests for frontier pages, up to ``FRONTIER`` unanswered requests."""
        st = self.state
        frontier = self._frontier
        room = FRONTIER - (st.issued - st.resolved)
        while frontier and room > 0:
            t = frontier.popleft()
            room -= 1
            yield self._request(t, PAGE, depth=t.depth)

    def _link(
        self,
        page_url: str,
        depth: int,
        href: str,
        text: str,
        tag: str,
        resolved: Resolution | None = None,
    ) -> Request | None:
        """Take one link of a page (``resolved``: joined by the parse worker already)."""
        st = self.state
        if resolved is None:
            r = self._resolve(page_url, href)
            base, fragment, skip = r.base, r.fragment, r.skip
        else:
            base, fragment, skip = resolved
        if skip:
            t = st.target(base, internal=False)
            t.skip = skip
            st.add_ref(t, page_url, text, tag, None)
            return None
        if fragment and st.exclude_patterns and st.excludes_fragment(base, fragment):
            # ``--exclude`` matched the whole URL (``#/route``): this link alone is left out.
            ex = st.target(f"{base}#{fragment}", internal=False)
            ex.skip = "excluded"
            st.add_ref(ex, page_url, text, tag, None)
            return None
        t = st.targets.get(base)
        if t is None:
            t = st.target(base, internal=st.in_scope(base))
            if st.excluded(base) or (not t.internal and not st.settings.check_external):
                t.skip = "excluded"
        st.add_ref(t, page_url, text, tag, fragment)
        if t.skip:
            return None
        if tag in RESOURCE_TAGS and (tag in EMBED_TAGS or t.internal):
            return self._resource(t, tag, fragment)
        needed = HEAD
        if fragment and st.settings.check_fragments:
            t.fragments = True
            needed = FULL
        if not t.pdf_hint and (t.path_is_pdf or (not t.path_is_page and says_pdf(text))):
            t.pdf_hint = True
        if t.pdf_hint:
            needed = max(needed, SNIFF)
        if t.mode == PAGE and depth + 1 < t.depth and tag in CRAWL_TAGS:
            # A page scheduled, linked from a shallower one: it is that deep (when its
            # answer comes; one already handled keeps the depth it had).
            t.depth = depth + 1
        if t.internal and tag in CRAWL_TAGS and not t.path_is_pdf and t.mode < PAGE:
            reason = self._crawl_refusal(t, depth + 1)
            if reason is None:
                return self._ensure(t, PAGE, depth + 1)
            if reason == "trap_unchecked":
                st.not_crawled["trap"] += 1
                st.stats["trap_links_unchecked"] += 1
                t.skip = "limit"
                return None
            st.not_crawled[reason] += 1
            needed = max(needed, FULL if t.fragments else HEAD)
        elif t.internal and tag not in CRAWL_TAGS and not t.path_is_pdf and t.mode < needed:
            if self._deferred.get(t.url, 0) < needed:
                self._deferred[t.url] = needed
            return None
        return self._ensure(t, needed)

    def _resource(self, t: Target, tag: str, fragment: str | None) -> Request | None:
        """An in-scope stylesheet (read for its references: ``crawler.pages.stylesheets``) or an
        embedded object (sniffed, so a PDF served as such gets the PDF check)."""
        if fragment and self.state.settings.check_fragments:
            t.fragments = True
        needed = FULL if t.fragments else SNIFF
        if tag in STYLESHEET_TAGS:
            t.stylesheet = True
            needed = FULL
        return self._ensure(t, needed)

    def _stylesheet(self, t: Target, url: str, ctype: str, body: bytes) -> Iterator[Request]:
        """Take the references of an in-scope stylesheet (crawler/pages/stylesheets.py)."""
        refs = stylesheet_refs(body, ctype, url)
        self.state.stats["stylesheets_read"] += 1
        link = self._link
        for href, kind in refs:
            req = link(url, t.depth, href, "", kind)
            if req is not None:
                yield req

    def _crawl_refusal(self, t: Target, depth: int) -> str | None:
        st = self.state
        if depth > st.settings.max_depth:
            st.incomplete_reason(f"max_depth ({st.settings.max_depth}) reached")
            return "max_depth"
        if st.pages_scheduled >= st.settings.max_pages:
            st.incomplete_reason(f"max_pages ({st.settings.max_pages}) reached")
            return "max_pages"
        if path_trap(t.url, st.settings.max_path_segments):
            st.trap(t.url, "path grows without end")
            return "trap"
        shape = trap_shape(t.url)
        self.shapes[shape] += 1
        limit = st.settings.max_pages_per_pattern
        if self.shapes[shape] > limit:
            st.trap(t.url, f"more than {limit} pages shaped {shape}")
            # Past twice the limit, new URLs of the shape are not even checked: one page
            # with 50,000 such links would otherwise cost 50,000 requests.
            return "trap_unchecked" if self.shapes[shape] > 2 * limit and not t.mode else "trap"
        return None

    def _follow(
        self, t: Target, mode: int, response: Response, chain: tuple[RedirectHop, ...]
    ) -> Iterator[Request]:
        location = response.headers[b"Location"].decode("latin-1")
        nxt = resolve(response.url, location)
        ctype = (response.headers.get(b"Content-Type") or b"").decode("latin-1")
        method = response.request.method
        if response.status == 303 and method != "HEAD":
            method = "GET"
        depth = response.meta["sw_depth"]
        status = response.status
        yield from self._follow_to(t, mode, response.url, status, nxt, chain, ctype, depth, method)

    def _follow_to(
        self,
        t: Target,
        mode: int,
        url: str,
        status: int,
        nxt: Resolved,
        chain: tuple[RedirectHop, ...],
        ctype: str,
        depth: int,
        method: str,
        answered: int = 0,
    ) -> Iterator[Request]:
        """Follow a hop from ``url`` (``status``: its 3xx, or 0 for a meta refresh of a
        page that ``answered`` 2xx) to ``nxt``, unless it loops or the chain is too long."""
        hop = RedirectHop(url, status)
        chain = (*chain, hop)
        seen = {h.url for h in chain} | {resolve(h.url, "").base for h in chain}
        err = None
        if nxt.skip:
            err = "malformed_url"
        elif nxt.base in seen:
            err = "redirect_loop"
        elif len(chain) >= self.max_redirects:
            err = "too_many_redirects"
        if err:
            t.probe = Probe(t.url, answered or status, err, url, chain, ctype)
            return
        if status == REFRESH_STATUS and t.start and mode == PAGE:
            widen_scope(self.state, t.url, nxt.base)
        if mode == PAGE and not self.state.in_scope(nxt.base):
            mode = FULL
        reused = self._known_probe(nxt.base, mode, t)
        if reused is not None:
            # The redirect lands on a target already checked: reuse it (one fetch per URL).
            t.probe = replace(reused, url=t.url, chain=chain + reused.chain)
            self.state.stats["redirects_reused"] += 1
            return
        yield self._request(
            t,
            mode,
            url=nxt.base,
            chain=chain,
            depth=depth,
            method=method,
            conditional=not t.stylesheet,
        )

    def _known_probe(self, url: str, mode: int, t: Target) -> Probe | None:
        """A finished probe of ``url`` that answers what a ``mode`` probe would."""
        known = self.state.targets.get(url)
        if known is None or known is t or known.probe is None:
            return None
        p = known.probe
        if mode >= SNIFF and p.method != "GET":
            return None
        if mode >= FULL and p.ids is None and is_html_type(p.content_type):
            return None
        return p

    def _again(self, request: Request, meta: dict[str, Any]) -> Request:
        new_meta = {k: v for k, v in meta.items() if k.startswith("sw") or k.startswith("d")}
        new_meta["sw_try"] = meta["sw_try"] + 1
        new_meta.pop("sw_got", None)
        new_meta.pop("sw_truncated", None)
        if "sw_pdf" in new_meta:
            self._pdfs.again(new_meta, meta["sw_mode"] == PAGE)
        self.state.issued += 1
        return request.replace(meta=new_meta, dont_filter=True)

    def _retry_wait(self, tries: int, retry_after: bytes | None) -> float | None:
        """Seconds to wait before retrying, or None when the server asks for too long."""
        wanted = _retry_after(retry_after)
        if wanted is not None:
            return None if wanted > self.max_retry_after else wanted
        return min(0.25 * (2**tries), self.max_retry_after)

    def _replay_fresh(self, t: Target, mode: int, depth: int) -> Iterator[Request]:
        st = self.state
        assert self.cache is not None
        f = self.cache.fetched(t.url, mode)
        if f is None:  # the row went away: fetch it after all
            t.mode = 0
            if mode == PAGE:
                st.pages_scheduled -= 1
            req = self._ensure(t, mode, depth)
            if req is not None:
                yield req
            return
        st.stats["pages_not_modified" if mode == PAGE else "targets_not_modified"] += 1
        ids: frozenset[str] | None = None
        soft_404 = False
        if mode >= FULL and f.status < 300 and f.html and f.has_body:
            ids, soft_404 = f.ids, f.soft_404
            if ids is not None:
                ids = st.shared_ids(ids)
                if mode == PAGE and st.in_scope(t.url) and t.url not in st.parsed:
                    if f.page is None:
                        yield self._request(t, mode, depth=depth, conditional=False)
                        return
                    st.parsed.add(t.url)
                    yield from self._parse_page(t, f.status, t.url, depth, f.content_type, f.page)
                st.page_ids[t.url] = ids
        elif mode == PAGE:
            self._unparsed_page(t, f.status, t.url, f.content_type, depth, f.html)
        if f.page is not None and not f.html:  # a PDF's links (crawler.pages.pdf_fetch)
            yield from self._pdfs.replay(t, t.url, f.page, self._link)
        if mode == PAGE and f.html and f.truncated:
            st.stats["pages_truncated"] += 1
        t.probe = Probe(
            url=t.url,
            status=f.status,
            final_url=t.url,
            content_type=f.content_type,
            soft_404=soft_404,
            ids=ids,
            head_bytes=f.head_bytes,
            method=f.method,
        )


def seed_sitemap_pages(
    state: CrawlState,
    refusal: Callable[[Target, int], str | None],
    ensure: Callable[[Target, int, int], Request | None],
) -> Iterator[Request]:
    """The page requests for the sitemap pages no link reached (the spider's idle hook,
    once the link crawl ran dry; once per crawl). They count as depth 1 and obey the
    crawl's limits (``refusal``: ``AuditSpider._crawl_refusal``)."""
    state.sitemap_due = False
    for url in state.sitemap.pages if state.sitemap is not None else ():
        if any(u in state.targets or u in state.parsed for u in same_page(url)):
            continue  # reached by a link (or a redirect) from the section
        t = state.target(url, internal=True)
        reason = refusal(t, 1)
        if reason is not None:
            state.not_crawled[reason] += 1
            state.stats["sitemap_pages_not_crawled"] += 1
            continue
        state.unlinked.append(url)
        state.stats["sitemap_pages_seeded"] += 1
        req = ensure(t, PAGE, 1)
        if req is not None:
            yield req
