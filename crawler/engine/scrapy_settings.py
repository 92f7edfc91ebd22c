"""Scrapy settings for an audit: only the components the audit needs, switched on by name.

Redirects, retries, offsite filtering, depth limits and duplicate filtering are done by
the spider itself (Scrapy's versions drop checks silently); everything the audit does
not use is switched off for speed (docs/decisions/0004-scrapy-as-downloader-only.md; the
measurements in docs/performance.md). The spider's requests go to the downloader through
its own dispatch (crawler/engine/dispatch.py, docs/decisions/0005-own-dispatch.md), not
Scrapy's scheduler: ``CONCURRENT_REQUESTS`` and ``CONCURRENT_REQUESTS_PER_DOMAIN`` are read
there.
"""

from __future__ import annotations

from typing import Any

from crawler.config.defaults import DEFAULTS

#: The agent robots.txt rules are read for (the crawl and the re-run's pre-crawl pass).
ROBOTS_AGENT = "sitewatch"
#: Headers every request of the crawl carries besides its User-Agent.
REQUEST_HEADERS = {
    "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
    "Accept-Language": "sv,en;q=0.8",
}
DOWNLOADER_MIDDLEWARES_BASE = {
    "crawler.engine.robots_middleware.SafeRobotsTxtMiddleware": 100,
    # DOWNLOAD_TIMEOUT, DEFAULT_REQUEST_HEADERS and USER_AGENT in one middleware (Scrapy's
    # three did the same, at three calls per request).
    "crawler.engine.request_defaults.RequestDefaultsMiddleware": 400,
    "crawler.engine.compression.CappedHttpCompressionMiddleware": 590,
    "crawler.engine.cookies_middleware.LazyCookiesMiddleware": 700,
    # Switched off by HTTPPROXY_ENABLED when the environment names no proxy.
    "scrapy.downloadermiddlewares.httpproxy.HttpProxyMiddleware": 750,
}
SPIDER_MIDDLEWARES_BASE = {
    "scrapy.spidermiddlewares.start.StartSpiderMiddleware": 25,
}
#: No extension: Scrapy's CoreStats counted every response into stats nothing reads.
EXTENSIONS_BASE: dict[str, int] = {}


def _environment_proxies() -> bool:
    from urllib.request import getproxies  # Scrapy imports it anyway; a replay does not

    return bool(getproxies())


def audit_settings(
    *,
    user_agent: str,
    obey_robots: bool,
    concurrency: int,
    per_host_concurrency: int,
    delay: float,
    timeout: float,
    max_page_bytes: int,
    max_crawl_delay: float = DEFAULTS["crawl"]["max_retry_after"],
    verbose: bool = False,
) -> dict[str, Any]:
    return {
        "BOT_NAME": "sitewatch",
        "USER_AGENT": user_agent,
        "ROBOTSTXT_OBEY": obey_robots,
        "ROBOTSTXT_USER_AGENT": ROBOTS_AGENT,
        "CONCURRENT_REQUESTS": concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": per_host_concurrency,
        # Scrapy's own Downloader: under asyncio, Scrapy 2.19 starts every request queued
        # for a host at once, but the spider's dispatch never queues more than the per-host
        # limit (tests/test_politeness.py measures it on the server's side).
        "DOWNLOAD_DELAY": delay,
        "DOWNLOAD_DELAY_JITTER": 0,
        # robots.txt Crawl-delay is honoured up to this (crawler.engine.robots_middleware).
        "SITEWATCH_MAX_CRAWL_DELAY": max_crawl_delay,
        "DOWNLOAD_TIMEOUT": timeout,
        # The spider's own requests are cut by the spider (StopDownload at meta sw_cap) and
        # decoded up to the same cap (crawler.engine.compression); they set download_maxsize=0 so a
        # declared Content-Length over this limit does not cancel them. This bounds the rest
        # (robots.txt).
        "DOWNLOAD_MAXSIZE": max(max_page_bytes * 4, 1_000_000),
        "DOWNLOAD_WARNSIZE": 0,
        "DOWNLOAD_VERIFY_CERTIFICATES": True,
        "DOWNLOAD_FAIL_ON_DATALOSS": True,
        "DNS_TIMEOUT": min(timeout, 15.0),
        "DEFAULT_REQUEST_HEADERS": dict(REQUEST_HEADERS),
        "DUPEFILTER_CLASS": "scrapy.dupefilters.BaseDupeFilter",
        "RETRY_ENABLED": False,
        "REDIRECT_ENABLED": False,
        "METAREFRESH_ENABLED": False,
        "DOWNLOADER_MIDDLEWARES_BASE": DOWNLOADER_MIDDLEWARES_BASE,
        "SPIDER_MIDDLEWARES_BASE": SPIDER_MIDDLEWARES_BASE,
        "EXTENSIONS_BASE": EXTENSIONS_BASE,
        "DOWNLOADER_STATS": False,
        # The proxies of the environment (http_proxy, https_proxy, no_proxy), read now: with
        # none, the proxy middleware is not called on every request for nothing.
        "HTTPPROXY_ENABLED": _environment_proxies(),
        "CONCURRENT_ITEMS": 1,
        "WARN_ON_GENERATOR_RETURN_VALUE": False,
        "REMOTE_CONTROL_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "MEMUSAGE_ENABLED": False,
        "LOGSTATS_INTERVAL": 0,
        "STATS_DUMP": False,
        "LOG_ENABLED": verbose,
        "LOG_LEVEL": "INFO" if verbose else "CRITICAL",
        # The versions Scrapy logs at start are looked up even when nothing is logged
        # (package metadata and a `uname -p` child): AsyncCrawlerProcess built in 9.8 ms
        # with them, 3.6 ms without (medians of 5 fresh processes).
        **({} if verbose else {"LOG_VERSIONS": []}),
        # No per-response "Crawled" record built for nothing (crawler/engine/log_formatter.py).
        "LOG_FORMATTER": "crawler.engine.log_formatter.QuietLogFormatter",
        "REACTOR_THREADPOOL_MAXSIZE": 20,
        # No Twisted reactor: Scrapy runs on a plain asyncio loop (less CPU per request
        # than Twisted's client) and downloads through an asyncio streaming handler, whose
        # headers_received/bytes_received signals and StopDownload work the same.
        "TWISTED_REACTOR_ENABLED": False,
        # That handler: HTTP/1.1 over asyncio streams (crawler/http/handler.py), on
        # Scrapy's streaming base; no aiohttp import and no SSL context until the first
        # https URL. Proxied requests too (absolute form, or a CONNECT tunnel).
        "DOWNLOAD_HANDLERS": {
            "http": "crawler.http.handler.HttpDownloadHandler",
            "https": "crawler.http.handler.HttpDownloadHandler",
        },
    }
