"""What one crawl knows: link targets, their probes, pages, and the run's bookkeeping."""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import chain, groupby, islice
from operator import itemgetter
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from checks.models import LinkRef, LinkResult, Page, Verdict
from checks.policy import Policy
from checks.soft_moved import soft_moved
from checks.verdicts import Probe, is_pdf_type, judge, pdf_problem, permanent_target
from crawler.pages.urls import resolve
from crawler.state.lazy_tuple import LazyTuple
from crawler.state.spill import RefSpill

if TYPE_CHECKING:
    from crawler.pages.sitemaps import SitemapSeeds


@dataclass(frozen=True)
class CrawlParams:
    """The crawl's own knobs (taken from ``Config.crawl`` and ``Config.site``)."""

    start_urls: tuple[str, ...]
    scopes: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    max_pages: int = 5000
    max_depth: int = 20
    timeout: float = 20.0
    retries: int = 2
    max_retry_after: float = 30.0
    max_redirects: int = 10
    check_external: bool = True
    check_fragments: bool = True
    max_page_bytes: int = 10_000_000
    max_pages_per_pattern: int = 50
    max_path_segments: int = 15
    max_refresh_delay: int = 3
    pdf_max_bytes: int = 20_000_000
    #: Parse worker processes; None: one per CPU, at most 4 (``parse_worker.worker_count``).
    parse_workers: int | None = None


class Target:
    """One link target (URL without fragment). Who refers to it is in the crawl's
    ``RefSpill`` under the target's number ``tid`` (its place in ``CrawlState.targets``)."""

    __slots__ = (
        "depth",
        "fragments",
        "host",
        "internal",
        "mode",
        "path_is_page",
        "path_is_pdf",
        "pdf_hint",
        "probe",
        "skip",
        "start",
        "stylesheet",
        "tid",
        "url",
    )

    def __init__(self, url: str, internal: bool, tid: int = 0) -> None:
        self.url = url
        self.internal = internal
        self.tid = tid
        #: For a page crawled: the fewest links from a start URL it was found at so far.
        self.depth = 0
        self.fragments = False
        try:
            parts = urlsplit(url) if "://" in url else None
            self.host = sys.intern(parts.hostname or "") if parts else ""
        except ValueError:
            parts, self.host = None, ""
        path = parts.path.lower() if parts else ""
        self.path_is_pdf = path.endswith(".pdf")
        #: The URL names a web page (…/x.html, …/dir/): link text saying "pdf" is a topic.
        self.path_is_page = path.endswith((".html", ".htm", "/"))
        self.pdf_hint = self.path_is_pdf
        self.mode = 0
        self.probe: Probe | None = None
        self.skip: str | None = None
        self.start = False
        #: An in-scope stylesheet: its body is read for references (crawler/pages/stylesheets.py).
        self.stylesheet = False


#: A target with more references than this reads them back from the spill each time its
#: ``found_on`` is iterated (``SpilledRefs``) instead of holding them while its results
#: are used: a navigation link is on every page of a site.
INLINE_REFS = 1000


class SpilledRefs(LazyTuple[LinkRef]):
    """``LinkResult.found_on`` of a much-referenced target, read from the ``RefSpill`` as
    it is iterated: ``LinkRef`` objects are made, not kept. Compares equal to (and hashes
    like) a tuple of the same ``LinkRef`` items; pickles as that tuple."""

    __slots__ = ("_any", "_frag", "_len", "_spill", "_tid")

    def __init__(
        self, spill: RefSpill, tid: int, fragment: str | None, any_fragment: bool, count: int
    ) -> None:
        self._spill = spill
        self._tid = tid
        self._frag = fragment
        self._any = any_fragment
        self._len = count

    def __iter__(self) -> Iterator[LinkRef]:
        for page, text, tag, _ in self._spill.refs(self._tid, self._frag, self._any):
            yield LinkRef(page, text, tag)

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return repr(tuple(self))


#: A crawl with at most this many link references keeps its link results once made (a
#: few MB): every report and the history iterate them, and a small site is audited
#: often. Bigger crawls make them again from the spill on every pass.
HOLD_REFS = 50_000


