"""Scrapy's RobotsTxtMiddleware with its waiters fixed and ``Crawl-delay`` honoured.

In Scrapy 2.19, every request that arrives while a host's robots.txt is still being
fetched awaits the same Deferred; the first waiter consumes its result and the rest get
``None``, i.e. "no robots.txt", and are let through. Here the first request for a host
fetches robots.txt through Scrapy's public ``robot_parser`` and every later one awaits
this middleware's own future for that host, which gives each waiter the same parser.

Scrapy ignores ``Crawl-delay``. Here, once a host's robots.txt is parsed, its Crawl-delay
for our user agent becomes the download delay of that host's download slot (never lower
than ``DOWNLOAD_DELAY``, never higher than the Scrapy setting ``SITEWATCH_MAX_CRAWL_DELAY``
(not an environment variable: crawler.engine.scrapy_settings sets it from the config's
``crawl.max_retry_after``, the longest a server may make us wait).

A robots.txt that cannot be fetched (timeout, reset, too large: ``robot_parser`` gives
``None``) counts as none; the report's stats count it (``robots_txt_errors``).
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

from scrapy import Request, signals
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.robotstxt import RobotParser
from scrapy.utils.httpobj import urlparse_cached

from crawler.config.defaults import DEFAULTS

if TYPE_CHECKING:
    from scrapy.crawler import Crawler


class SafeRobotsTxtMiddleware(RobotsTxtMiddleware):
    def __init__(self, crawler: Crawler):
        super().__init__(crawler)
        self._max_crawl_delay = crawler.settings.getfloat(
            "SITEWATCH_MAX_CRAWL_DELAY", DEFAULTS["crawl"]["max_retry_after"]
        )
        self._min_delay = crawler.settings.getfloat("DOWNLOAD_DELAY")
        self._agent = crawler.settings["ROBOTSTXT_USER_AGENT"] or crawler.settings["USER_AGENT"]
        #: netloc -> its parser (None: no usable robots.txt), set once fetched.
        self._robots: dict[str, asyncio.Future[RobotParser | None]] = {}
        crawler.signals.connect(self._on_robots_parsed, signal=signals.robots_parsed)

    def _on_robots_parsed(self, robotparser: RobotParser, request: Request) -> None:
        get = getattr(robotparser, "crawl_delay", None)
        if get is None:
            return
        try:
            wanted = get(self._agent)
        except Exception:  # a parser quirk must not stop the crawl
            return
        if wanted is None or not math.isfinite(wanted) or wanted <= 0:
            return
        delay = min(float(wanted), self._max_crawl_delay)
        downloader = self.crawler.engine.downloader
        key = downloader.get_slot_key(request)
        per_slot = downloader.per_slot_settings.setdefault(key, {})
        if delay <= max(per_slot.get("delay", 0.0), self._min_delay):
            return
        per_slot["delay"] = delay  # for the slot Scrapy creates next for this host
        slot = downloader.slots.get(key)
        if slot is not None:
            slot.delay = delay
        state = getattr(self.crawler.spider, "state", None)
        if state is not None:
            state.stats["robots_crawl_delay_hosts"] += 1
            if delay < wanted:
                state.stats["robots_crawl_delay_capped"] += 1

    async def robot_parser(self, request: Request) -> RobotParser | None:
        netloc = urlparse_cached(request).netloc
        known = self._robots.get(netloc)
        if known is not None:  # fetched, or being fetched for an earlier request
            return await asyncio.shield(known)
        known = self._robots[netloc] = asyncio.get_running_loop().create_future()
        parser: RobotParser | None = None
        try:
            parser = await super().robot_parser(request)
        finally:  # cancelled too: the waiters go on as if there were no robots.txt
            known.set_result(parser)
        if parser is None:
            state = getattr(self.crawler.spider, "state", None)
            if state is not None:
                state.stats["robots_txt_errors"] += 1
        return parser
