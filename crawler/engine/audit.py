"""Run one audit: crawl with Scrapy, judge with ``checks``, return a ``Report``."""

from __future__ import annotations

import datetime as dt
import gc
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from checks.evaluate import evaluate
from checks.models import LinkResult, Page, Report, RunInfo
from checks.policy import Policy
from crawler.app.processes import collector_paused, few_collections
from crawler.config import Config
from crawler.engine.scrapy_settings import ROBOTS_AGENT
from crawler.pages.refresh import dead_end_note
from crawler.pages.urls import resolve
from crawler.rerun.fetch_cache import FetchCache, profile_key
from crawler.rerun.revalidate import PassSettings, PendingRevalidation
from crawler.state.crawl_state import CrawlParams, CrawlState, Links
from crawler.state.memory import trim

#: Crawls of at least this many pages collect garbage right after the crawl (``crawl``).
COLLECT_AFTER_PAGES = 5_000


class AuditError(Exception):
    """The audit could not run (exit code 2): e.g. every start URL is unreachable."""


@dataclass(frozen=True)
class AuditOptions:
    as_of: dt.date
    progress: bool = False
    verbose: bool = False
    #: The history run this audit is recorded as: the re-run cache lives in the history
    #: database and is used only with it (None: no cache at all).
    cache_run: int | None = None
    #: ``--no-cache``: reuse nothing from earlier runs (still store what this run learns).
    no_cache: bool = False


def crawl_params(cfg: Config) -> CrawlParams:
    c = cfg.crawl
    return CrawlParams(
        start_urls=tuple(resolve(u, "").base for u in cfg.site.start_urls),
        scopes=cfg.effective_scopes(),
        exclude=cfg.site.exclude,
        max_pages=c.max_pages,
        max_depth=c.max_depth,
        timeout=c.timeout,
        retries=c.retries,
        max_retry_after=c.max_retry_after,
        max_redirects=c.max_redirects,
        check_external=c.check_external,
        check_fragments=cfg.links.check_fragments,
        max_page_bytes=c.max_page_bytes,
        max_pages_per_pattern=c.max_pages_per_pattern,
        max_path_segments=c.max_path_segments,
        max_refresh_delay=c.max_refresh_delay,
        pdf_max_bytes=cfg.links.pdf_max_bytes,
        parse_workers=None if c.parse_workers == "auto" else int(c.parse_workers),
    )


def pass_settings(cfg: Config) -> PassSettings:
    """The re-run pass asks as the crawl does (agent, limits, robots.txt)."""
    c = cfg.crawl
    return PassSettings(
        user_agent=c.user_agent,
        concurrency=c.concurrency,
        per_host=c.per_host_concurrency,
        timeout=c.timeout,
        obey_robots=c.obey_robots,
        robots_agent=ROBOTS_AGENT,
    )


def open_cache(cfg: Config, opts: AuditOptions) -> FetchCache | None:
    """The re-run cache for this audit (``crawler.rerun.fetch_cache``), or None without history."""
    if opts.cache_run is None:
        return None
    c = cfg.crawl
    profile = profile_key(
        site_name(cfg),
        {
            "scopes": list(cfg.effective_scopes()),
            "exclude": list(cfg.site.exclude),
            "check_external": c.check_external,
            "check_fragments": cfg.links.check_fragments,
            "max_page_bytes": c.max_page_bytes,
            "soft_404_phrases": list(cfg.links.soft_404_phrases),
            "user_agent": c.user_agent,
        },
    )
    return FetchCache(
        cfg.history.url or cfg.history.db,
        profile,
        opts.cache_run,
        max_age_days=cfg.links.cache_max_age,
        reuse=not opts.no_cache,
        password_env=cfg.history.password_env,
    )


def _new_state(cfg: Config, opts: AuditOptions, cache: FetchCache | None) -> CrawlState:
    """The crawl's state, with the sitemaps' URLs gathered if configured."""
    state = CrawlState(crawl_params(cfg), cfg.policy(), progress=opts.progress)
    if cfg.crawl.sitemaps or cfg.crawl.robots_sitemaps:
        from crawler.pages.sitemaps import gather

        state.sitemap = gather(cfg, state.in_scope, state.excluded)
        state.sitemap_due = True
    if cache is not None and cache.pass_done:  # asked by replay_unchanged already
        state.stats["revalidated"] = cache.revalidated
    return state


