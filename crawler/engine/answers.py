"""Judging each download: a response or failure becomes a probe, page facts and the
requests they lead to (the ``Answers`` part of ``AuditSpider``)."""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import AsyncIterator, Iterator

from scrapy import Request
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
)
from scrapy.http import Response
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
from crawler.engine.modes import (
    FULL,
    HEAD,
    PAGE,
    SNIFF,
    TRIM_EVERY,
    _joined,
)
from crawler.pages.extract import (
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
)
from crawler.pages.refresh import (
    REFRESH_TAG,
    REFRESH_TEXT,
    is_redirect,
    refresh_target,
    target_url,
)
from crawler.pages.urls import resolve
from crawler.rerun.fetch_cache import FetchCache, Fetched
from crawler.state.crawl_state import Target
from crawler.state.memory import trim


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


class _Step:
    """What one part of ``Answers._respond`` found out, for the parts after it."""

    __slots__ = ("done", "ids", "refresh_to", "refreshed", "soft_404")

    def __init__(self) -> None:
        #: The answer is dealt with (a redirect or retry asked, a refresh followed).
        self.done = False
        self.ids: frozenset[str] | None = None
        self.soft_404 = False
        #: The page has a meta refresh (slower than a redirect: ``refresh_to``, if anywhere).
        self.refreshed = False
        self.refresh_to = ""


class Answers:
    """Responses of the audit spider (mixed into ``crawler.engine.spider.AuditSpider``)."""

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
        step = _Step()
        async for req in self._redirect_or_retry(t, mode, response, chain, status, step):
            yield req
        if step.done:
            return
        # Kept in the probe until the report: share the target's URL string when equal.
        final = t.url if response.url == t.url else response.url
        #: The page facts taken (and the cache's record, if the parse worker made it).
        facts: list[tuple[ParsedPage, bytes | None]] = []
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
            body = (ctype, html, has_body, truncated)
            async for req in self._read_page(
                t, mode, response, chain, status, final, body, replay, facts, step
            ):
                yield req
            if step.done:
                return
        elif mode == PAGE:
            self._unparsed_page(t, status, final, ctype, t.depth, html)
        t.probe = self._probe(t, response, status, final, chain, ctype, replay, step)
        async for req in self._after_probe(t, mode, response, status, final, ctype, replay, facts):
            yield req
        cache = self.cache
        if cache is None or replay is not None:
            return
        if not t.internal:
            cache.note_link(t.url, mode)
        elif 200 <= status < 300 and st.in_scope(final) and not step.refreshed:
            self._remember(cache, t, mode, response, ctype, html, truncated, step.ids, facts)

    async def _redirect_or_retry(
        self,
        t: Target,
        mode: int,
        response: Response,
        chain: tuple[RedirectHop, ...],
        status: int,
        step: _Step,
    ) -> AsyncIterator[Request]:
        """Answers judged before the body: a redirect followed, a retry, HEAD asked again
        as GET (``step.done`` then)."""
        st = self.state
        meta = response.meta
        if status in REDIRECT_STATUSES and b"Location" in response.headers:
            step.done = True
            for req in self._follow(t, mode, response, chain):
                yield req
            st.resolved += 1
            return
        if status in TRANSIENT_STATUSES and meta["sw_try"] < self.retries:
            wait = self._retry_wait(meta["sw_try"], response.headers.get(b"Retry-After"))
            if wait is not None:
                step.done = True
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
            step.done = True
            st.stats["get_fallbacks"] += 1
            st.resolved += 1
            yield self._request(t, FULL if t.fragments else SNIFF)

    async def _read_page(
        self,
        t: Target,
        mode: int,
        response: Response,
        chain: tuple[RedirectHop, ...],
        status: int,
        final: str,
        body: tuple[str, bool, bool, bool],
        replay: Fetched | None,
        facts: list[tuple[ParsedPage, bytes | None]],
        step: _Step,
    ) -> AsyncIterator[Request]:
        """An HTML body (or its replay): its facts into ``step``; a meta refresh followed
        like a redirect, an in-scope page parsed for its links."""
        st = self.state
        ctype, html, has_body, truncated = body
        resolved: tuple[Resolution, ...] | None = None
        encoded: bytes | None = None
        ids: frozenset[str] | None = None
        soft_404 = False
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
                step.done = True
                depth = response.meta["sw_depth"]
                args = (t, mode, final, REFRESH_STATUS, nxt, chain, ctype, depth, "GET")
                for req in self._follow_to(*args, answered=status):
                    yield req
                st.resolved += 1
                return
            step.refreshed, step.refresh_to = True, target_url(nxt) if nxt is not None else ""
        if parsed is not None:
            ids, soft_404 = parsed.ids, parsed.soft_404
        step.soft_404 = soft_404
        if ids is None:
            return
        ids = step.ids = st.shared_ids(ids)
        # Checked again after the parse: another response may have taken the page.
        if mode == PAGE and st.in_scope(final_base) and final_base not in st.parsed:
            if parsed is None:
                # A 304 stored without its page facts (it was parsed via another
                # URL then): fetch it in full.
                step.done = True
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

    def _probe(
        self,
        t: Target,
        response: Response,
        status: int,
        final: str,
        chain: tuple[RedirectHop, ...],
        ctype: str,
        replay: Fetched | None,
        step: _Step,
    ) -> Probe:
        """The target's answer, as the checks read it."""
        return Probe(
            url=t.url,
            status=status,
            final_url=final,
            chain=chain,
            content_type=ctype,
            soft_404=step.soft_404,
            ids=step.ids,
            head_bytes=(
                replay.head_bytes
                if replay is not None
                else None
                if response.request.method == "HEAD"
                else self.state.shared_head(response.body[:16])
            ),
            method=response.request.method,
            refresh_to=step.refresh_to,
        )

    async def _after_probe(
        self,
        t: Target,
        mode: int,
        response: Response,
        status: int,
        final: str,
        ctype: str,
        replay: Fetched | None,
        facts: list[tuple[ParsedPage, bytes | None]],
    ) -> AsyncIterator[Request]:
        """What a judged answer leads to: a PDF's links, a stylesheet's references, the
        replays waiting."""
        st = self.state
        meta = response.meta
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