class Links(LazyTuple[LinkResult]):
    """``Report.links`` of a crawl: past ``HOLD_REFS`` references made again from the
    crawl state and its ``RefSpill`` each time it is iterated, never all held at once
    (``CrawlState.link_results``). ``len`` iterates once (then remembers). Compares equal
    to a tuple of the same results; pickles as that tuple."""

    __slots__ = ("_held", "_len", "_state")

    def __init__(self, state: CrawlState) -> None:
        self._state = state
        self._len: int | None = None
        self._held: tuple[LinkResult, ...] | None = None

    def __iter__(self) -> Iterator[LinkResult]:
        if self._held is None and not self._state.big():
            self._held = tuple(self._state.link_results())
            self._len = len(self._held)
        if self._held is not None:
            yield from self._held
            return
        n = 0
        for link in self._state.link_results():
            n += 1
            yield link
        self._len = n

    def __len__(self) -> int:
        if self._len is None:
            for _ in self:  # sets _len (and holds the results of a small crawl)
                pass
        assert self._len is not None
        return self._len

    def __repr__(self) -> str:
        return f"<Links of {self._state.settings.start_urls!r}>"

    def close(self) -> None:
        """Remove the crawl's spill file (the links cannot be read after this)."""
        self._state.close()


#: Distinct ``Probe.head_bytes`` values shared by ``CrawlState.shared_head``.
MAX_HEADS = 1000


