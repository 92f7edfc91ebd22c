"""The audit's download handler (crawler/http/handler.py) against real loopback servers.

The crawl tests run every audit through it (faults, TLS, timeouts, truncated bodies in
tests/test_faults.py and tests/test_audit_e2e.py); these check what only a client sees:
kept-alive connections, a kept-alive connection the server closed meanwhile, a body cut
short, name resolution, the time limit, proxied requests (absolute form, credentials),
and how the handler reads (or refuses) what servers send: chunked bodies, bodies ended by
the connection, folded and bare-LF heads, interim answers, framing it cannot follow, and
request headers that would split the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from scrapy import Request
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadFailedError,
    DownloadTimeoutError,
    ResponseDataLossError,
)
from scrapy.http import Headers
from scrapy.utils.test import get_crawler

from crawler.engine.request_defaults import RequestDefaultsMiddleware
from crawler.engine.scrapy_settings import audit_settings
from crawler.http.handler import HttpDownloadHandler, headers_from
from tests.cli_runner import sitewatch, write_config
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


def _with_handler(go: Callable[[HttpDownloadHandler], Awaitable[Any]], **settings: Any) -> Any:
    async def run() -> Any:
        handler = HttpDownloadHandler(get_crawler(settings_dict=_settings(**settings)))
        try:
            return await go(handler)
        finally:
            await handler.close()

    return asyncio.run(run())


def test_the_audit_downloads_with_this_handler() -> None:
    handlers = _settings()["DOWNLOAD_HANDLERS"]
    assert handlers == {
        "http": "crawler.http.handler.HttpDownloadHandler",
        "https": "crawler.http.handler.HttpDownloadHandler",
    }


def test_connections_are_kept_alive_and_a_closed_one_is_replaced() -> None:
    """Answers on one connection while it lasts; when the server closed a kept-alive
    connection meanwhile (no ``Connection: close`` said), the GET is sent again on a new
    one instead of failing."""
    with RawServer(lambda n: OK) as steady, RawServer(lambda n: OK, close_after=2) as closer:

        async def go(handler: HttpDownloadHandler) -> list[tuple[int, bytes]]:
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

        async def go(handler: HttpDownloadHandler) -> Any:
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

        async def go(handler: HttpDownloadHandler) -> list[tuple[int, bytes]]:
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
    async def dns(handler: HttpDownloadHandler) -> Any:
        return await handler.download_request(Request("http://sidan-finns-inte.invalid/"))

    with pytest.raises(CannotResolveHostError):
        _with_handler(dns)
    with RawServer(lambda n: b"") as mute:  # reads the request, never answers

        async def slow(handler: HttpDownloadHandler) -> Any:
            return await handler.download_request(
                Request(mute.url("/"), meta={"download_timeout": 0.3})
            )

        with pytest.raises(DownloadTimeoutError):
            _with_handler(slow)


def test_a_proxied_http_request_is_sent_in_absolute_form() -> None:
    """``meta["proxy"]`` (HttpProxyMiddleware, from http_proxy): sent by this handler to
    the proxy in absolute form, with the middleware's Proxy-Authorization; connections to
    the proxy are kept apart from direct ones."""
    with RawServer(lambda n: OK) as proxy:

        async def go(handler: HttpDownloadHandler) -> list[tuple[int, bytes]]:
            got = []
            for url in ("http://partner.invalid/sida", "http://partner.invalid:8080/b?q=1"):
                request = Request(
                    url,
                    meta={"proxy": proxy.url()},
                    headers={"Proxy-Authorization": "Basic dTpw"},
                )
                r = await handler.download_request(request)
                got.append((r.status, r.body))
            return got

        got = _with_handler(go)
    assert got == [(200, b"hello")] * 2
    assert proxy.heads[0].startswith(b"GET http://partner.invalid/sida HTTP/1.1\r\n")
    assert proxy.heads[1].startswith(b"GET http://partner.invalid:8080/b?q=1 HTTP/1.1\r\n")
    assert all(b"\r\nProxy-Authorization: Basic dTpw" in h for h in proxy.heads), proxy.heads
    assert proxy.connections == 1


def test_proxy_authorization_never_reaches_a_site() -> None:
    with RawServer(lambda n: OK) as site:
        request = Request(site.url("/"), headers={"Proxy-Authorization": "Basic dTpw"})
        _with_handler(lambda handler: handler.download_request(request))
    assert site.heads and b"Proxy-Authorization" not in site.heads[0]


def _exchange(answer: bytes, request: Request | None = None, **settings: Any) -> Any:
    """(status, headers, body) of one download from a server sending ``answer`` (then
    closing), or the exception it raised; and the server's connection count."""
    with RawServer(lambda n: answer if n == 0 else None, close_after=1) as server:

        async def go(handler: HttpDownloadHandler) -> Any:
            req = request.replace(url=server.url("/x")) if request else Request(server.url("/x"))
            try:
                r = await handler.download_request(req)
            except Exception as e:
                return e
            return r.status, r.headers, r.body

        return _with_handler(go, **settings)


