"""Scrapy's own ``CookiesMiddleware``, loaded when the first cookie arrives.

Some sites need their cookies back (a session cookie set on the first answer, then a
redirect that expects it), so an audit keeps a cookie jar. Importing Scrapy's middleware
imports tldextract (and with it requests and urllib3): 41-57 ms of every audit's start-up
on this machine, for the many sites that set no cookie at all (measurements:
docs/decisions/0002-cookies-middleware.md). So this front does nothing until a response
carries ``Set-Cookie`` (or a request brings ``Request.cookies``); from then on every call
goes to a ``scrapy.downloadermiddlewares.cookies.CookiesMiddleware`` made for the crawler:
its jars, its public-suffix rule, its ``cookiejar`` and ``dont_merge_cookies`` metas.
Until then the only thing to do is what Scrapy's does with an empty jar: drop a
``Cookie`` header the request carries. tests/test_cookies.py checks that the same cookies
are sent as with Scrapy's middleware alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scrapy.exceptions import NotConfigured

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request, Response

_SET_COOKIE = (b"Set-Cookie", b"Set-Cookie2")


class LazyCookiesMiddleware:
    def __init__(self, crawler: Crawler | None = None) -> None:
        self._crawler = crawler
        self.delegate: Any = None  # Scrapy's CookiesMiddleware, once a cookie arrived

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> LazyCookiesMiddleware:
        if not crawler.settings.getbool("COOKIES_ENABLED"):
            raise NotConfigured
        return cls(crawler)

    def _scrapys(self) -> Any:
        if self.delegate is None:
            from scrapy.downloadermiddlewares.cookies import CookiesMiddleware

            if self._crawler is None:
                self.delegate = CookiesMiddleware()
            else:
                self.delegate = CookiesMiddleware.from_crawler(self._crawler)
        return self.delegate

    def process_request(self, request: Request) -> Request | Response | None:
        if self.delegate is None and not request.cookies:
            if not request.meta.get("dont_merge_cookies", False):
                request.headers.pop("Cookie", None)  # what an empty jar does
            return None
        return self._scrapys().process_request(request)  # type: ignore[no-any-return]

    def process_response(self, request: Request, response: Response) -> Request | Response:
        if self.delegate is None and (
            request.meta.get("dont_merge_cookies", False)
            or not any(h in response.headers for h in _SET_COOKIE)
        ):
            return response
        return self._scrapys().process_response(request, response)  # type: ignore[no-any-return]
