"""Every request's defaults in one downloader middleware: ``DOWNLOAD_TIMEOUT``,
``DEFAULT_REQUEST_HEADERS`` and ``USER_AGENT``, each set where the request has none.

Scrapy's DownloadTimeoutMiddleware, DefaultHeadersMiddleware and UserAgentMiddleware do the
same as three middlewares, and Scrapy's middleware manager makes a call (wrapped for their
deprecated ``spider`` argument) to each on every request. The audit's own requests carry
their timeout already; robots.txt requests, made by Scrapy's robots middleware, get theirs
here (without one Scrapy's handler would wait 10 s whatever the configured timeout).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response


class RequestDefaultsMiddleware:
    def __init__(self, timeout: float, headers: dict[str, str], user_agent: str | None) -> None:
        from scrapy.http import Headers

        self._timeout = timeout
        pairs = [(k, v) for k, v in headers.items() if v is not None]
        if user_agent:
            pairs.append(("User-Agent", user_agent))
        # Each name and value as Headers stores them (title-cased bytes, a list of bytes),
        # normalised once here instead of on every request.
        norm = Headers()
        self._headers = [(norm.normkey(k), norm.normvalue(v)) for k, v in pairs]

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RequestDefaultsMiddleware:
        s = crawler.settings
        return cls(
            s.getfloat("DOWNLOAD_TIMEOUT"),
            dict(s.getdict("DEFAULT_REQUEST_HEADERS")),
            s.get("USER_AGENT"),
        )

    def process_request(self, request: Request) -> Request | Response | None:
        if self._timeout:
            request.meta.setdefault("download_timeout", self._timeout)
        headers = request.headers
        for key, values in self._headers:
            # Headers.setdefault(name, value) with the normalising done already.
            if not dict.__contains__(headers, key):
                dict.__setitem__(headers, key, list(values))
        return None
