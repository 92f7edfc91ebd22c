"""Scrapy's RobotsTxtMiddleware with its waiters fixed.

In Scrapy 2.19, every request that arrives while a host's robots.txt is still being
fetched awaits the same Deferred; the first waiter consumes its result and the rest get
``None``, i.e. "no robots.txt", and are let through. Each waiter here gets its own relay.
"""

from __future__ import annotations

from scrapy import Request
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.robotstxt import RobotParser
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import Deferred


class SafeRobotsTxtMiddleware(RobotsTxtMiddleware):
    async def robot_parser(self, request: Request) -> RobotParser | None:
        pending = self._parsers.get(urlparse_cached(request).netloc)
        if isinstance(pending, Deferred):
            mine: Deferred[RobotParser | None] = Deferred()

            def relay(result: RobotParser | None) -> RobotParser | None:
                mine.callback(result)
                return result

            pending.addBoth(relay)
            return await maybe_deferred_to_future(mine)
        return await super().robot_parser(request)

    def _robots_error(self, exc: Exception, netloc: str) -> None:
        # A robots.txt that cannot be fetched (timeout, reset, too large) counts as none;
        # the report's stats say how often that happened.
        state = getattr(self.crawler.spider, "state", None)
        if state is not None and not isinstance(exc, IgnoreRequest):
            state.stats["robots_txt_errors"] += 1
        super()._robots_error(exc, netloc)