class CrawlState:
    def __init__(self, settings: CrawlParams, policy: Policy, progress: bool = False) -> None:
        self.settings = settings
        self.policy = policy
        self.progress = progress
        self.targets: dict[str, Target] = {}
        self.pages: list[Page] = []
        self.parsed: set[str] = set()
        self.page_ids: dict[str, frozenset[str]] = {}
        self.pages_scheduled = 0
        self.issued = 0
        self.resolved = 0
        self.responses = 0
        self.stats: Counter[str] = Counter()
        self.not_crawled: Counter[str] = Counter()
        self.traps: dict[str, str] = {}
        self.spider_errors: list[str] = []
        #: PDFs whose links could not be read: URL -> why (``crawler.pages.pdf_fetch``).
        self.pdf_unreadable: dict[str, str] = {}
        self._incomplete: list[str] = []
        self._exclude = [re.compile(p) for p in settings.exclude]
        #: Any ``--exclude`` patterns at all (the spider's cheap test per link).
        self.exclude_patterns = bool(self._exclude)
        self._scopes = settings.scopes
        #: Each distinct set of page ids once (``shared_ids``).
        self._id_sets: dict[frozenset[str], frozenset[str]] = {}
        #: The first bytes of bodies (``Probe.head_bytes``), each once (``shared_head``).
        self._heads: dict[bytes, bytes] = {}
        #: Every link reference (page, text, tag, fragment), on disk: ~20 a page.
        self._spill: RefSpill | None = None
        #: The targets are in the spill, no longer in ``targets`` (``pack``).
        self._packed = False
        #: What the sitemaps offer (``crawler.pages.sitemaps.SitemapSeeds``: in-scope pages and
        #: their <lastmod>), seeded once the link crawl runs dry; None without sitemaps.
        self.sitemap: SitemapSeeds | None = None
        #: The sitemap pages no link had reached when they were seeded (``unlinked_page``).
        self.unlinked: list[str] = []
        #: The sitemap pages are still to be seeded
        #: (``crawler.engine.frontier.seed_sitemap_pages``).
        self.sitemap_due = False

    @property
    def spill(self) -> RefSpill:
        if self._spill is None:
            self._spill = RefSpill()
        return self._spill

    def shared_ids(self, ids: frozenset[str]) -> frozenset[str]:
        """``ids`` (the anchors of one page), or an equal set seen before: pages of one
        template share most of their ids, often all of them. Held by the page's probe
        and ``page_ids`` for the fragment checks, i.e. for every page of the site."""
        known = self._id_sets.get(ids)
        if known is None:
            known = frozenset(map(sys.intern, ids))  # "top", "content": once a site
            self._id_sets[known] = known
        return known

    def shared_head(self, head: bytes) -> bytes:
        """``head`` (a body's first bytes), or an equal one seen before: most pages of a
        site begin alike (``<!DOCTYPE html>``). Up to ``MAX_HEADS`` distinct ones."""
        known = self._heads.get(head)
        if known is not None:
            return known
        if len(self._heads) < MAX_HEADS:
            self._heads[head] = head
        return head

    def add_ref(self, t: Target, page: str, text: str, tag: str, fragment: str | None) -> None:
        """Record that ``page`` links to ``t`` (with ``text``, from a ``tag`` element)."""
        self.spill.add(t.tid, page, text, tag, fragment)

    def target(self, url: str, internal: bool) -> Target:
        t = self.targets.get(url)
        if t is None:
            t = self.targets[url] = Target(url, internal, len(self.targets))
        return t

    def pack(self) -> None:
        """After the crawl: move the targets with their probes to the spill and let go
        of them here (``link_results`` reads them back in order); ``targets`` and
        ``page_ids`` are empty afterwards. For crawls past ``HOLD_REFS`` references."""
        targets = self.targets.values()
        for t in targets:
            if t.probe is not None:
                t.probe = self._probe_with_ids(t)
        self.spill.pack_targets(targets)
        self.targets = {}
        self.page_ids = {}
        self._id_sets = {}
        self._heads = {}
        self._packed = True

    def _probe_with_ids(self, t: Target) -> Probe:
        """``t.probe`` with the ids of the page it led to (fragment checks)."""
        probe = t.probe
        assert probe is not None
        if probe.ids is None and probe.final_url:
            ids = self.page_ids.get(resolve(probe.final_url, "").base)
            if ids is None:
                ids = self.page_ids.get(t.url)
            if ids is not None:
                probe = _with_ids(probe, ids)
        return probe

    def big(self) -> bool:
        """More than ``HOLD_REFS`` link references: the links are not held (``Links``)
        and the targets may go to the spill after the crawl (``pack``)."""
        return self._spill is not None and len(self._spill) > HOLD_REFS

    def close(self) -> None:
        """Remove the reference spill (``link_results`` has nothing to read after this)."""
        if self._spill is not None:
            self._spill.close()

    def in_scope(self, url: str) -> bool:
        return any(url.startswith(s) for s in self._scopes)

    @property
    def scopes(self) -> tuple[str, ...]:
        """The crawl's scopes: the configured ones and any ``add_scope`` added."""
        return self._scopes

    def add_scope(self, prefix: str) -> None:
        """Crawl under ``prefix`` too (a start URL's meta refresh leads there)."""
        if not self.in_scope(prefix):
            self._scopes = (*self._scopes, prefix)
            self.stats["scopes_added_by_refresh"] += 1

    def excluded(self, url: str) -> bool:
        return any(p.search(url) for p in self._exclude)

    def excludes_fragment(self, base: str, fragment: str) -> bool:
        """Whether ``--exclude`` leaves out ``base#fragment`` although not ``base``: the
        patterns see the whole URL as written, with its fragment (``#/route``)."""
        return self.excluded(f"{base}#{fragment}") and not self.excluded(base)

    def incomplete_reason(self, reason: str) -> None:
        if reason not in self._incomplete:
            self._incomplete.append(reason)

    def trap(self, url: str, why: str) -> None:
        self.stats["trap_urls"] += 1
        if len(self.traps) < 100:
            self.traps.setdefault(url, why)
        self.incomplete_reason("crawl trap: " + why)

    def checked(self) -> int:
        return sum(1 for t in self.targets.values() if t.probe is not None)

    @property
    def incomplete_reasons(self) -> tuple[str, ...]:
        reasons = list(self._incomplete)
        unchecked = self.stats["trap_links_unchecked"]
        if unchecked:
            reasons.append(f"{unchecked} links into crawl traps not checked")
        unresolved = self.issued - self.resolved
        if unresolved:
            reasons.append(f"{unresolved} requests never answered")
        missing = sum(1 for t in self.targets.values() if t.probe is None and not t.skip)
        if missing:
            reasons.append(f"{missing} link targets not checked")
        return tuple(reasons)

    def link_results(self) -> Iterator[LinkResult]:
        """One result per unique URL (with fragment), fanned out to every reference, in
        the order the targets were found; made afresh from the spill on every call."""
        spill = self._spill
        targets: Iterator[Target] = iter(self.targets.values())
        if self._packed:
            assert spill is not None
            targets = spill.packed_targets()
        scan = groupby(spill.targets(), key=itemgetter(0)) if spill is not None else ()
        # Results that are kept (``Links`` of a small crawl) share their strings: a page
        # links to ~20 targets, a navigation text repeats on every page.
        shared: dict[str, str] | None = None if self.big() else {}
        for tid, rows in scan:
            for t in targets:
                if t.tid == tid:
                    break
                if t.start:  # a start URL nobody links to
                    yield from self._results(t, {None: ()})
            yield from self._results(t, self._groups(t, rows, shared))
        for t in targets:
            if t.start:
                yield from self._results(t, {None: ()})

    def _groups(
        self,
        t: Target,
        rows: Iterator[tuple[int, str, str, str, str | None]],
        shared: dict[str, str] | None = None,
    ) -> dict[str | None, Sequence[LinkRef]]:
        """A target's references by fragment (in the order each fragment was first seen):
        tuples, or ``SpilledRefs`` past ``INLINE_REFS`` references."""
        kept = list(islice(rows, INLINE_REFS + 1))
        if len(kept) > INLINE_REFS:
            counts: dict[str | None, int] = {}
            for row in chain(kept, rows):
                frag = row[4]
                counts[frag] = counts.get(frag, 0) + 1
            assert self._spill is not None
            spill, one = self._spill, len(counts) == 1
            return {f: SpilledRefs(spill, t.tid, f, one, n) for f, n in counts.items()}
        groups: dict[str | None, list[LinkRef]] = {}
        same = shared.setdefault if shared is not None else None
        for _, p, x, g, f in kept:
            refs = groups.get(f)
            if refs is None:
                refs = groups[f] = []
            if same is not None:
                p, x, g = same(p, p), same(x, x), same(g, g)
            refs.append(LinkRef(p, x, g))
        return {f: tuple(refs) for f, refs in groups.items()}

    def _results(
        self, t: Target, groups: dict[str | None, Sequence[LinkRef]]
    ) -> Iterator[LinkResult]:
        policy = self.policy
        watched = policy.is_watched(t.url)
        if t.skip or t.probe is None:
            verdict, detail = Verdict.SKIPPED, t.skip or "limit"
            if t.skip == "malformed_url":
                verdict = Verdict.BROKEN
            for frag, refs in groups.items():
                url = t.url if frag is None else f"{t.url}#{frag}"
                yield LinkResult(
                    url,
                    verdict,
                    detail,
                    found_on=refs,
                    watched=watched,
                    internal=t.internal,
                )
            return
        probe = self._probe_with_ids(t)
        pdf_link = t.pdf_hint or is_pdf_type(probe.content_type)
        problem = (pdf_problem(probe) or "") if pdf_link else ""
        for frag, refs in groups.items():
            verdict, detail = judge(probe, frag, policy)
            if probe.chain and not t.internal:
                verdict, detail = soft_moved(
                    verdict,
                    detail,
                    url=t.url,
                    chain=probe.chain,
                    final_url=probe.final_url,
                    internal=False,
                    policy=policy,
                )
            final = probe.final_url
            if verdict is Verdict.REDIRECT:
                final = permanent_target(probe.chain, probe.final_url) or probe.refresh_to
            url = t.url if frag is None else f"{t.url}#{frag}"
            yield (
                LinkResult(
                    url,
                    verdict,
                    detail,
                    status=probe.status,
                    final_url=final,
                    redirect_chain=probe.chain,
                    content_type=probe.content_type,
                    found_on=refs,
                    pdf_link=pdf_link,
                    pdf_magic=(
                        probe.head_bytes.startswith(b"%PDF-")
                        if pdf_link and probe.head_bytes is not None
                        else None
                    ),
                    watched=watched,
                    internal=t.internal,
                    pdf_problem=problem,
                )
            )


def _with_ids(probe: Probe, ids: frozenset[str]) -> Probe:
    return replace(probe, ids=ids)
