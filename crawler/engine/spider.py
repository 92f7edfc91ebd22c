"""The audit spider: crawls pages in scope and probes every link target exactly once.

Scrapy's own redirect, retry, offsite, depth and dupefilter machinery is switched off
(see ``crawler.engine.scrapy_settings``): each of them can drop a check silently. This spider
follows redirects, retries and deduplicates itself, and accounts for every target.

The spider is three parts: this module (start, idle, download signals, close),
``crawler.engine.frontier`` (which targets become which requests) and
``crawler.engine.answers`` (judging each response or failure).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from typing import Any

from scrapy import Request, Spider, signals
from scrapy.exceptions import (
    DontCloseSpider,
    StopDownload,
)
from scrapy.http import Response
from twisted.python.failure import Failure

from checks.verdicts import (
    is_html_type,
)
from crawler.engine.answers import Answers
from crawler.engine.dispatch import Dispatch
from crawler.engine.frontier import Frontier
from crawler.engine.modes import (
    PAGE,
)
from crawler.pages.extract import (
    SNIFF_BYTES,
)
from crawler.pages.parse_worker import (
    ParseWorker,
    worker_count,
)
from crawler.pages.pdf_fetch import PdfLinks
from crawler.pages.urls import ResolveCache, resolve
from crawler.rerun.fetch_cache import FetchCache
from crawler.rerun.revalidate import PendingRevalidation
from crawler.state.crawl_state import CrawlState, Target


class AuditSpider(Frontier, Answers, Spider):
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
            from crawler.engine.frontier import seed_sitemap_pages

            for req in seed_sitemap_pages(self.state, self._crawl_refusal, self._ensure):
                submit(req)
                issued += 1
            for req in self._drain():  # seeded pages the re-run cache replays
                submit(req)
                issued += 1
        if issued:
            dispatch.pump()
        return bool(issued or self._frontier or self._deferred)

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
