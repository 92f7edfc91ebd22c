"""What one crawl knows: link targets, their probes, pages, and the run's bookkeeping."""

from __future__ import annotations

import re
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, overload
from urllib.parse import urlsplit

from checks.models import LinkRef, LinkResult, Page, Verdict
from checks.policy import Policy
from checks.verdicts import Probe, is_pdf_type, judge, pdf_problem, permanent_target
from crawler.urls import resolve


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


class Target:
    """One link target (URL without fragment) and everyone who refers to it."""

    __slots__ = (
        "fragments",
        "host",
        "internal",
        "mode",
        "path_is_page",
        "path_is_pdf",
        "pdf_hint",
        "probe",
        "refs",
        "skip",
        "start",
        "url",
    )

    def __init__(self, url: str, internal: bool) -> None:
        self.url = url
        self.internal = internal
        #: Every reference as four string ids (``CrawlState.strings``): page, text, tag,
        #: fragment (``NO_FRAGMENT`` for none). 16 bytes a reference instead of a tuple
        #: of four strings (~150 bytes with the link text): see docs/performance.md.
        self.refs: array[int] = array("i")
        self.fragments = False
        try:
            parts = urlsplit(url) if "://" in url else None
            self.host = (parts.hostname or "") if parts else ""
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


#: Fragment id of a reference without ``#fragment``; ``ALL`` selects every reference.
NO_FRAGMENT = -1
ALL = -2


class PackedRefs(Sequence[LinkRef]):
    """``LinkResult.found_on`` read from a target's packed references: ``LinkRef``
    objects are made as they are iterated, not kept (a big site has ~20 references per
    page). Compares equal to a tuple of the same ``LinkRef`` items."""

    __slots__ = ("_frag", "_len", "_refs", "_strings")

    def __init__(self, strings: list[str], refs: array[int], frag: int, count: int) -> None:
        self._strings = strings
        self._refs = refs
        self._frag = frag
        self._len = count

    def __iter__(self) -> Iterator[LinkRef]:
        strings, refs, frag = self._strings, self._refs, self._frag
        for i in range(0, len(refs), 4):
            if frag == ALL or refs[i + 3] == frag:
                yield LinkRef(strings[refs[i]], strings[refs[i + 1]], strings[refs[i + 2]])

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> LinkRef: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[LinkRef, ...]: ...
    def __getitem__(self, index: int | slice) -> LinkRef | tuple[LinkRef, ...]:
        return tuple(self)[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (PackedRefs, tuple)):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (tuple, (tuple(self),))


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
        self._incomplete: list[str] = []
        self._exclude = [re.compile(p) for p in settings.exclude]
        self._scopes = settings.scopes
        #: Interned strings of every reference (pages, link texts, tags, fragments): a
        #: navigation link's page and text repeat across a site. ``_string_ids`` inverts it.
        self.strings: list[str] = []
        self._string_ids: dict[str, int] = {}

    def _sid(self, value: str) -> int:
        sid = self._string_ids.get(value)
        if sid is None:
            sid = self._string_ids[value] = len(self.strings)
            self.strings.append(value)
        return sid

    def add_ref(self, t: Target, page: str, text: str, tag: str, fragment: str | None) -> None:
        """Record that ``page`` links to ``t`` (with ``text``, from a ``tag`` element)."""
        get = self._string_ids.get  # inline lookups: this runs for every link of a site
        p = get(page)
        if p is None:
            p = self._sid(page)
        x = get(text)
        if x is None:
            x = self._sid(text)
        g = get(tag)
        if g is None:
            g = self._sid(tag)
        f = NO_FRAGMENT
        if fragment is not None:
            f = get(fragment)
            if f is None:
                f = self._sid(fragment)
        t.refs.extend((p, x, g, f))

    def target(self, url: str, internal: bool) -> Target:
        t = self.targets.get(url)
        if t is None:
            t = self.targets[url] = Target(url, internal)
        return t

    def in_scope(self, url: str) -> bool:
        return any(url.startswith(s) for s in self._scopes)

    def excluded(self, url: str) -> bool:
        return any(p.search(url) for p in self._exclude)

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

    def link_results(self) -> list[LinkResult]:
        """One result per unique URL (with fragment), fanned out to every reference."""
        out: list[LinkResult] = []
        policy = self.policy
        strings = self.strings
        for t in self.targets.values():
            counts = Counter(t.refs[3::4])
            one = len(counts) == 1
            groups: dict[str | None, PackedRefs] = {
                (None if fid == NO_FRAGMENT else strings[fid]): PackedRefs(
                    strings, t.refs, ALL if one else fid, n
                )
                for fid, n in counts.items()
            }
            if not groups and t.start:
                groups[None] = PackedRefs(strings, t.refs, ALL, 0)
            watched = policy.is_watched(t.url)
            if t.skip or t.probe is None:
                verdict, detail = Verdict.SKIPPED, t.skip or "limit"
                if t.skip == "malformed_url":
                    verdict = Verdict.BROKEN
                for frag, refs in groups.items():
                    url = t.url if frag is None else f"{t.url}#{frag}"
                    out.append(
                        LinkResult(
                            url,
                            verdict,
                            detail,
                            found_on=refs,
                            watched=watched,
                            internal=t.internal,
                        )
                    )
                continue
            probe = t.probe
            if probe.ids is None and probe.final_url:
                ids = self.page_ids.get(resolve(probe.final_url, "").base)
                if ids is None:
                    ids = self.page_ids.get(t.url)
                if ids is not None:
                    probe = _with_ids(probe, ids)
            pdf_link = t.pdf_hint or is_pdf_type(probe.content_type)
            problem = (pdf_problem(probe) or "") if pdf_link else ""
            for frag, refs in groups.items():
                verdict, detail = judge(probe, frag, policy)
                final = probe.final_url
                if verdict is Verdict.REDIRECT:
                    final = permanent_target(probe.chain, probe.final_url)
                url = t.url if frag is None else f"{t.url}#{frag}"
                out.append(
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
        return out


def _with_ids(probe: Probe, ids: frozenset[str]) -> Probe:
    return replace(probe, ids=ids)