def test_body_framings() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    assert _exchange(chunked)[2] == b"hello world"
    until_close = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end"
    assert _exchange(until_close)[2] == b"to the end"
    # Transfer-Encoding wins over Content-Length (RFC 9112 section 6.3).
    both = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert _exchange(both + b"4\r\nabcd\r\n0\r\n\r\n")[2] == b"abcd"
    no_content = b"HTTP/1.1 204 No Content\r\n\r\n"
    assert _exchange(no_content)[:3:2] == (204, b"")


def test_lenient_heads_as_h11_read_them() -> None:
    """Bare LF line ends, an obsolete folded header line, a 100 Continue before the
    answer, a status line without a reason: all read."""
    bare_lf = b"HTTP/1.1 200 OK\nContent-Length: 2\nX-Long: one\n  two\n\nok"
    status, headers, body = _exchange(bare_lf)
    assert (status, body, headers[b"X-Long"]) == (200, b"ok", b"one two")
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404\r\nContent-Length: 4\r\n\r\ngone"
    assert _exchange(interim)[:3:2] == (404, b"gone")


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
    ],
)
def test_heads_it_cannot_follow_fail_the_download(answer: bytes) -> None:
    assert isinstance(_exchange(answer), DownloadFailedError)


def test_a_broken_chunked_body_is_data_loss() -> None:
    """A bad chunk size, a chunk longer than its size, a body cut short: data loss,
    raised, or with DOWNLOAD_FAIL_ON_DATALOSS off the part read, flagged."""
    for body in (b"zz\r\nhello\r\n0\r\n\r\n", b"3\r\nhello\r\n0\r\n\r\n", b"5\r\nhel"):
        answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body
        assert isinstance(_exchange(answer), ResponseDataLossError), body
        with RawServer(lambda n, a=answer: a, close_after=1) as server:

            async def go(handler: HttpDownloadHandler, url: str = server.url("/")) -> Any:
                return await handler.download_request(Request(url))

            r = _with_handler(go, DOWNLOAD_FAIL_ON_DATALOSS=False)
        assert r.status == 200 and "dataloss" in r.flags, body
        assert r.body == (b"hel" if body.startswith(b"3") or body.startswith(b"5") else b""), body


def test_a_connection_is_kept_only_after_a_clean_exchange() -> None:
    """Not after ``Connection: close``, an HTTP/1.0 answer, or bytes beyond the body."""
    answers = {
        "close": b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        "http10": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "extra": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
        "clean": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    }
    for name, answer in answers.items():
        with RawServer(lambda n, a=answer: a) as server:

            async def go(handler: HttpDownloadHandler, url: str = server.url("/")) -> list[bytes]:
                return [(await handler.download_request(Request(url))).body for _ in range(3)]

            assert _with_handler(go) == [b"ok"] * 3, name
        assert server.connections == (1 if name == "clean" else 3), name


def test_a_header_value_with_a_line_break_is_never_sent() -> None:
    """A value taken from a page (a redirect's cookie, say) must not smuggle a request."""
    with RawServer(lambda n: OK) as server:
        request = Request(server.url("/"), headers={"X-From-Page": "a\r\nGET /evil HTTP/1.1"})

        async def go(handler: HttpDownloadHandler) -> Any:
            try:
                return await handler.download_request(request)
            except Exception as e:
                return e

        got = _with_handler(go)
    assert isinstance(got, DownloadFailedError)
    assert not any(b"/evil" in head for head in server.heads)


