"""Cookies as Scrapy's ``CookiesMiddleware`` keeps them, without importing tldextract first.

Some sites need their cookies back (a session cookie set on the first answer, then a
redirect that expects it), so an audit keeps a cookie jar. Scrapy 2.19's middleware
imports tldextract (and with it requests and urllib3, ~60-90 ms of every audit's start-up)
to ask of each received cookie whether its domain is a public suffix. This middleware does
what Scrapy's does for the spider's requests (one jar per ``meta["cookiejar"]``,
``meta["dont_merge_cookies"]`` honoured, ``Set-Cookie`` stored, a cookie for a public
suffix kept only for the host that set it) and imports tldextract when the first cookie
arrives: a site that sets none never loads it. ``Request.cookies`` (cookies given in code)
is not supported: the spider never sets it.

Tested against Scrapy's own middleware (tests/test_cookies.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import NotConfigured
from scrapy.http import Request, Response
from scrapy.http.cookies import CookieJar
from scrapy.utils.httpobj import urlparse_cached

if TYPE_CHECKING:
    from http.cookiejar import Cookie

    from scrapy.crawler import Crawler

_split_domain: Callable[[str], Any] | None = None


def is_public_domain(domain: str) -> bool:
    """Whether ``domain`` is a public suffix (``se``, ``co.uk``, ``github.io``), as Scrapy's
    middleware decides it (tldextract with the private domains of the Public Suffix List)."""
    global _split_domain
    if _split_domain is None:
        from tldextract import TLDExtract

        _split_domain = TLDExtract(include_psl_private_domains=True)
    return not _split_domain(domain).domain


class LazyCookiesMiddleware:
    def __init__(self) -> None:
        self.jars: defaultdict[Any, CookieJar] = defaultdict(CookieJar)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> LazyCookiesMiddleware:
        if not crawler.settings.getbool("COOKIES_ENABLED"):
            raise NotConfigured
        return cls()

    def _process_cookies(
        self, cookies: Iterable[Cookie], *, jar: CookieJar, request: Request
    ) -> None:
        for cookie in cookies:
            cookie_domain = cookie.domain.removeprefix(".")
            hostname = urlparse_cached(request).hostname
            if hostname is None:
                continue
            request_domain = hostname.lower()
            if cookie_domain and is_public_domain(cookie_domain):
                if cookie_domain != request_domain:
                    continue
                cookie.domain = request_domain
            jar.set_cookie_if_ok(cookie, request)

    def process_request(self, request: Request) -> Request | Response | None:
        if request.meta.get("dont_merge_cookies", False):
            return None
        jar = self.jars[request.meta.get("cookiejar")]
        request.headers.pop("Cookie", None)
        if len(jar):  # an empty jar adds nothing (the usual case: most sites set none)
            jar.add_cookie_header(request)
        return None

    def process_response(self, request: Request, response: Response) -> Request | Response:
        if request.meta.get("dont_merge_cookies", False):
            return response
        headers = response.headers
        if b"Set-Cookie" not in headers and b"Set-Cookie2" not in headers:
            return response  # nothing to store
        jar = self.jars[request.meta.get("cookiejar")]
        cookies = jar.make_cookies(response, request)
        self._process_cookies(cookies, jar=jar, request=request)
        return response
