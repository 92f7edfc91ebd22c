"""Cookies: the audit's front (crawler.engine.cookies_middleware) sends exactly the cookies
Scrapy's CookiesMiddleware alone sends, loads it (and tldextract) only when the first
cookie arrives, and a site that needs its session cookie back is audited fine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scrapy.downloadermiddlewares.cookies import CookiesMiddleware
from scrapy.http import Request, Response

from crawler.engine.cookies_middleware import LazyCookiesMiddleware
from demo.server import Route, SiteServer
from tests.cli_runner import sitewatch, write_config
from tests.faults import html_doc

#: (URL of the answer, its Set-Cookie headers): hosts, paths, public suffixes (PSL ICANN
#: and private sections), an IP address, Secure, expired and jar-separated cookies.
ANSWERS: list[tuple[str, list[str], dict[str, Any]]] = [
    ("https://www.umea.se/a/page.html", ["sid=1; Path=/", "lang=sv"], {}),
    ("https://www.umea.se/b/", ["wide=1; Domain=umea.se; Path=/"], {}),
    ("https://www.umea.se/", ["bad=1; Domain=se"], {}),
    ("https://x.github.io/", ["gh=1; Domain=github.io", "own=1; Domain=x.github.io"], {}),
    ("https://co.uk/", ["suffix=1; Domain=co.uk"], {}),
    ("http://127.0.0.1:8000/", ["ip=1", "gone=1; Max-Age=0"], {}),
    ("http://127.0.0.1:8000/x", ["gone=2; Expires=Thu, 01 Jan 1970 00:00:00 GMT"], {}),
    ("https://secure.example.com/", ["s=1; Secure; HttpOnly"], {}),
    ("https://www.umea.se/", ["other=1"], {"cookiejar": 2}),
    ("https://www.umea.se/", ["ignored=1"], {"dont_merge_cookies": True}),
]
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("https://www.umea.se/a/page.html", {}),
    ("https://www.umea.se/b/x.html", {}),
    ("https://umea.se/", {}),
    ("https://other.se/", {}),
    ("https://x.github.io/p", {}),
    ("https://y.github.io/p", {}),
    ("https://co.uk/", {}),
    ("https://a.co.uk/", {}),
    ("http://127.0.0.1:8000/", {}),
    ("https://secure.example.com/", {}),
    ("http://secure.example.com/", {}),
    ("https://www.umea.se/a/page.html", {"cookiejar": 2}),
    ("https://www.umea.se/a/page.html", {"dont_merge_cookies": True}),
]


def _cookie_headers(
    mw: Any, answers: list[tuple[str, list[str], dict[str, Any]]] = ANSWERS
) -> list[list[bytes]]:
    for url, set_cookies, meta in answers:
        request = Request(url, meta=dict(meta))
        response = Response(url, headers={"Set-Cookie": set_cookies}, request=request)
        assert mw.process_response(request, response) is response
    out = []
    for url, meta in REQUESTS:
        request = Request(url, meta=dict(meta), headers={"Cookie": "stale=1"})
        assert mw.process_request(request) is None
        out.append(sorted(request.headers.getlist("Cookie")))
    return out


def test_same_cookies_as_scrapys_middleware() -> None:
    ours = _cookie_headers(LazyCookiesMiddleware())
    scrapys = _cookie_headers(CookiesMiddleware())
    assert ours == scrapys
    # The cases are not vacuous: cookies are sent, public-suffix ones only to their host.
    by_url = dict(zip([u for u, m in REQUESTS if not m], ours, strict=False))
    assert by_url["https://www.umea.se/a/page.html"] == [b"lang=sv; sid=1; wide=1"]
    assert by_url["https://umea.se/"] == [b"wide=1"]
    assert by_url["https://y.github.io/p"] == []
    assert by_url["https://co.uk/"] == [b"suffix=1"]
    assert by_url["http://127.0.0.1:8000/"] == [b"ip=1"]


def test_no_cookie_yet_same_as_scrapys_empty_jar() -> None:
    """Before any cookie: no Cookie header is sent (a stale one is dropped unless
    dont_merge_cookies), and Scrapy's middleware is not even made."""
    ours = LazyCookiesMiddleware()
    assert _cookie_headers(ours, answers=[]) == _cookie_headers(CookiesMiddleware(), answers=[])
    assert ours.delegate is None
    kept = Request("https://www.umea.se/", meta={"dont_merge_cookies": True})
    kept.headers["Cookie"] = "mine=1"
    assert ours.process_request(kept) is None
    assert kept.headers.getlist("Cookie") == [b"mine=1"]
    # A response without Set-Cookie, or one whose cookies are not to be kept: still none.
    plain = Request("https://www.umea.se/")
    assert ours.process_response(plain, Response(plain.url, request=plain)) is not None
    skip = Request("https://www.umea.se/", meta={"dont_merge_cookies": True})
    ours.process_response(skip, Response(skip.url, headers={"Set-Cookie": "a=1"}, request=skip))
    assert ours.delegate is None


def test_request_cookies_given_in_code_go_to_scrapys() -> None:
    def sent(mw: Any) -> list[bytes]:
        first = Request("https://www.umea.se/a", cookies={"lang": "sv"})
        mw.process_request(first)
        later = Request("https://www.umea.se/b")
        mw.process_request(later)
        return first.headers.getlist("Cookie") + later.headers.getlist("Cookie")

    assert sent(LazyCookiesMiddleware()) == sent(CookiesMiddleware()) == [b"lang=sv", b"lang=sv"]


def test_tldextract_loads_only_with_the_first_cookie() -> None:
    code = """
import sys
from scrapy.http import Request, Response
from crawler.engine.cookies_middleware import LazyCookiesMiddleware
mw = LazyCookiesMiddleware()
r = Request("https://www.umea.se/")
mw.process_request(r)
mw.process_response(r, Response(r.url, request=r))
before = "tldextract" in sys.modules
mw.process_response(r, Response(r.url, headers={"Set-Cookie": "sid=1"}, request=r))
print(before, "tldextract" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"], out.stdout + out.stderr


def _members_only(h: Any) -> None:
    """200 with the session cookie the start page set, 403 without it."""
    ok = "sid=abc" in (h.headers.get("Cookie") or "")
    body = html_doc("Medlemmar" if ok else "Nekad", "<p>Sidan har granskats 2026-10-01</p>")
    h.send_response(200 if ok else 403)
    h.send_header("Content-Type", "text/html; charset=utf-8")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    s = SiteServer("127.0.0.1", name="cookies")
    s.add_route(
        "/c/index.html",
        Route(
            body=html_doc(
                "Start", '<p>Sidan har granskats 2026-10-01</p><a href="member.html">In</a>'
            ),
            headers={"Set-Cookie": "sid=abc; Path=/c/; HttpOnly"},
        ),
    )
    s.add_route("/c/member.html", Route(handler=_members_only))
    s.start()
    yield s
    s.stop()


def test_a_session_cookie_is_sent_back(server: SiteServer, tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "site.toml",
        f'[site]\nstart_urls = ["{server.url("/c/index.html")}"]\n',
    )
    r = sitewatch(
        "audit", "--config", str(cfg), "--as-of", "2026-11-26", "--no-history", cwd=tmp_path
    )
    assert r.code == 0, r.stdout + r.stderr
    member = r.links()[server.url("/c/member.html")]
    assert (member["verdict"], member["status"]) == ("ok", 200), member
    assert r.pages()[server.url("/c/member.html")]["title"] == "Medlemmar"