def test_every_request_carries_the_configured_defaults(tmp_path: Path) -> None:
    """User-Agent, Accept and Accept-Language reach the server on the audit's own requests
    and on robots.txt (asked before the linked page; start pages are not held to it)
    (crawler/engine/request_defaults.py, in place of Scrapy's three middlewares)."""
    page = b'<html><body><a href="/other.html">Mer</a><p>Granskad 2026-10-01</p></body></html>'
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (
        len(page),
        page,
    )
    with RawServer(lambda n: answer) as server:
        cfg = write_config(
            tmp_path / "site.toml",
            f'[site]\nstart_urls = ["{server.url("/start.html")}"]\n\n'
            '[crawl]\nuser_agent = "sitewatch-test-agent"\nobey_robots = true\n',
        )
        r = sitewatch("audit", "--config", str(cfg), "--as-of", "2026-11-26", "-q", cwd=tmp_path)
    assert r.code in (0, 1), r.stderr
    paths = [head.split(b" ", 2)[1] for head in server.heads]
    assert {b"/robots.txt", b"/start.html", b"/other.html"} <= set(paths)
    for head in server.heads:
        assert b"\r\nUser-Agent: sitewatch-test-agent" in head, head
        assert b"\r\nAccept: text/html" in head, head
        assert b"\r\nAccept-Language: sv,en;q=0.8" in head, head


_NAME = st.sampled_from(
    [
        b"Content-Type",
        b"content-type",
        b"CONTENT-TYPE",
        b"Set-Cookie",
        b"set-cookie",
        b"ETag",
        b"x-a_b",
        b"X-A_B",
        b"Link",
        b"www-authenticate",
        b"Www-Authenticate",
    ]
)


@hyp_settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_NAME, st.binary(max_size=8)), max_size=12))
def test_headers_built_fast_equal_scrapys(pairs: list[tuple[bytes, bytes]]) -> None:
    fast = headers_from(pairs)
    slow = Headers(pairs)
    assert type(fast) is Headers
    assert dict(fast) == dict(slow)
    assert list(dict.items(fast)) == list(dict.items(slow))  # the same order too
    for name, _ in pairs:
        assert fast.getlist(name) == slow.getlist(name)


def test_request_defaults_set_what_scrapys_setdefault_would() -> None:
    defaults = {"Accept": "text/html", "accept-language": "sv", "X-None": None}
    mw = RequestDefaultsMiddleware(7.0, defaults, "sitewatch-ua")
    given_headers = {"Accept": "application/json", "If-None-Match": '"x"'}
    fast = Request("http://h/", headers=given_headers)
    mw.process_request(fast)
    slow = Request("http://h/", headers=given_headers)
    for name, value in [*((k, v) for k, v in defaults.items() if v is not None)]:
        slow.headers.setdefault(name, value)
    slow.headers.setdefault("User-Agent", "sitewatch-ua")
    assert list(dict.items(fast.headers)) == list(dict.items(slow.headers))
    assert fast.headers[b"Accept"] == b"application/json"  # the request's own value stays
    assert fast.meta["download_timeout"] == 7.0
    # Each request gets lists of its own: changing one leaves the next request alone.
    fast.headers.appendlist("Accept-Language", "en")
    other = Request("http://h/")
    mw.process_request(other)
    assert other.headers.getlist("Accept-Language") == [b"sv"]


def test_no_crawled_message_is_built_for_each_response() -> None:
    from scrapy.http import HtmlResponse
    from scrapy.utils.misc import load_object

    formatter_cls = load_object(_settings()["LOG_FORMATTER"])
    request = Request("http://h/")
    response = HtmlResponse("http://h/", body=b"<p>x</p>", request=request)
    assert formatter_cls().crawled(request, response, None) is None
    # The other messages stay Scrapy's.
    from scrapy.logformatter import LogFormatter

    assert formatter_cls.dropped is LogFormatter.dropped
    assert formatter_cls.download_error is LogFormatter.download_error