def _crawl_settings(cfg: Config, opts: AuditOptions) -> dict[str, Any]:
    """Scrapy's settings for this audit."""
    from crawler.engine.scrapy_settings import audit_settings

    c = cfg.crawl
    settings = audit_settings(
        user_agent=c.user_agent,
        obey_robots=c.obey_robots,
        concurrency=c.concurrency,
        per_host_concurrency=c.per_host_concurrency,
        delay=c.delay,
        timeout=c.timeout,
        max_page_bytes=c.max_page_bytes,
        max_crawl_delay=c.max_retry_after,
        verbose=opts.verbose,
    )
    # Always install Scrapy's root handler: without --verbose it is a NullHandler. With no
    # handler at all, Python's last-resort handler prints Scrapy's warnings and tracebacks
    # (a robots.txt that times out, a data loss) to stderr.
    settings["LOG_INSTALL_ROOT_HANDLER"] = True
    return settings


def _start_pass(cfg: Config, cache: FetchCache | None) -> PendingRevalidation | None:
    """The revalidation pass before a re-run, started (or None: no pass)."""
    if cache is not None and cache.started_pass is not None:
        # Started by replay_unchanged while it read the previous run back: finished by
        # the spider, like a pass started here.
        pending, cache.started_pass = cache.started_pass, None
        return pending
    if cache is not None and cache.reuse and cfg.crawl.delay <= 0 and not cache.pass_done:
        # Re-run: one cheap conditional request per stored URL before the crawl; what
        # is unchanged is then replayed without a Scrapy request (not with crawl.delay:
        # a polite crawl asks page by page, through Scrapy's slots). The pass runs in a
        # forked child while this process imports Scrapy and builds the crawler.
        return cache.start_revalidate(pass_settings(cfg))
    return None


def load_scrapy() -> None:
    """Import Scrapy, Twisted and the spider (~0.25 s) with the collector off (see
    ``crawl``). ``crawl`` does it anyway; ``crawler.app.run`` calls this earlier, while a
    child migrates the history's schema."""
    with collector_paused():
        import scrapy.crawler  # noqa: F401

        import crawler.engine.spider  # noqa: F401


def crawl(cfg: Config, opts: AuditOptions, cache: FetchCache | None = None) -> CrawlState:
    """Crawl the configured section in this process (one audit per process)."""
    state = _new_state(cfg, opts, cache)
    settings = _crawl_settings(cfg, opts)
    pending = _start_pass(cfg, cache)
    # Importing Scrapy and Twisted makes ~100,000 objects, none of them garbage: with the
    # collector on, its passes over them made the imports ~0.08 s slower here (0.66 s
    # against 0.58 s, medians of 4 alternating pairs).
    gc.disable()
    try:
        load_scrapy()  # with the collector already off, it stays off
        from scrapy.crawler import AsyncCrawlerProcess

        from crawler.engine.spider import AuditSpider

        # Reactorless (TWISTED_REACTOR_ENABLED=False in audit_settings): one asyncio loop
        # and an asyncio download handler (crawler/http/handler.py), markedly cheaper per
        # request than Twisted's.
        process = AsyncCrawlerProcess(settings)
    except BaseException:
        gc.enable()
        if pending is not None:
            pending.abort()
        raise
    few_collections()
    gc.enable()
    # The spider waits for the revalidation pass when it starts (after Scrapy's engine
    # is built, which overlaps with the pass too).
    process.crawl(AuditSpider, state=state, cache=cache, revalidation=pending)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        process.start()
    except BaseException:
        state.close()  # no report will read the reference spill
        raise
    finally:
        if pending is not None:
            pending.abort()  # the crawl failed before it started: stop the pass
        # Scrapy's handlers only ask its (now stopped) loop to shut down: left in place,
        # Ctrl-C and SIGTERM would be ignored while the reports of a big site are written.
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    # Scrapy's crawler, engine and spider refer to each other: on a big site collect them
    # now (the GC threshold above would keep them for the rest of the audit; 204 -> 188 MB
    # peak at 20,000 pages) and hand the freed space back. Not on small sites, where the
    # collection costs ~40 ms (PG manual) and memory is no concern.
    del process
    state.parsed = set()  # only the crawl asks which pages were parsed
    if len(state.pages) >= COLLECT_AFTER_PAGES:
        gc.collect()
    trim()
    if opts.progress:
        import sys

        sys.stderr.write("\r" + " " * 78 + "\r")
    return state


