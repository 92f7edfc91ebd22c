"""The re-run cache: what earlier audits of a site learnt, reused by the next one.

Two tables in the history database (``crawler.history``; their rows are read and written
by ``crawler.history.fetch_cache_db``, on SQLite or PostgreSQL):

* ``fetch_cache``: per in-scope URL and probe mode, the validators (``ETag``,
  ``Last-Modified``) of the last 2xx answer and the facts taken from its body (status,
  content type, first bytes, ids, soft-404 flag and, for crawled pages, title, review date
  and every link as (href, text, tag)), zlib-compressed JSON. A re-run sends
  ``If-None-Match``/``If-Modified-Since``; a 304 replays the facts through the spider's
  own code path, so the crawl continues through unchanged pages without a body or a parse.
* ``link_cache``: per outside target, the last probe that was judged ``ok`` or a permanent
  redirect to an ``ok`` page, with the time it was made. A re-run reuses it while younger
  than ``links.cache_max_age`` days; anything broken, unverified or transient last time has
  no row (a bad verdict deletes it) and is checked again; watched targets are never reused.

Rows are keyed by a *profile*: the site plus every setting the facts depend on (scopes,
exclusions, fragment checks, page size cap, soft-404 phrases, user agent, this module's
``CACHE_VERSION``), so a run with other settings starts afresh. Rows are written only for
answers actually received (in batches during the crawl, so a crash keeps what was
learnt and nothing else); a run never reuses rows it wrote itself. Every cache failure is
swallowed: the audit then simply fetches.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from checks.freshness import ReviewDate
from checks.models import LinkResult, RedirectHop, Verdict
from checks.policy import Policy
from checks.verdicts import Probe, judge
from crawler.history import engine as engines
from crawler.history.fetch_cache_db import FetchCacheDB
from crawler.pages.extract import ParsedPage
from crawler.rerun.revalidate import (
    PassSettings,
    PendingRevalidation,
)

if TYPE_CHECKING:
    pass

#: Bump when the spider extracts facts differently (rows of older versions are ignored).
#: 2: pages with a meta refresh are no longer stored (their answer is not replayed).
CACHE_VERSION = 2
_BATCH = 200
#: Database failures the cache swallows (the audit then simply fetches).
_DB_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, OSError, ValueError)
#: ... and stored rows that cannot be read back.
_PROBE_ERRORS: tuple[type[BaseException], ...] = (*_DB_ERRORS, KeyError, TypeError)
_FACTS_ERRORS: tuple[type[BaseException], ...] = (*_PROBE_ERRORS, zlib.error)
_GOOD = (Verdict.OK, Verdict.REDIRECT)


def profile_key(site: str, settings: dict[str, Any]) -> str:
    """The cache profile of a site under ``settings`` (JSON-able values)."""
    blob = json.dumps(
        {"v": CACHE_VERSION, "site": site, **settings}, sort_keys=True, ensure_ascii=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Fetched:
    """One 2xx answer, as a 304 replays it."""

    status: int
    content_type: str
    method: str
    html: bool
    has_body: bool
    truncated: bool
    head_bytes: bytes | None
    ids: frozenset[str] | None
    soft_404: bool
    #: For a crawled page, what its body said (title, review date, links).
    page: ParsedPage | None
    #: ``encode_fetched`` of this answer, when the parse worker made it already.
    encoded: bytes | None = field(default=None, compare=False, repr=False)


def page_json(p: ParsedPage) -> str:
    """What the cache stores of a crawled page's facts (title, review date, ``<base>``,
    links), as JSON; ``decode_fetched`` reads it back."""
    review = p.review
    return json.dumps(
        [
            p.title,
            review.date.isoformat() if review else None,
            review.source if review else None,
            p.base_url,
            [list(x) for x in p.links],
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def encode_fetched(f: Fetched) -> bytes:
    if f.encoded is not None:
        return f.encoded
    doc: dict[str, Any] = {
        "s": f.status,
        "ct": f.content_type,
        "m": f.method,
        "h": f.html,
        "b": f.has_body,
        "t": f.truncated,
        "hb": None if f.head_bytes is None else f.head_bytes.decode("latin-1"),
        "ids": None if f.ids is None else sorted(f.ids),
        "s4": f.soft_404,
    }
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    if f.page is not None:
        text = f'{text[:-1]},"p":{page_json(f.page)}}}'
    # Level 1: encoding the PostgreSQL manual's 1,169 records takes 58.9 ms against
    # 67.7 ms at level 6 (parse workers' CPU, during the crawl) for 5 % more bytes
    # (640,380 against 609,796).
    return zlib.compress(text.encode(), 1)


def decode_fetched(blob: bytes) -> Fetched:
    doc = json.loads(zlib.decompress(blob))
    hb = doc["hb"]
    ids = None if doc["ids"] is None else frozenset(doc["ids"])
    page = None
    if "p" in doc:
        title, review, source, base, links = doc["p"]
        page = ParsedPage(
            ids or frozenset(),
            doc["s4"],
            title,
            ReviewDate(dt.date.fromisoformat(review), source) if review else None,
            base,
            tuple((h, x, g) for h, x, g in links),
        )
    return Fetched(
        status=doc["s"],
        content_type=doc["ct"],
        method=doc["m"],
        html=doc["h"],
        has_body=doc["b"],
        truncated=doc["t"],
        head_bytes=None if hb is None else hb.encode("latin-1"),
        ids=ids,
        soft_404=doc["s4"],
        page=page,
    )


def _probe_json(p: Probe) -> str:
    return json.dumps(
        {
            "s": p.status,
            "f": p.final_url,
            "c": [[h.url, h.status] for h in p.chain],
            "ct": p.content_type,
            "s4": p.soft_404,
            "ids": None if p.ids is None else sorted(p.ids),
            "hb": None if p.head_bytes is None else p.head_bytes.decode("latin-1"),
            "m": p.method,
            "r": p.refresh_to,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _probe_from_json(url: str, text: str) -> Probe:
    d = json.loads(text)
    return Probe(
        url=url,
        status=d["s"],
        final_url=d["f"],
        chain=tuple(RedirectHop(u, s) for u, s in d["c"]),
        content_type=d["ct"],
        soft_404=d["s4"],
        ids=None if d["ids"] is None else frozenset(d["ids"]),
        head_bytes=None if d["hb"] is None else d["hb"].encode("latin-1"),
        method=d["m"],
        refresh_to=d.get("r", ""),
    )


#: Run the revalidation pass in a forked child (``FetchCache.start_revalidate``) while the
#: audit process imports Scrapy and builds its crawler; False runs it in-process.
FORK_REVALIDATE = hasattr(os, "fork")


def _ts(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FetchCache:
    """The cache as one audit sees it. ``reuse=False`` (``--no-cache``) reads nothing and
    still writes what this run learns, so the next run can use it."""

    def __init__(
        self,
        path: str | Path,
        profile: str,
        run_id: int,
        *,
        max_age_days: int,
        reuse: bool = True,
        now: dt.datetime | None = None,
        password_env: str = "",
    ) -> None:
        self.profile = profile
        self.run_id = run_id
        self.reuse = reuse
        self.max_age_days = max_age_days
        now = now or dt.datetime.now(dt.UTC)
        self._now = _ts(now)
        self._oldest = _ts(now - dt.timedelta(days=max_age_days))
        self._pending: list[dict[str, Any]] = []
        #: Outside targets probed live this run: URL -> mode of the probe they hold.
        self.live_links: dict[str, int] = {}
        #: (URL, mode) answered 304 by the revalidation pass before the crawl
        #: (``revalidate``): the spider replays them without a request of its own.
        self.fresh: set[tuple[str, int]] = set()
        self.revalidated = 0
        #: Whether ``fresh`` already holds the pass's answers (the crawl asks no more).
        self.pass_done = False
        #: A pass started before the crawl was decided on (``crawler.rerun.replay``), for the
        #: crawl to finish if it runs after all.
        self.started_pass: PendingRevalidation | None = None
        self.written = 0
        #: (URL, mode) whose stored answer this run replayed (a 304 to its validators).
        self.replayed: set[tuple[str, int]] = set()
        self.failed = ""
        self._db: FetchCacheDB | None = None
        #: Whether an earlier run stored anything to reuse (a first run asks nothing).
        self._earlier = False
        try:
            self._db = FetchCacheDB(
                path, profile, run_id, password_env=password_env or engines.DEFAULT_PASSWORD_ENV
            )
            self._earlier = reuse and self._db.earlier()
        except _DB_ERRORS as e:
            self._fail(e)

    def _fail(self, e: BaseException) -> None:
        self.failed = f"{type(e).__name__}: {e}"[:200]
        if self._db is not None:
            self.failed = engines.scrub(self.failed, self._db.target)
        self._pending.clear()
        if self._db is not None:
            with contextlib.suppress(*_DB_ERRORS):
                self._db.close()
        self._db = None

    # -- pages and other in-scope URLs --------------------------------------------------

    def validators(self, url: str, mode: int) -> tuple[str, str] | None:
        """(ETag, Last-Modified) stored for ``url`` fetched in ``mode`` by an earlier run.

        Asked for every in-scope request: a first run (nothing stored) skips the query,
        later ones read all the validators once."""
        if not self._earlier or self._db is None:
            return None
        try:
            return self._db.validators(url, mode)
        except _DB_ERRORS as e:
            self._fail(e)
            return None

    def stored(self) -> list[tuple[str, int, str, str]]:
        """(URL, mode, ETag, Last-Modified) of every row an earlier run stored."""
        if not self._earlier or self._db is None:
            return []
        try:
            return self._db.stored()
        except _DB_ERRORS as e:
            self._fail(e)
            return []

    def written_since(self, run_id: int) -> bool:
        """Whether a run after ``run_id`` (not this one) stored rows for the profile:
        then the cache knows things that run's report does not. True on failure."""
        if self._db is None:
            return True
        try:
            return self._db.written_since(run_id)
        except _DB_ERRORS as e:
            self._fail(e)
            return True

    def revalidate(self, settings: PassSettings) -> None:
        """:meth:`start_revalidate` run to its end in this process (no child)."""
        self.start_revalidate(settings, fork=False).finish()

    def start_revalidate(self, settings: PassSettings, fork: bool = True) -> PendingRevalidation:
        """Ask the server about every stored URL at once, before the crawl (conditional
        requests with a small client (crawler.http.client): a fraction of a Scrapy request's cost).
        What answers 304 goes into ``fresh``; anything else is left to the crawl. With
        ``obey_robots``, each host's robots.txt is read first: a host that asks for a
        Crawl-delay or request rate, or whose robots.txt cannot be read, is left to the
        crawl's polite slots, and pages it disallows are not asked about.

        With ``fork`` (and ``FORK_REVALIDATE``) the pass runs in a forked child, so the
        caller can do other work meanwhile (the audit imports Scrapy: ~0.4 s of CPU on the
        second core); the answers arrive with ``finish()`` on the returned object. The
        child uses no database connection: the stored rows are read here, before the fork."""
        return PendingRevalidation(self, self.stored(), settings, fork=fork and FORK_REVALIDATE)

    def fetched(self, url: str, mode: int) -> Fetched | None:
        """The facts to replay for a 304 answer to ``url`` in ``mode``."""
        if self._db is None:
            return None
        try:
            facts = self._db.facts(url, mode)
            if facts is None:
                return None
            f = decode_fetched(facts)
            self.replayed.add((url, mode))
            return f
        except _FACTS_ERRORS as e:
            self._fail(e)
            return None

    def record(self, url: str, mode: int, etag: str, last_modified: str, f: Fetched) -> None:
        """Remember a 2xx answer that carried validators (written in batches)."""
        if self._db is None:
            return
        self._pending.append(
            {
                "profile": self.profile,
                "url": url,
                "mode": mode,
                "run_id": self.run_id,
                "fetched_at": self._now,
                "etag": etag,
                "last_modified": last_modified,
                "facts": encode_fetched(f),
            }
        )
        if len(self._pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if self._db is None or not self._pending:
            return
        rows, self._pending = self._pending, []
        try:
            self._db.put_fetched(rows)
            self.written += len(rows)
        except _DB_ERRORS as e:
            self._fail(e)

    # -- outside links ------------------------------------------------------------------

    def cached_link(self, url: str, needed: int) -> Probe | None:
        """A good probe of ``url`` younger than the max age, as strong as ``needed``."""
        if not self.reuse or self.max_age_days <= 0 or self._db is None:
            return None
        try:
            stored = self._db.probe(url, needed, self._oldest)
            return _probe_from_json(url, stored) if stored else None
        except _PROBE_ERRORS as e:
            self._fail(e)
            return None

    def note_link(self, url: str, mode: int) -> None:
        self.live_links[url] = mode

    def finish(
        self,
        probes: dict[str, Probe | None],
        links: Iterable[LinkResult],
        policy: Policy,
        complete: bool = False,
    ) -> None:
        """After the report: store the outside probes made live this run that were good,
        and drop the rows of every outside target that is not good now. After a
        ``complete`` crawl, also drop the stored answers of earlier runs this one neither
        fetched again nor replayed: pages gone from the site, or no longer answered with
        validators (each would cost every later run's pass a request, for nothing)."""
        self.flush()
        if self._db is None:
            return
        bad = set()
        for link in links:
            if not link.internal and (link.verdict not in _GOOD or link.pdf_problem):
                bad.add(link.url.partition("#")[0])
        good = []
        for url, mode in self.live_links.items():
            p = probes.get(url)
            if p is None or url in bad or policy.is_watched(url):
                continue
            if judge(p, None, policy)[0] in _GOOD:
                good.append(
                    {
                        "profile": self.profile,
                        "url": url,
                        "mode": mode,
                        "run_id": self.run_id,
                        "checked_at": self._now,
                        "probe": _probe_json(p),
                    }
                )
        try:
            self._db.finish_links(sorted(bad), good, set(self.replayed) if complete else None)
            self.written += len(good)
        except _DB_ERRORS as e:
            self._fail(e)

    def close(self) -> None:
        if self.started_pass is not None:
            self.started_pass.abort()
            self.started_pass = None
        if self._db is not None:
            with contextlib.suppress(*_DB_ERRORS):
                self._db.close()
            self._db = None
