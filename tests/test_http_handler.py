"""The audit's download handler (crawler/http_handler.py) against real loopback servers.

The crawl tests run every audit through it (faults, TLS, timeouts, truncated bodies in
tests/test_faults.py and tests/test_audit_e2e.py); these check what only a client sees:
kept-alive connections, a kept-alive connection the server closed meanwhile, a body cut
short, name resolution, the time limit, and proxied requests going to Scrapy's own
handler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from scrapy import Request
from scrapy.exceptions import CannotResolveHostError, DownloadTimeoutError, ResponseDataLossError
from scrapy.utils.test import get_crawler

from crawler.http_handler import H11DownloadHandler
from crawler.scrapy_settings import audit_settings
from tests.raw_http import RawServer

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello"


def _settings(**extra: Any) -> dict[str, Any]:
    settings = audit_settings(
        user_agent="sitewatch-test",
        obey_robots=False,
        concurrency=4,
        per_host_concurrency=2,
        delay=0,
        timeout=5,
        max_page_bytes=1_000_000,
    )
    settings.update(extra)
    return settings


def _with_handler(go: Callable[[H11DownloadHandler], Awaitable[Any]], **settings: Any) -> Any:
    async def run() -> Any:
        handler = H11DownloadHandler(get_crawler(settings_dict=_settings(**settings)))
        try:
            return await go(handler)
        finally:
            await handler.close()

    return asyncio.run(run())


def test_the_audit_downloads_with_this_handler() -> None:
    handlers = _settings()["DOWNLOAD_HANDLERS"]
    assert handlers == {
        "http": "crawler.http_handler.H11DownloadHandler",
        "https": "crawler.http_handler.H11DownloadHandler",
    }


def test_connections_are_kept_alive_and_a_closed_one_is_replaced() -> None:
    """Answers on one connection while it lasts; when the server closed a kept-alive
    connection meanwhile (no ``Connection: close`` said), the GET is sent again on a new
    one instead of failing."""
    with RawServer(lambda n: OK) as steady, RawServer(lambda n: OK, close_after=2) as closer:

        async def go(handler: H11DownloadHandler) -> list[tuple[int, bytes]]:
            got = []
            for server in (steady, closer):
                for n in range(5):
                    r = await handler.download_request(Request(server.url(f"/p{n}")))
                    got.append((r.status, r.body))
            return got

        got = _with_handler(go)
    assert got == [(200, b"hello")] * 10
    assert steady.connections == 1
    assert closer.connections == 3  # 2 answers per connection: 5 requests on 3
    assert all(head.startswith(b"GET /p") for head in steady.heads)
    assert b"\r\nHost: 127.0.0.1:" in steady.heads[0]


@pytest.mark.parametrize("fail", [True, False])
def test_a_body_cut_short_is_data_loss(fail: bool) -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100\r\n\r\nhello"
    with RawServer(lambda n: cut, close_after=1) as server:

        async def go(handler: H11DownloadHandler) -> Any:
            return await handler.download_request(Request(server.url("/")))

        if fail:
            with pytest.raises(ResponseDataLossError):
                _with_handler(go, DOWNLOAD_FAIL_ON_DATALOSS=True)
        else:
            r = _with_handler(go, DOWNLOAD_FAIL_ON_DATALOSS=False)
            assert r.body == b"hello" and "dataloss" in r.flags


def test_head_and_not_modified_have_no_body_and_keep_the_connection() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5000\r\n\r\n",
        b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n',
        OK,
    ]
    with RawServer(lambda n: answers[n]) as server:

        async def go(handler: H11DownloadHandler) -> list[tuple[int, bytes]]:
            head = await handler.download_request(Request(server.url("/a"), method="HEAD"))
            cond = await handler.download_request(
                Request(server.url("/a"), headers={"If-None-Match": '"x"'})
            )
            full = await handler.download_request(Request(server.url("/a")))
            return [(r.status, r.body) for r in (head, cond, full)]

        got = _with_handler(go)
    assert got == [(200, b""), (304, b""), (200, b"hello")]
    assert server.connections == 1


def test_name_that_does_not_resolve_and_the_time_limit() -> None:
    async def dns(handler: H11DownloadHandler) -> Any:
        return await handler.download_request(Request("http://sidan-finns-inte.invalid/"))

    with pytest.raises(CannotResolveHostError):
        _with_handler(dns)
    with RawServer(lambda n: b"") as mute:  # reads the request, never answers

        async def slow(handler: H11DownloadHandler) -> Any:
            return await handler.download_request(
                Request(mute.url("/"), meta={"download_timeout": 0.3})
            )

        with pytest.raises(DownloadTimeoutError):
            _with_handler(slow)


def test_a_proxied_request_goes_to_scrapys_aiohttp_handler() -> None:
    """``meta["proxy"]`` (HttpProxyMiddleware, from http_proxy): sent to the proxy in
    absolute form by Scrapy's own handler, made at the first such request."""
    with RawServer(lambda n: OK) as proxy:

        async def go(handler: H11DownloadHandler) -> tuple[int, bytes, bool]:
            plain = handler._proxy_handler is None
            r = await handler.download_request(
                Request("http://partner.invalid/sida", meta={"proxy": proxy.url()})
            )
            return r.status, r.body, plain and handler._proxy_handler is not None

        status, body, made = _with_handler(go)
    assert (status, body, made) == (200, b"hello", True)
    assert proxy.heads[0].startswith(b"GET http://partner.invalid/sida HTTP/1.1")