def unreachable_start(state: CrawlState) -> list[str]:
    """Messages for start URLs that could not be fetched at all."""
    out = []
    for url in state.settings.start_urls:
        t = state.targets.get(url)
        probe = t.probe if t else None
        if probe is None:
            out.append(f"{url}: no answer")
        elif probe.error:
            out.append(f"{url}: {probe.error}")
        elif probe.status is not None and probe.status >= 400:
            out.append(f"{url}: HTTP {probe.status}")
    return out


def build_report(
    cfg: Config, state: CrawlState, started: dt.datetime, finished: dt.datetime, as_of: dt.date
) -> Report:
    reasons = state.incomplete_reasons
    counts: dict[str, object] = {
        "requests": state.issued,
        "responses": state.responses,
        "unique_targets": len(state.targets),
        **dict(sorted(state.stats.items())),
        "not_crawled": dict(state.not_crawled),
        "traps": dict(list(state.traps.items())[:20]),
        "spider_errors": state.spider_errors[:20],
    }
    note = dead_end_note(state)
    if note:
        counts["notes"] = [note]
    if state.pdf_unreadable:
        counts["pdf_unreadable"] = dict(state.pdf_unreadable)
    if state.sitemap is not None:
        counts["sitemap"] = {**state.sitemap.stats(), "unlinked": len(state.unlinked)}
    links_checked = sum(1 for t in state.targets.values() if t.probe is not None)
    if state.big():
        # A big crawl: its targets and probes go to the spill file too, next to the
        # references (read back in order by every pass over the links).
        state.pack()
        trim()
    # The links are made again from the crawl state and its reference spill whenever
    # they are iterated (``Links``).
    return assemble_report(
        cfg,
        state.policy,
        state.pages,
        Links(state),
        started=started,
        finished=finished,
        as_of=as_of,
        counts=counts,
        links_checked=links_checked,
        start_urls=state.settings.start_urls,
        reasons=reasons,
        scopes=state.scopes,
        unlinked=state.unlinked,
    )


def assemble_report(
    cfg: Config,
    policy: Policy,
    pages: Sequence[Page],
    links: Sequence[LinkResult],
    *,
    started: dt.datetime,
    finished: dt.datetime,
    as_of: dt.date,
    counts: dict[str, object],
    links_checked: int,
    start_urls: tuple[str, ...],
    reasons: tuple[str, ...] = (),
    scopes: tuple[str, ...] | None = None,
    unlinked: Sequence[str] = (),
) -> Report:
    """The report of pages and links (crawled, or replayed from an earlier run)."""
    verdicts: dict[str, int] = {}

    def counted() -> Iterator[LinkResult]:  # one pass for the findings and the counts
        for link in links:
            v = link.verdict.value
            verdicts[v] = verdicts.get(v, 0) + 1
            yield link

    findings = evaluate(pages, counted(), policy, as_of, unlinked)
    seconds = max((finished - started).total_seconds(), 1e-6)
    stats: dict[str, object] = {
        "seconds": round(seconds, 3),
        "pages_per_second": round(len(pages) / seconds, 1),
        **counts,
        "verdicts": verdicts,
    }
    return Report(
        run=RunInfo(
            started_at=started,
            finished_at=finished,
            as_of=as_of,
            start_urls=start_urls,
            # With any a start URL's meta refresh added (crawler.pages.refresh).
            scopes=cfg.effective_scopes() if scopes is None else scopes,
            complete=not reasons,
            pages_crawled=len(pages),
            links_checked=links_checked,
            stats=stats,
            site=site_name(cfg),
            incomplete_reasons=reasons,
        ),
        pages=tuple(pages),
        links=links if isinstance(links, Links) else tuple(links),
        findings=findings,
    )


