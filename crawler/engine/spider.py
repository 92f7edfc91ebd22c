"""The audit spider: crawls pages in scope and probes every link target exactly once.

Scrapy's own redirect, retry, offsite, depth and dupefilter machinery is switched off
(see ``crawler.engine.scrapy_settings``): each of them can drop a check silently. This spider
follows redirects, retries and deduplicates itself, and accounts for every target.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import ssl
import sys
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

from scrapy import Request, Spider, signals
from scrapy.exceptions import (
    CannotResolveHostError,
    DontCloseSpider,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
    StopDownload,
)
from scrapy.http import Response
from scrapy.http.request import NO_CALLBACK
from twisted.python.failure import Failure

from checks.models import Page, RedirectHop
from checks.refresh import REFRESH_STATUS
from checks.sitemap_checks import with_lastmod
from checks.verdicts import (
    REDIRECT_STATUSES,
    TRANSIENT_ERRORS,
    TRANSIENT_STATUSES,
    Probe,
    is_html_type,
)
from crawler.engine.dispatch import Dispatch
from crawler.pages.extract import (
    CRAWL_TAGS,
    EMBED_TAGS,
    RESOURCE_TAGS,
    SNIFF_BYTES,
    STYLESHEET_TAGS,
    ParsedPage,
    declared_encoding,
    facts_from_body,
    looks_like_html,
    parser_for,
)
from crawler.pages.parse_worker import (
    Answer,
    ParseWorker,
    Reading,
    Resolution,
    WorkerGone,
    worker_count,
)
from crawler.pages.pdf_fetch import PdfLinks
from crawler.pages.refresh import (
    REFRESH_TAG,
    REFRESH_TEXT,
    is_redirect,
    refresh_target,
    target_url,
    widen_scope,
)
from crawler.pages.stylesheets import stylesheet_refs
from crawler.pages.urls import ResolveCache, Resolved, path_trap, resolve, trap_shape
from crawler.rerun.fetch_cache import FetchCache, Fetched, PendingRevalidation, conditional_headers
from crawler.state.crawl_state import CrawlState, Target
from crawler.state.memory import trim

# Probe modes, weakest first: a stronger mode answers every question a weaker one does.
HEAD, SNIFF, FULL, PAGE = 1, 2, 3, 4
FULL_BYTES = 2_000_000
#: Page requests handed to Scrapy at a time (issued, not yet answered). Further pages wait
#: in the spider's own frontier as their targets (with ``Target.depth``), instead of a ~2 KB
#: Request in Scrapy's scheduler: at 20,000 pages the scheduler held 15,000 requests.
FRONTIER = 1000
#: Give freed heap memory back (``crawler.state.memory.trim``) every so many answers.
TRIM_EVERY = 2000
#: URLs that ``safe_url_string`` (Scrapy's Request) would leave exactly as they are: ASCII
#: host and port, a path and query of characters it never quotes, every ``%`` starting an
#: escape. Such requests skip Scrapy's re-quoting (meta ``verbatim_url``); tested against it.
_VERBATIM_URL = re.compile(
    r"https?://[A-Za-z0-9.\-]+(?::[0-9]{1,5})?/(?:[A-Za-z0-9/:@!$&()*+,;=._~?\-]|%[0-9A-Fa-f]{2})*"
)


_SAYS_PDF = re.compile(r"\(\s*pdf\b|\[\s*pdf\b|\bpdf\s*[)\],]|\.pdf\b|\bpdf\s*$", re.I)


def says_pdf(text: str) -> bool:
    """Link text that promises a PDF: "Flyer (pdf)", "Rapport [PDF, 2 MB]", "flyer.pdf".

    A mere mention ("Building the PDF documentation") does not count.
    """
    return "pdf" in text.lower() and _SAYS_PDF.search(text) is not None


def _error_detail(exc: BaseException) -> str:
    """A ``broken`` detail (checks.models.BROKEN_DETAILS) for a download failure."""
    if isinstance(exc, CannotResolveHostError):
        return "dns"
    if isinstance(exc, DownloadTimeoutError):
        return "timeout"
    if isinstance(exc, DownloadConnectionRefusedError):
        # A failed TLS handshake or certificate is a connection error to the download
        # handler (crawler/http/handler.py, proxied requests too), which raises it as
        # "connection refused" with the TLS error as its cause.
        cause = exc.__cause__
        if isinstance(cause, ssl.SSLError) or type(cause).__name__ in _TLS_ERRORS:
            return "tls"
        return "refused"
    if isinstance(exc, (DownloadCancelledError, IgnoreRequest)):
        # Messages carry the URL (a path with "ssl" in it is no TLS error). The spider's
        # requests are not size-limited by Scrapy (download_maxsize=0): this is a fallback.
        return "connection"
    chain = repr(exc) + repr(getattr(exc, "__cause__", None))
    low = chain.lower()
    if "ssl" in low or "certificate" in low or "tls" in low:
        return "tls"
    if isinstance(exc, (ResponseDataLossError, DownloadFailedError)):
        return "connection"
    return "connection"


_TLS_ERRORS = frozenset(
    {"ClientSSLError", "ClientConnectorSSLError", "ClientConnectorCertificateError"}
)


def _declared_encoding(response: Response) -> str | None:
    """The charset a page declares (BOM, Content-Type header, ``<meta>``), if any."""
    ctype = (response.headers.get(b"Content-Type") or b"").decode("latin-1")
    return declared_encoding(ctype, response.body)


def _joined(r: Resolved) -> Resolution:
    return r.base, r.fragment, r.skip


def _retry_after(value: bytes | None) -> float | None:
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class AuditSpider(Spider):
    name = "sitewatch"

    def __init__(
        self,
        state: CrawlState,
        cache: FetchCache | None = None,
        revalidation: PendingRevalidation | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.state = state
        #: The re-run cache (conditional requests, outside verdicts), or None.
        self.cache = cache
        #: The cache's revalidation pass, still running: awaited in ``start``.
        self._revalidation = revalidation
        s = state.settings
        self.retries = s.retries
        self.max_retry_after = s.max_retry_after
        self.max_redirects = s.max_redirects
        self.timeout = s.timeout
        self.max_page_bytes = s.max_page_bytes
        self.shapes: Counter[str] = Counter()
        self.dns_failed: set[str] = set()
        self._last_tick = 0.0
        self.soft_404_phrases = tuple(p.lower() for p in state.policy.soft_404_phrases)
        #: hrefs repeat on every page of a directory: join each (directory, href) once.
        self._resolve = ResolveCache()
        #: In-scope targets seen only in non-crawling tags (``<link rel=next>``, ``<img>``):
        #: URL -> probe mode still needed. Checked when the crawl runs dry, unless a page
        #: crawl fetched them meanwhile (``<link rel=next>`` in every page of a manual).
        self._deferred: dict[str, int] = {}
        #: Parse pages in processes of their own (crawler.pages.parse_worker); forked in start().
        self._workers: list[ParseWorker] = []
        #: Targets the revalidation pass found unchanged, replayed without a request.
        self._replays: deque[tuple[Target, int, int]] = deque()
        #: Pages to crawl that are not yet Scrapy requests (see ``FRONTIER``), in the
        #: order they were found; fed to Scrapy as answers come in (``_feed``).
        self._frontier: deque[Target] = deque()
        #: Hands requests to Scrapy's downloader (crawler.engine.dispatch); made in start().
        self._dispatch: Dispatch | None = None
        #: The engine's close, asked for by ``_dispatch_idle``.
        self._closing: asyncio.Future[None] | None = None
        #: Which PDFs are read in full, and their links (crawler.pages.pdf_fetch).
        self._pdfs = PdfLinks(state)

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> AuditSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider._on_headers, signal=signals.headers_received)
        crawler.signals.connect(spider._on_bytes, signal=signals.bytes_received)
        crawler.signals.connect(spider._on_spider_error, signal=signals.spider_error)
        crawler.signals.connect(spider._on_idle, signal=signals.spider_idle)
        return spider

    # -- requests ----------------------------------------------------------------

    async def start(self) -> AsyncIterator[Request]:
        """Start the crawl through the spider's own dispatch; Scrapy's scheduler gets
        nothing (``crawler.engine.dispatch``)."""
        st = self.state
        settings = self.crawler.settings
        self._dispatch = Dispatch(
            self.crawler.engine,
            settings.getint("CONCURRENT_REQUESTS"),
            settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN"),
            self._answer,
            self._dispatch_idle,
        )
        pending, self._revalidation = self._revalidation, None
        if pending is not None and self.cache is not None:
            # Before the parse worker's fork: the pass's pipe is closed by then.
            pending.finish()
            st.stats["revalidated"] = self.cache.revalidated
        # crawl.parse_workers: None one per CPU (at most 4), 0 parse in this process.
        workers = st.settings.parse_workers
        wanted = worker_count() if workers is None else workers
        for _ in range(wanted):
            worker = ParseWorker.start(self.soft_404_phrases)
            if worker is not None:
                self._workers.append(worker)
        if wanted:
            st.stats["parse_workers"] = len(self._workers)
        for url in st.settings.start_urls:
            r = resolve(url, "")
            t = st.target(r.base, internal=True)
            t.start = True
            req = self._ensure(t, PAGE, depth=0)
            if req is not None:
                self._dispatch.submit(req)
        self._dispatch.pump()
        if not self._dispatch.busy:
            self._dispatch_idle()
        return
        yield  # an async generator, as Scrapy expects; it yields nothing

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

    def _on_idle(self) -> None:
        """Scrapy's engine found nothing to do: keep it open while the dispatch has
        work, or while the idle work below issues more."""
        dispatch = self._dispatch
        if dispatch is not None and dispatch.busy:
            raise DontCloseSpider
        if self._idle_work():
            raise DontCloseSpider

    def _dispatch_idle(self) -> None:
        """The dispatch ran dry: issue the idle work, or close the crawl as Scrapy's engine
        does when it finds itself idle."""
        if self._idle_work():
            return
        engine = self.crawler.engine
        try:
            idle = engine.spider_is_idle()
        except RuntimeError:  # the engine is closing already
            return
        if idle:
            self._closing = asyncio.ensure_future(engine.close_spider_async(reason="finished"))

    def _idle_work(self) -> bool:
        """Feed the frontier; once it is empty, check the deferred targets that no page
        crawl has fetched, and replay what is left. True if anything was issued."""
        dispatch = self._dispatch
        assert dispatch is not None
        submit = dispatch.submit
        issued = 0
        if self._frontier:
            for req in self._feed():
                submit(req)
                issued += 1
        elif self._deferred or self._replays:
            pending, self._deferred = self._deferred, {}
            for url, needed in pending.items():
                req = self._ensure(self.state.targets[url], needed)
                if req is None:
                    self.state.stats["deferred_checks_saved"] += 1
                else:
                    submit(req)
                    issued += 1
            for req in self._drain():
                submit(req)
                issued += 1
        elif self.state.sitemap_due:
            from crawler.pages.sitemaps import seed_sitemap_pages

            for req in seed_sitemap_pages(self.state, self._crawl_refusal, self._ensure):
                submit(req)
                issued += 1
            for req in self._drain():  # seeded pages the re-run cache replays
                submit(req)
                issued += 1
        if issued:
            dispatch.pump()
        return bool(issued or self._frontier or self._deferred)

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

    # -- download signals --------------------------------------------------------

    def _on_headers(self, headers: Any, body_length: int, request: Request, spider: Any) -> None:
        meta = request.meta
        if meta.get("sw_mode") == PAGE:
            ctype = (headers.get(b"Content-Type") or b"").decode("latin-1")
            if ctype and not is_html_type(ctype):
                meta["sw_cap"] = SNIFF_BYTES
                self._pdfs.on_page_headers(meta, request.url, ctype, headers)
        elif "sw_pdf" in meta:
            self._pdfs.on_headers(meta, headers)

    def _on_bytes(self, data: bytes, request: Request, spider: Any) -> None:
        meta = request.meta
        cap = meta.get("sw_cap")
        if cap is None:
            return
        got = meta.get("sw_got", 0) + len(data)
        meta["sw_got"] = got
        if got >= cap:
            meta["sw_truncated"] = True
            raise StopDownload(fail=False)

    def _on_spider_error(self, failure: Failure, response: Response, spider: Any) -> None:
        self._spider_error(response.url, failure)

    def _spider_error(self, url: str, failure: Failure) -> None:
        self.state.spider_errors.append(f"{url}: {failure.getErrorMessage()[:200]}")
        self.state.incomplete_reason("internal error while processing a page")

    # -- responses ---------------------------------------------------------------

    async def _answer(self, request: Request, result: Response | Exception) -> None:
        """Judge one download's outcome (``crawler.engine.dispatch``); the requests it leads to
        go to the dispatch."""
        submit = self._dispatch.submit  # type: ignore[union-attr]
        try:
            if isinstance(result, Response):
                async for req in self._respond(result):
                    submit(req)
            else:
                failure = Failure(result)
                failure.request = request  # type: ignore[attr-defined]
                for req in self.on_error(failure):
                    submit(req)
        except Exception:  # a bug, or hostile input the spider did not expect
            self._spider_error(request.url, Failure())

    async def _respond(self, response: Response) -> AsyncIterator[Request]:
        st = self.state
        meta = response.meta
        t = st.targets[meta["sw"]]
        mode: int = meta["sw_mode"]
        chain: tuple[RedirectHop, ...] = meta["sw_chain"]
        status = response.status
        st.responses += 1
        if not st.responses % TRIM_EVERY:
            trim()
        self._tick()
        if self._frontier:
            for req in self._feed():
                yield req
        replay: Fetched | None = None
        if status == 304 and meta.get("sw_cond") and self.cache is not None:
            # Not modified since an earlier run: replay what its answer said.
            replay = self.cache.fetched(response.url, mode)
            if replay is None:  # the row went away: ask again, unconditionally
                yield self._refetch(t, mode, response, chain)
                return
            st.stats["pages_not_modified" if mode == PAGE else "targets_not_modified"] += 1
            status = replay.status

        if status in REDIRECT_STATUSES and b"Location" in response.headers:
            for req in self._follow(t, mode, response, chain):
                yield req
            st.resolved += 1
            return
        if status in TRANSIENT_STATUSES and meta["sw_try"] < self.retries:
            wait = self._retry_wait(meta["sw_try"], response.headers.get(b"Retry-After"))
            if wait is not None:
                st.stats["retries"] += 1
                if wait > 0:
                    await asyncio.sleep(wait)
                st.resolved += 1
                yield self._again(response.request, meta)
                return
        if (
            mode == HEAD
            and status >= 400
            and status != 429
            and b"Retry-After" not in response.headers
        ):
            # Many servers refuse or mishandle HEAD: ask again with GET before judging.
            # Not when the server asked us to slow down or come back later (429, or a
            # Retry-After longer than crawl.max_retry_after): a GET now would be rude.
            st.stats["get_fallbacks"] += 1
            st.resolved += 1
            yield self._request(t, FULL if t.fragments else SNIFF)
            return

        ids: frozenset[str] | None = None
        soft_404 = False
        #: The page has a meta refresh (slower than a redirect: ``refresh_to``, if anywhere).
        refreshed, refresh_to = False, ""
        # Kept in the probe until the report: share the target's URL string when equal.
        final = t.url if response.url == t.url else response.url
        #: The page facts taken (and the cache's record, if the parse worker made it).
        facts: list[tuple[ParsedPage, bytes | None]] = []
        resolved: tuple[Resolution, ...] | None = None
        encoded: bytes | None = None
        if replay is None:
            ctype = sys.intern((response.headers.get(b"Content-Type") or b"").decode("latin-1"))
            html = is_html_type(ctype) or (not ctype and looks_like_html(response.body))
            truncated = bool(meta.get("sw_truncated"))
            has_body = bool(response.body)
        else:
            ctype, html = replay.content_type, replay.html
            truncated, has_body = replay.truncated, replay.has_body
        if mode == PAGE and html and truncated:
            st.stats["pages_truncated"] += 1
        if mode >= FULL and status < 300 and html and has_body:
            final_base = resolve(final, "").base
            if final_base == t.url:
                final_base = t.url  # one string for the target and its page_ids key
            parsed: ParsedPage | None
            if replay is None:
                want = mode == PAGE and st.in_scope(final_base) and final_base not in st.parsed
                answer: Answer | None = None
                headers = response.headers
                if self.cache is not None and (b"ETag" in headers or b"Last-Modified" in headers):
                    # What _remember will store, encoded by the parse worker.
                    answer = (status, ctype, response.request.method, html, has_body, truncated)
                parsed, resolved, encoded = await self._facts(response, want, answer)
            else:
                parsed = replay.page
                ids, soft_404 = replay.ids, replay.soft_404
            if parsed is not None and parsed.refresh is not None:
                nxt = refresh_target(parsed, final)
                if nxt is not None and is_redirect(parsed, st.settings.max_refresh_delay):
                    # Followed like a redirect: the page itself is not one a visitor sees.
                    depth = meta["sw_depth"]
                    args = (t, mode, final, REFRESH_STATUS, nxt, chain, ctype, depth, "GET")
                    for req in self._follow_to(*args, answered=status):
                        yield req
                    st.resolved += 1
                    return
                refreshed, refresh_to = True, target_url(nxt) if nxt is not None else ""
            if parsed is not None:
                ids, soft_404 = parsed.ids, parsed.soft_404
            if ids is not None:
                ids = st.shared_ids(ids)
                # Checked again after the parse: another response may have taken the page.
                if mode == PAGE and st.in_scope(final_base) and final_base not in st.parsed:
                    if parsed is None:
                        # A 304 stored without its page facts (it was parsed via another
                        # URL then): fetch it in full.
                        yield self._refetch(t, mode, response, chain)
                        return
                    st.parsed.add(final_base)
                    for req in self._parse_page(
                        t,
                        status,
                        final,
                        t.depth,
                        ctype,
                        parsed,
                        facts if replay is None else None,
                        resolved,
                        encoded,
                    ):
                        yield req
                st.page_ids[final_base] = ids
        elif mode == PAGE:
            self._unparsed_page(t, status, final, ctype, t.depth, html)
        t.probe = Probe(
            url=t.url,
            status=status,
            final_url=final,
            chain=chain,
            content_type=ctype,
            soft_404=soft_404,
            ids=ids,
            head_bytes=(
                replay.head_bytes
                if replay is not None
                else None
                if response.request.method == "HEAD"
                else st.shared_head(response.body[:16])
            ),
            method=response.request.method,
            refresh_to=refresh_to,
        )
        if "sw_pdf" in meta or (replay is not None and not replay.html and replay.page is not None):
            # A PDF read, or one answered 304 with its links stored (crawler.pages.pdf_fetch).
            for req in await self._pdfs.follow(t, response, status, replay, facts, self._link):
                yield req
        if (
            t.stylesheet
            and replay is None
            and status < 300
            and response.request.method == "GET"
            and st.in_scope(final)  # not after a redirect out of scope
        ):
            for req in self._stylesheet(t, final, ctype, response.body):
                yield req
        st.resolved += 1
        if self._replays:
            for req in self._drain():
                yield req
        cache = self.cache
        if cache is None or replay is not None:
            return
        if not t.internal:
            cache.note_link(t.url, mode)
        elif 200 <= status < 300 and st.in_scope(final) and not refreshed:
            self._remember(cache, t, mode, response, ctype, html, truncated, ids, facts)

    def _remember(
        self,
        cache: FetchCache,
        t: Target,
        mode: int,
        response: Response,
        ctype: str,
        html: bool,
        truncated: bool,
        ids: frozenset[str] | None,
        facts: list[tuple[ParsedPage, str | None]],
    ) -> None:
        """Store a 2xx answer with validators for the next run's conditional request."""
        etag = (response.headers.get(b"ETag") or b"").decode("latin-1")
        last_mod = (response.headers.get(b"Last-Modified") or b"").decode("latin-1")
        if not etag and not last_mod:
            return
        page, encoded = facts[0] if facts else (None, None)
        if mode == PAGE and html and ids is not None and page is None:
            return  # parsed via another URL: this answer's page facts were not taken
        probe = t.probe
        assert probe is not None
        cache.record(
            response.url,
            mode,
            etag,
            last_mod,
            Fetched(
                status=response.status,
                content_type=ctype,
                method=response.request.method,
                html=html,
                has_body=bool(response.body),
                truncated=truncated,
                head_bytes=probe.head_bytes,
                ids=ids,
                soft_404=probe.soft_404,
                page=page,
                encoded=encoded,
            ),
        )

    def _refetch(
        self, t: Target, mode: int, response: Response, chain: tuple[RedirectHop, ...]
    ) -> Request:
        """Ask again without validators: a 304 whose stored answer cannot be replayed."""
        self.state.resolved += 1
        return self._request(
            t,
            mode,
            url=response.url if chain else None,
            chain=chain,
            depth=response.meta["sw_depth"],
            method=response.request.method,
            conditional=False,
        )

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

    def on_error(self, failure: Failure) -> Iterator[Request]:
        st = self.state
        request: Request = failure.request  # type: ignore[attr-defined]
        meta = request.meta
        t = st.targets.get(meta.get("sw", ""))
        st.responses += 1
        self._tick()
        if self._frontier:
            yield from self._feed()
        if t is None:
            st.resolved += 1
            return
        exc = failure.value
        if isinstance(exc, IgnoreRequest) and "robots" in str(exc).lower():
            st.stats["robots_disallowed"] += 1
            st.not_crawled["robots"] += 1
            st.pages_scheduled -= 1
            t.mode = 0
            st.resolved += 1
            req = self._ensure(t, FULL if t.fragments else HEAD)
            if req is not None:
                yield req
            return
        detail = _error_detail(exc)
        if detail in TRANSIENT_ERRORS and meta.get("sw_try", 0) < self.retries:
            st.stats["retries"] += 1
            st.resolved += 1
            yield self._again(request, meta)
            return
        if detail == "dns":
            self.dns_failed.add(t.host)
        t.probe = Probe(t.url, None, detail, request.url, meta.get("sw_chain", ()))
        if meta.get("sw_mode") == PAGE:
            st.pages.append(Page(url=t.url, status=None, depth=t.depth, error=detail))
        st.resolved += 1

    # -- pages -------------------------------------------------------------------

    def _encoding(self, response: Response) -> str:
        encoding = getattr(response, "encoding", None) or "utf-8"
        if encoding not in ("utf-8", "cp1252") and not _declared_encoding(response):
            # Undeclared and not UTF-8: Scrapy's statistical guess often says cp1250 for
            # short Swedish text (Å shown as Ĺ); browsers in Western European locales
            # read such pages as windows-1252, and so do we.
            encoding = "cp1252"
        return encoding

    async def _facts(
        self, response: Response, links: bool, answer: Answer | None = None
    ) -> Reading:
        """Parse the body (in the parse worker when there is one) and read it; title,
        review date and links only with ``links`` (and from the worker, the links joined
        and the cache's record of the ``answer``: ``parse_worker.read_page``)."""
        encoding = self._encoding(response)
        last_mod = response.headers.get(b"Last-Modified")
        last_modified = last_mod.decode("latin-1") if last_mod else None
        body: bytes | str = response.body
        if parser_for(encoding) is None:  # decoded by Scrapy (BOM, header, meta)
            body = response.text
        elif self._workers:
            # The worker with the fewest pages waiting (the first, on a tie).
            worker = min(self._workers, key=ParseWorker.waiting)
            try:
                return await worker.read(
                    response.body, encoding, response.url, last_modified, links, answer
                )
            except WorkerGone:  # this page is read here; the next go to the others
                if worker in self._workers:
                    self._workers.remove(worker)
                    worker.close()
                    self.state.stats["parse_worker_lost"] += 1
        page = facts_from_body(
            body, encoding, response.url, last_modified, self.soft_404_phrases, links
        )
        return page, None, None

    def _parse_page(
        self,
        t: Target,
        status: int,
        final_url: str,
        depth: int,
        ctype: str,
        parsed: ParsedPage,
        facts: list[tuple[ParsedPage, bytes | None]] | None = None,
        resolved: tuple[Resolution, ...] | None = None,
        encoded: bytes | None = None,
    ) -> Iterator[Request]:
        """Record the page and follow its links, from a parse or from stored facts (a
        304); with ``facts``, append ``(parsed, encoded)`` there once every link was taken
        (for the re-run cache). ``resolved``: the links joined by the parse worker;
        ``encoded``: its record of the answer for the cache."""
        review = parsed.review
        sitemap = self.state.sitemap
        if sitemap is not None and sitemap.pages:
            review = with_lastmod(review, sitemap.pages.get(t.url))
        self.state.pages.append(
            Page(
                url=t.url,
                status=status,
                title=parsed.title,
                final_url=final_url,
                content_type=ctype,
                depth=depth,
                review_date=review.date if review else None,
                review_date_source=review.source if review else None,
                is_html=True,
                error="soft_404" if parsed.soft_404 else None,
            )
        )
        # Links are joined to the <base href> but found on the page itself (final_url).
        base_url = parsed.base_url
        link = self._link
        joined = resolved if resolved is not None else (None,) * len(parsed.links)
        if resolved is None and base_url != final_url:
            joined = tuple(_joined(self._resolve(base_url, h)) for h, _, _ in parsed.links)
        for (href, text, tag), r in zip(parsed.links, joined, strict=True):
            req = link(final_url, depth, href, text, tag, r)
            if req is not None:
                yield req
        if parsed.refresh is not None and refresh_target(parsed, final_url) is not None:
            # A slow refresh (a quick one is followed instead): its target is a link.
            req = link(base_url, depth, parsed.refresh[1] or "", REFRESH_TEXT, REFRESH_TAG)
            if req is not None:
                yield req
        if facts is not None:
            facts.append((parsed, encoded))

    def _unparsed_page(
        self, t: Target, status: int, final_url: str, ctype: str, depth: int, html: bool
    ) -> None:
        """Record a crawled URL whose body was not read as a page (an error, not HTML)."""
        self.state.pages.append(
            Page(
                url=t.url,
                status=status,
                final_url=final_url,
                content_type=ctype,
                depth=depth,
                is_html=html,
            )
        )

    def _drain(self) -> Iterator[Request]:
        """Replay the targets the revalidation pass found unchanged (``_respond`` for
        a 304 without a request), and the ones their stored links lead to."""
        queue = self._replays
        while queue:
            t, mode, depth = queue.popleft()
            yield from self._replay_fresh(t, mode, depth)

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

    def closed(self, reason: str) -> None:
        if self._dispatch is not None:
            self._dispatch.cancel()
        self._resolve = ResolveCache()  # ~17 MB when full; not needed after the crawl
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.close()
        self._pdfs.close()
        if reason != "finished":
            self.state.incomplete_reason(f"crawl stopped early ({reason})")

    def _tick(self) -> None:
        if not self.state.progress:
            return
        now = time.monotonic()
        if now - self._last_tick < 0.2:
            return
        self._last_tick = now
        st = self.state
        sys.stderr.write(
            f"\r  pages {len(st.pages):>6} · links checked {st.checked():>6} · "
            f"queued {max(0, st.issued - st.resolved) + len(self._frontier):>5} "
        )
        sys.stderr.flush()
