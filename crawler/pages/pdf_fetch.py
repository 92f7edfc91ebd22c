"""The spider's side of links inside PDFs: which PDFs are downloaded in full, and what
their links become.

A PDF link is normally only sniffed (its first ``SNIFF_BYTES``, enough to see ``%PDF-``).
A PDF that is *read* is downloaded up to ``links.pdf_max_bytes`` instead, and its URI link
annotations (``crawler.pages.pdf_links``, in a child process) are taken like a page's links,
found on ``<pdf url>#page=N`` (the PDF open parameter of RFC 8118, which opens the PDF at
that page) with the text drawn over the link, tag ``pdf``. They are checked, never crawled:
``pdf`` is not a crawling tag, so an in-scope target is checked as an ``<img>`` is.

Read are: every PDF in scope the audit downloads (a ``.pdf`` link, a link whose text says
PDF, or a crawled URL that answers ``application/pdf``), and every PDF linked from a page
in scope. An outside PDF first found inside another PDF is only sniffed (a chain of outside
PDFs is no crawl of this site's). Only GET answers with status < 300 whose body begins
with ``%PDF-`` are read; an answer that says it is not a PDF (HTML, text) is cut at the
usual cap as soon as its headers come.

The re-run cache (``crawler.rerun.fetch_cache``) keeps a PDF in scope answered with validators
(ETag, Last-Modified) as it keeps a page: its links (or its problem) are stored as the
answer's facts (``stored_facts``), and a PDF answered 304 next time, or found unchanged by
the revalidation pass, gives its stored links without a download. An outside PDF is read
on every run (the cache keeps outside links' verdicts, not their bodies).

A PDF that cannot be read is noted in ``CrawlState.pdf_unreadable`` (URL -> ``encrypted``,
``corrupt``, ``timeout`` or ``too_big``), the report's ``run.stats.pdf_unreadable``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from checks.verdicts import PDF_MAGIC, is_pdf_type
from crawler.pages.extract import ParsedPage
from crawler.pages.pdf_links import PdfLink, PdfReader, PdfReading
from crawler.pages.urls import resolve
from crawler.rerun.fetch_cache import Fetched
from crawler.state.crawl_state import CrawlState, Target

#: Content types a PDF may be served as (besides ``application/pdf``): read as sniffed.
_MAYBE_PDF = ("", "application/octet-stream", "binary/octet-stream", "application/x-pdf")
#: PDFs whose problem the report names (the count is in ``stats.pdf_unreadable_total``).
MAX_NOTES = 100

#: ``AuditSpider._link``: (page URL, depth, href, text, tag, resolution) -> request.
LinkFn = Callable[[str, int, str, str, str, Any], Any]


class PdfLinks:
    def __init__(self, state: CrawlState) -> None:
        self.state = state
        self.max_bytes = state.settings.pdf_max_bytes
        #: Outside targets first found inside a PDF (their URLs): not read.
        self._from_pdf: set[str] = set()
        #: The child process that reads them (started at the first PDF).
        self.reader = PdfReader()
        #: PDFs whose links were taken, by final URL (two links redirecting to one PDF
        #: take its links once), with its reading as stored (``stored_facts``).
        self._read: dict[str, asyncio.Future[ParsedPage]] = {}

    def reads(self, t: Target) -> bool:
        """Whether the PDF link ``t`` is downloaded in full and read."""
        return self.max_bytes > 0 and t.pdf_hint and (t.internal or t.url not in self._from_pdf)

    def on_request(self, t: Target, meta: dict[str, Any]) -> None:
        """A GET of the PDF link ``t`` (a sniff or full probe): raise its cap to read it.
        ``meta["sw_pdf"]`` keeps the probe's own cap."""
        if self.reads(t):
            meta["sw_pdf"] = cap = meta.get("sw_cap", 0)
            meta["sw_cap"] = max(cap, self.max_bytes)

    def again(self, meta: dict[str, Any], page: bool) -> None:
        """``meta`` of a retry: what the first answer's headers changed is undone."""
        if meta.pop("sw_pdf_skip", None) is not None and not page:
            meta["sw_cap"] = max(meta["sw_pdf"], self.max_bytes)

    def on_page_headers(self, meta: dict[str, Any], url: str, ctype: str, headers: Any) -> None:
        """A crawled page answers with something other than HTML (cut at ``SNIFF_BYTES``,
        in ``meta["sw_cap"]``): read it all if it is a PDF in scope."""
        if self.max_bytes > 0 and is_pdf_type(ctype) and self.state.in_scope(url):
            meta["sw_pdf"] = meta["sw_cap"]
            meta["sw_cap"] = self.max_bytes
            self.on_headers(meta, headers)

    def on_headers(self, meta: dict[str, Any], headers: Any) -> None:
        """The headers of a PDF read: back to the probe's cap when the answer is not a
        PDF, or when it says it is bigger than ``pdf_max_bytes`` (noted ``too_big``)."""
        ctype = (headers.get(b"Content-Type") or b"").decode("latin-1")
        kind = ctype.split(";", 1)[0].strip().lower()
        length = headers.get(b"Content-Length") or b""
        if not is_pdf_type(ctype) and kind not in _MAYBE_PDF:
            meta["sw_pdf_skip"] = "not_pdf"
        elif length.isdigit() and int(length) > self.max_bytes:
            meta["sw_pdf_skip"] = "too_big"
        else:
            return
        meta["sw_cap"] = meta["sw_pdf"]

    async def follow(
        self,
        t: Target,
        response: Any,
        status: int,
        replay: Fetched | None,
        facts: list[tuple[ParsedPage, bytes | None]],
        link: LinkFn,
    ) -> list[Any]:
        """Read the PDF ``response`` of ``t`` and take its links (``link``, the spider's
        ``_link``); the requests they call for. A 304 (``replay``) takes the links its
        stored answer kept; a fresh reading goes to ``facts`` for the re-run cache."""
        if replay is not None:
            if replay.html or replay.page is None:
                return []
            return self.replay(t, response.url, replay.page, link)
        meta = response.meta
        body: bytes = response.body
        skip = meta.get("sw_pdf_skip")
        if status >= 300 or skip == "not_pdf" or response.request.method != "GET":
            return []
        if PDF_MAGIC not in body[:1024]:
            return []
        url = response.url
        known = self._read.get(url)
        if known is not None:  # read (or being read) for another link: its facts only
            facts.append((await known, None))
            return []
        done = self._read[url] = asyncio.get_running_loop().create_future()
        if skip == "too_big" or meta.get("sw_truncated"):
            reading = PdfReading(problem="too_big")
        else:
            try:
                reading = await self.reader.read(body)
            except BaseException:
                done.set_result(stored_facts(PdfReading(problem="corrupt")))
                raise
            if not reading.problem:
                self.state.stats["pdfs_read"] += 1
        done.set_result(stored_facts(reading))
        facts.append((done.result(), None))
        return self._take(t, url, reading, link)

    def replay(self, t: Target, url: str, page: ParsedPage, link: LinkFn) -> list[Any]:
        """The links of a PDF not modified since the run that read it (its stored facts)."""
        if url in self._read:
            return []
        done = self._read[url] = asyncio.get_running_loop().create_future()
        done.set_result(page)
        self.state.stats["pdfs_not_modified"] += 1
        return self._take(t, url, read_facts(page), link)

    def _take(self, t: Target, pdf_url: str, reading: PdfReading, link: LinkFn) -> list[Any]:
        st = self.state
        if reading.problem:
            self._note(pdf_url, reading.problem)
            return []
        base = resolve(pdf_url, reading.base).base if reading.base else pdf_url
        base = base.split("#", 1)[0]
        out = []
        for x in reading.links:
            r = resolve(base, x.uri)
            if r.base not in st.targets and not st.in_scope(r.base):
                self._from_pdf.add(r.base)
            joined = (r.base, r.fragment, r.skip)
            req = link(f"{pdf_url}#page={x.page}", t.depth, x.uri, x.text, "pdf", joined)
            if req is not None:
                out.append(req)
        st.stats["pdf_links"] += len(reading.links)
        if reading.dropped:
            st.stats["pdf_links_dropped"] += reading.dropped
        return out

    def close(self) -> None:
        """The crawl is over: stop the reader's child."""
        self.reader.close()

    def _note(self, url: str, problem: str) -> None:
        st = self.state
        st.stats["pdf_unreadable_total"] += 1
        if len(st.pdf_unreadable) < MAX_NOTES:
            st.pdf_unreadable.setdefault(url, problem)


def stored_facts(reading: PdfReading) -> ParsedPage:
    """A PDF's reading as the re-run cache stores an answer's facts (``Fetched.page`` of
    an answer that is not HTML): each link as (URI, text, page number), the ``/URI /Base``
    as the base URL, the problem (if any) as the title."""
    links = tuple((x.uri, x.text, str(x.page)) for x in reading.links)
    return ParsedPage(frozenset(), False, reading.problem, None, reading.base, links)


def read_facts(page: ParsedPage) -> PdfReading:
    """``stored_facts`` read back."""
    links = []
    for uri, text, number in page.links:
        if number.isdigit():
            links.append(PdfLink(int(number), uri, text))
    return PdfReading(tuple(links), page.base_url, page.title)