def may_replay(cfg: Config) -> bool:
    """Whether this audit's settings let ``replay_unchanged`` answer it from the previous
    run (the history decides whether there is one)."""
    c = cfg.crawl
    # A sitemap may list new pages while every stored one is unchanged.
    return cfg.history.replay and c.delay <= 0 and not (c.sitemaps or c.robots_sitemaps)


def replay_unchanged(
    cfg: Config, opts: AuditOptions, cache: FetchCache, started: dt.datetime, t0: float
) -> Report | None:
    """The report of the previous run, if the server shows the site unchanged since
    (:mod:`crawler.rerun.replay`); None: crawl. The pass's 304s stay in ``cache`` either way."""
    from sqlalchemy.exc import SQLAlchemyError

    from crawler.history.store import Store, StoreError
    from crawler.rerun import replay

    if not (cache.reuse and opts.cache_run is not None and may_replay(cfg)):
        return None
    few_collections()
    try:
        with Store.for_config(cfg) as store:
            source = store.replay_source(site_name(cfg), opts.cache_run, replay.replay_key(cfg))
            if source is None or cache.written_since(source):
                return None
            # The stored rows are asked about in a forked child while this process reads
            # the previous run back and asks the targets to confirm; if the run cannot be
            # replayed, the crawl finishes this pass (cache.started_pass).
            settings = pass_settings(cfg)
            cache.started_pass = pending = cache.start_revalidate(settings)
            pages, links, links_checked = store.snapshot(source)
    except (SQLAlchemyError, StoreError, OSError, ValueError, KeyError, TypeError):
        return None
    policy = cfg.policy()
    try:
        p = replay.plan(
            source,
            pages,
            links,
            links_checked,
            in_scope=cfg.effective_scopes(),
            cache=cache,
            policy=policy,
        )
    except replay.NotReplayable:
        return None
    confirmed = replay.ask_again(p, settings)
    cache.started_pass = None
    pending.finish()
    cache.pass_done = True
    fresh = cache.fresh  # the forked pass's 304s, kept for the crawl if it runs after all
    if not replay.holds(p, pending.rows, fresh, confirmed):
        return None
    finished = started + dt.timedelta(seconds=time.monotonic() - t0)
    asked = cache.revalidated + len(p.confirms)
    return assemble_report(
        cfg,
        policy,
        p.pages,
        p.links,
        started=started,
        finished=finished,
        as_of=opts.as_of,
        counts={
            "requests": asked,
            "responses": asked,
            "replayed_from_run": source,
            "revalidated": cache.revalidated,
            "not_modified": len(fresh),
            "confirmed": len(confirmed),
        },
        links_checked=p.links_checked,
        start_urls=crawl_params(cfg).start_urls,
    )


def run_audit(cfg: Config, opts: AuditOptions) -> Report:
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    cache = open_cache(cfg, opts)
    state: CrawlState | None = None
    try:
        if cache is not None:
            replayed = replay_unchanged(cfg, opts, cache, started, t0)
            if replayed is not None:
                return replayed
        state = crawl(cfg, opts, cache)
        if cache is not None:
            cache.flush()
            state.stats["cache_rows_written"] = cache.written
            if opts.no_cache:
                state.stats["cache_not_used"] = 1
        finished = started + dt.timedelta(seconds=time.monotonic() - t0)
        bad = unreachable_start(state)
        if bad and len(bad) == len(state.settings.start_urls):
            raise AuditError("start URL unreachable: " + "; ".join(bad))
        live = None
        if cache is not None:  # before build_report, which may move the targets to disk
            live = {u: state.targets[u].probe for u in cache.live_links if u in state.targets}
        report = build_report(cfg, state, started, finished, opts.as_of)
        if cache is not None:
            assert live is not None
            cache.finish(live, report.links, state.policy, complete=report.run.complete)
        return report
    except BaseException:
        if state is not None:
            state.close()  # the report is not made: its reference spill goes now
        raise
    finally:
        if cache is not None:
            cache.close()


def site_name(cfg: Config) -> str:
    """The site's name in history and reports: ``site.name`` or host + path of the start."""
    if cfg.site.name:
        return cfg.site.name
    if not cfg.site.start_urls:
        return ""
    p = urlsplit(cfg.site.start_urls[0])
    return f"{p.hostname}{p.path.rstrip('/')}"
