"""The loopback test server (demo/server.py) and the demo site it serves (demo/routes.py)."""

from __future__ import annotations

import datetime as dt
import http.client
import re
import socket
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

import pytest

from crawler.pages.pdf_links import extract_links
from demo.make_flyer import BROKEN_LINK, GOOD_LINK
from demo.routes import (
    AS_OF,
    CONFIG_TEMPLATE,
    DOWNLOAD,
    FLYER,
    OK_LINKS,
    PLANTED,
    REVIEW_DATES,
    SITE_ROOT,
    DemoServers,
    start_demo_servers,
)
from demo.server import Route, SiteServer

REPO = Path(__file__).resolve().parents[1]
AATER_ENC = "/internationellt/%C3%A5terbes%C3%B6k-v%C3%A4norter.html"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        return None


_FOLLOW = urllib.request.build_opener()
_NO_FOLLOW = urllib.request.build_opener(_NoRedirect)


def fetch(
    url: str, method: str = "GET", *, follow: bool = True, timeout: float = 5
) -> tuple[int, Message, bytes, str]:
    """(status, headers, body, final URL) via urllib; HTTP errors are returned, not raised."""
    opener = _FOLLOW if follow else _NO_FOLLOW
    req = urllib.request.Request(url, method=method)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read(), resp.geturl()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers, err.read(), err.geturl()


def raw_request(server: SiteServer, target: bytes, method: bytes = b"GET") -> tuple[int, bytes]:
    """Send a request line as raw bytes (e.g. unencoded UTF-8); (status, body)."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(method + b" " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    assert len(body) == length
    return status, body


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServers]:
    servers = start_demo_servers()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def server() -> Iterator[SiteServer]:
    with SiteServer(root=SITE_ROOT, name="test") as s:
        yield s


# ----------------------------------------------------------------------------- static files


def test_servers_bind_to_their_loopback_addresses(demo: DemoServers) -> None:
    assert demo.main.base_url.startswith("http://127.0.0.1:")
    assert demo.ext1.base_url.startswith("http://127.0.0.2:")
    assert demo.ext2.base_url.startswith("http://127.0.0.3:")
    assert demo.start_url == demo.main.base_url + "/internationellt/"
    assert demo.watched == [
        demo.ext1.base_url + "/north-sweden/",
        demo.ext1.base_url + "/skl/",
        demo.ext1.base_url + "/skr/",
    ]


def test_static_page_utf8(demo: DemoServers) -> None:
    status, headers, body, _ = fetch(demo.start_url)
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert int(headers["Content-Length"]) == len(body)
    text = body.decode("utf-8")
    assert "<h1>Internationellt arbete</h1>" in text
    assert "Startsida Umeå kommun" in text
    assert "Sidan har granskats 2018-03-28" in text
    assert ">Flyer (pdf)</a>" in text and ">Rollup (pdf)</a>" in text


def test_latin1_page_declares_its_charset(demo: DemoServers) -> None:
    status, headers, body, _ = fetch(demo.main.url("/internationellt/historik.html"))
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=iso-8859-1"
    assert b'<meta charset="iso-8859-1">' in body
    assert "Vänortssamarbetets historik".encode("latin-1") in body
    assert "Åren gick" in body.decode("iso-8859-1")
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")


def test_head_has_get_headers_and_no_body(demo: DemoServers) -> None:
    url = demo.main.url("/internationellt/vasa.html")
    g_status, g_headers, g_body, _ = fetch(url)
    h_status, h_headers, h_body, _ = fetch(url, "HEAD")
    assert (g_status, h_status) == (200, 200)
    assert h_body == b""
    assert h_headers["Content-Length"] == g_headers["Content-Length"] == str(len(g_body))
    assert h_headers["Content-Type"] == g_headers["Content-Type"]


def test_keep_alive_serves_several_requests_on_one_connection(demo: DemoServers) -> None:
    conn = http.client.HTTPConnection(demo.main.host, demo.main.port, timeout=5)
    try:
        paths = ["/internationellt/", "/internationellt/qufu.html", "/nope", "/static/umea.css"]
        statuses = []
        for i, path in enumerate(paths):
            conn.request("HEAD" if i == 1 else "GET", path)
            resp = conn.getresponse()
            body = resp.read()
            statuses.append(resp.status)
            assert len(body) == (0 if i == 1 else int(resp.headers["Content-Length"]))
            assert not resp.will_close
            if i == 0:
                sock = conn.sock
            assert conn.sock is sock  # the same TCP connection throughout
        assert statuses == [200, 200, 404, 200]
    finally:
        conn.close()


def test_missing_file_gets_404_page(demo: DemoServers) -> None:
    status, headers, body, _ = fetch(demo.main.url("/internationellt/harstad-besok-2019.html"))
    assert status == 404
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert int(headers["Content-Length"]) == len(body)
    assert "<title>Sidan kunde inte hittas</title>" in body.decode()
    # Servers without a root answer 404 to anything that is not a route.
    assert fetch(demo.ext2.url("/no/such/page"))[0] == 404


def test_directory_without_slash_redirects(demo: DemoServers) -> None:
    status, headers, _, _ = fetch(demo.main.url("/internationellt?x=1"), follow=False)
    assert status == 301
    assert headers["Location"] == "/internationellt/?x=1"
    status, _, body, final = fetch(demo.main.url("/kontakt"))
    assert (status, final) == (200, demo.main.url("/kontakt/"))
    assert "<h1>Kontakta oss</h1>" in body.decode()


def test_percent_encoded_non_ascii_path(demo: DemoServers) -> None:
    assert demo.main.url("/internationellt/återbesök-vänorter.html").endswith(AATER_ENC)
    status, headers, body, _ = fetch(demo.main.base_url + AATER_ENC)
    assert status == 200
    assert int(headers["Content-Length"]) == len(body)
    assert "<h1>Återbesök i vänorterna</h1>" in body.decode("utf-8")
    # The decoded form (raw UTF-8 in the request line) reaches the same file.
    raw_status, raw_body = raw_request(
        demo.main, "/internationellt/återbesök-vänorter.html".encode()
    )
    assert (raw_status, raw_body) == (200, body)


def test_paths_outside_root_are_not_served(server: SiteServer) -> None:
    assert (REPO / "demo" / "server.py").exists()
    for target in (b"/../server.py", b"/%2e%2e/server.py", b"/internationellt/../../routes.py"):
        status, body = raw_request(server, target)
        assert status == 404, target
        assert b"Sidan kunde inte hittas" in body


def test_content_types_and_robots(demo: DemoServers) -> None:
    expect = {
        "/robots.txt": "text/plain; charset=utf-8",
        "/static/umea.css": "text/css; charset=utf-8",
        "/static/umea.js": "text/javascript; charset=utf-8",
        "/static/umea-logo.png": "image/png",
        "/internationellt/bilder/varldskarta.png": "image/png",
        DOWNLOAD + "flyer-internationellt.pdf": "application/pdf",
    }
    for path, ctype in expect.items():
        status, headers, body, _ = fetch(demo.main.url(path))
        assert (status, headers["Content-Type"]) == (200, ctype), path
        assert int(headers["Content-Length"]) == len(body) > 0
        if ctype == "image/png":
            assert body.startswith(b"\x89PNG\r\n\x1a\n")
    assert b"Disallow: /sok/" in fetch(demo.main.url("/robots.txt"))[2]


# ----------------------------------------------------------------------------- routes


def test_route_head_405_and_head_403(demo: DemoServers) -> None:
    url = demo.ext2.url("/harstad/vennskapsbyer/")
    status, headers, body, _ = fetch(url, "HEAD")
    assert (status, headers["Allow"], body) == (405, "GET", b"")
    assert fetch(url)[0] == 200
    url = demo.ext2.url("/helsingor/kommune/")
    assert fetch(url, "HEAD")[0] == 403
    status, _, body, _ = fetch(url)
    assert status == 200 and "Helsingør Kommune" in body.decode()


def test_permanent_redirect_skl_to_skr(demo: DemoServers) -> None:
    status, headers, _, _ = fetch(demo.ext1.url("/skl/eu/"), follow=False)
    assert status == 301
    assert headers["Location"] == "/skr/eu/"
    status, _, body, final = fetch(demo.ext1.url("/skl/eu/"))
    assert (status, final) == (200, demo.ext1.url("/skr/eu/"))
    assert "SKR – EU och internationellt" in body.decode()


def test_temporary_redirect_chain_with_substituted_location(demo: DemoServers) -> None:
    status, headers, _, _ = fetch(demo.ext2.url("/vaasa/sv/"), follow=False)
    assert status == 302
    assert headers["Location"] == demo.ext2.base_url + "/vaasa/sv/vanorter/"
    status, _, _, final = fetch(demo.ext2.url("/vaasa/"))
    assert (status, final) == (200, demo.ext2.url("/vaasa/sv/vanorter/"))


def test_redirect_loop(demo: DemoServers) -> None:
    a, b = "/lanzhou/sister-cities/", "/lanzhou/sister-cities/index.html"
    assert fetch(demo.ext2.url(a), follow=False)[1]["Location"] == b
    assert fetch(demo.ext2.url(b), follow=False)[1]["Location"] == a
    with pytest.raises(urllib.error.HTTPError, match="infinite loop"):
        _FOLLOW.open(demo.ext2.url(a), timeout=5)


def test_fail_first_429_then_200(demo: DemoServers) -> None:
    demo.ext2.reset()
    url = demo.ext2.url("/seychelles/")
    status, headers, _, _ = fetch(url)
    assert (status, headers["Retry-After"]) == (429, "1")
    status, headers, _, _ = fetch(url)
    assert status == 200 and headers["Retry-After"] is None
    assert fetch(url, "HEAD")[0] == 200
    assert demo.ext2.hits("/seychelles/") == 3
    assert demo.ext2.hits("/seychelles/", "HEAD") == 1


def test_fail_first_counts_requests_per_route() -> None:
    routes = {"/flaky": Route(body="ok", fail_first=2, fail_status=503)}
    with SiteServer("127.0.0.3", routes=routes) as s:
        got = [fetch(s.url("/flaky")) for _ in range(3)]
        assert [g[0] for g in got] == [503, 503, 200]
        assert got[0][1]["Retry-After"] == "1"
        assert got[2][2] == b"ok"
        s.reset()
        assert fetch(s.url("/flaky"))[0] == 503


def test_bot_wall_403_always(demo: DemoServers) -> None:
    assert [fetch(demo.ext2.url("/xian/"), m)[0] for m in ("HEAD", "GET", "GET")] == [403] * 3


def test_watched_north_sweden_is_404(demo: DemoServers) -> None:
    assert fetch(demo.ext1.url("/north-sweden/"))[0] == 404
    assert fetch(demo.ext2.url("/helsingor/venskabsbyer/"))[0] == 404


def test_substitution_fills_in_ext_urls_with_right_length(demo: DemoServers) -> None:
    status, headers, body, _ = fetch(demo.start_url)
    assert status == 200
    on_disk = (SITE_ROOT / "internationellt" / "index.html").read_bytes()
    assert b"{{EXT1}}" in on_disk and b"{{" not in body
    expected = on_disk.replace(b"{{EXT1}}", demo.ext1.base_url.encode()).replace(
        b"{{EXT2}}", demo.ext2.base_url.encode()
    )
    assert body == expected and len(body) != len(on_disk)
    assert int(headers["Content-Length"]) == len(body)
    assert f'href="{demo.ext1.base_url}/skl/eu/"'.encode() in body
    assert f'href="{demo.ext1.base_url}/north-sweden/"'.encode() in body
    # HEAD reports the substituted length too.
    assert fetch(demo.start_url, "HEAD")[1]["Content-Length"] == str(len(body))


def test_substitution_applies_only_to_html() -> None:
    routes = {
        "/a.html": Route(body="<a href='{{X}}/p'>p</a>"),
        "/a.txt": Route(body="{{X}}/p", content_type="text/plain"),
    }
    with SiteServer(routes=routes, substitutions={"{{X}}": "http://127.0.0.3:1234"}) as s:
        assert fetch(s.url("/a.html"))[2] == b"<a href='http://127.0.0.3:1234/p'>p</a>"
        assert fetch(s.url("/a.txt"))[2] == b"{{X}}/p"


def test_pdf_links(demo: DemoServers) -> None:
    status, _, body, _ = fetch(demo.main.url(DOWNLOAD + "flyer-internationellt.pdf"))
    assert status == 200 and body.startswith(b"%PDF-1.4\n")
    # A structurally valid PDF: startxref points at the xref table, whose entries point
    # at the objects.
    startxref = int(re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", body).group(1))  # type: ignore[union-attr]
    assert body[startxref:].startswith(b"xref\n0 ")
    count = int(body[startxref:].split(b"\n")[1].split()[1])
    entries = body[startxref:].split(b"\n")[3 : 2 + count]
    for number, entry in enumerate(entries, start=1):
        assert body[int(entry[:10]) :].startswith(b"%d 0 obj" % number)
    # Its link annotations point at the running servers (made at start: demo/make_flyer.py).
    links = [(x.page, x.uri, x.text) for x in extract_links(body).links]
    assert links == [
        (1, demo.url(GOOD_LINK[1]), GOOD_LINK[0]),
        (2, demo.url(BROKEN_LINK[1]), BROKEN_LINK[0]),
    ]
    assert fetch(demo.url(GOOD_LINK[1]))[0] == 200
    assert fetch(demo.url(BROKEN_LINK[1]))[0] == 404

    status, headers, body, _ = fetch(demo.main.url(DOWNLOAD + "rollup-internationellt.pdf"))
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert not body.startswith(b"%PDF")

    assert fetch(demo.main.url(DOWNLOAD + "mal-och-strategier-internationellt-1997.pdf"))[0] == 404

    mall = DOWNLOAD + "projektavtal-mall.pdf"
    status, headers, _, _ = fetch(demo.main.url(mall), follow=False)
    assert status == 302
    assert headers["Location"] == "/logga-in/?returnUrl=" + quote(mall, safe="")
    status, headers, body, final = fetch(demo.main.url(mall))
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert urlsplit(final).path == "/logga-in/" and "<h1>Logga in</h1>" in body.decode()


def test_soft_404_is_200(demo: DemoServers) -> None:
    status, _, body, _ = fetch(demo.main.url("/internationellt/vanortsveckan-2017.html"))
    assert status == 200
    assert "<h1>Sidan kunde inte hittas</h1>" in body.decode()


def test_routes_match_decoded_paths_and_queries() -> None:
    routes = {
        "/sök/": Route(body="sv"),
        "/q?id=1": Route(body="one"),
        "/q": Route(body="any"),
    }
    with SiteServer(routes=routes) as s:
        assert fetch(s.base_url + "/s%C3%B6k/")[2] == b"sv"
        assert raw_request(s, "/sök/".encode()) == (200, b"sv")
        assert fetch(s.url("/q?id=1"))[2] == b"one"
        assert fetch(s.url("/q?id=2"))[2] == b"any"
        assert fetch(s.url("/q"))[2] == b"any"
        assert s.hits("/q") == 3 and s.hits("/q?id=1") == 1 and s.hits("/sök/") == 2


def test_routes_take_precedence_over_files() -> None:
    routes = {"/internationellt/": Route(418, body="teapot", content_type="text/plain")}
    with SiteServer(root=SITE_ROOT, routes=routes) as s:
        assert fetch(s.url("/internationellt/"))[:1] == (418,)
        assert fetch(s.url("/internationellt/vasa.html"))[0] == 200
        s.add_route("/internationellt/vasa.html", Route(410))
        assert fetch(s.url("/internationellt/vasa.html"))[0] == 410


def test_request_log(server: SiteServer) -> None:
    before = time.monotonic()
    fetch(server.url("/internationellt/"), "HEAD")
    fetch(server.url("/missing?x=1"))
    assert [(m, p) for m, p, _ in server.requests] == [
        ("HEAD", "/internationellt/"),
        ("GET", "/missing?x=1"),
    ]
    times = [t for _, _, t in server.requests]
    assert before <= times[0] <= times[1] <= time.monotonic()


def test_delay_and_custom_handler() -> None:
    def teapot(h) -> None:  # type: ignore[no-untyped-def]
        h.send_response(418)
        h.send_header("Content-Length", "2")
        h.end_headers()
        h.wfile.write(b"hi")

    def reset(h) -> None:  # type: ignore[no-untyped-def]
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
        h.close_connection = True

    routes = {
        "/slow": Route(body="late", delay=0.3),
        "/teapot": Route(handler=teapot),
        "/reset": Route(handler=reset),
    }
    with SiteServer(routes=routes) as s:
        assert fetch(s.url("/slow"))[2] == b"late"
        with pytest.raises(TimeoutError):  # held back: not answered within 0.1 s
            fetch(s.url("/slow"), timeout=0.1)
        assert fetch(s.url("/teapot"))[:1] == (418,)
        assert fetch(s.url("/teapot"))[2] == b"hi"
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            fetch(s.url("/reset"))


def test_redirect_route_needs_redirect_status() -> None:
    with pytest.raises(ValueError, match="redirect status"):
        Route(redirect_to="/elsewhere")
    assert Route(308, redirect_to="/elsewhere").status == 308


def test_stop_does_not_wait_for_an_open_keep_alive_connection() -> None:
    s = SiteServer("127.0.0.2", root=SITE_ROOT).start()
    conn = http.client.HTTPConnection(s.host, s.port, timeout=5)
    conn.request("GET", "/robots.txt")
    assert conn.getresponse().read().startswith(b"#")
    stopper = threading.Thread(target=s.stop)
    stopper.start()
    stopper.join(timeout=30)  # an upper bound: stop closes the connection, not waits on it
    assert not stopper.is_alive(), "stop() waits for the client's idle connection"
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        conn.request("GET", "/robots.txt")
        conn.getresponse()
    conn.close()
    with pytest.raises(OSError):
        socket.create_connection((s.host, s.port), timeout=1).close()


# ----------------------------------------------------------------------------- the demo site


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("id", "name") if tag != "meta" else ():
            if a.get(key):
                self.ids.add(a[key] or "")
        attr = {"a": "href", "link": "href", "img": "src", "script": "src"}.get(tag)
        if attr and a.get(attr):
            self.links.append(a[attr] or "")


def _parse(body: bytes, charset: str = "utf-8") -> _Links:
    p = _Links()
    p.feed(body.decode(charset))
    return p


def _section_pages() -> list[str]:
    root = SITE_ROOT / "internationellt"
    return sorted(
        "/internationellt/" + ("" if f.name == "index.html" else f.name)
        for f in root.glob("*.html")
    )


def test_section_has_the_pages_the_brief_asks_for() -> None:
    pages = _section_pages()
    assert len(pages) >= 21
    assert set(pages) == set(REVIEW_DATES)
    for town in ("vasa", "harstad", "helsingor", "wurzburg", "petrozavodsk", "saskatoon"):
        assert f"/internationellt/{town}.html" in pages
    for region in ("seychellerna", "xian", "qufu", "lanzhou", "guanajuato"):
        assert f"/internationellt/{region}.html" in pages
    assert "/internationellt/återbesök-vänorter.html" in pages
    assert (SITE_ROOT / "index.html").is_file() and (SITE_ROOT / "kontakt/index.html").is_file()


def test_review_dates_are_on_the_pages(demo: DemoServers) -> None:
    for path, (date, snippet) in REVIEW_DATES.items():
        status, headers, body, _ = fetch(demo.main.url(path))
        assert status == 200, path
        text = body.decode(headers.get_content_charset())
        if date is None:
            for marker in ("granskad", "uppdaterad", "publicerad", "modified", "reviewed"):
                assert marker not in text.lower(), (path, marker)
        else:
            assert snippet in text, path
    stale = {p.page for p in demo.planted() if p.check == "stale_page"}
    too_old = {
        demo.main.url(path)
        for path, (date, _) in REVIEW_DATES.items()
        if date and (AS_OF - date).days > 365
    }
    fresh = {
        demo.main.url(p) for p, (d, _) in REVIEW_DATES.items() if d and d >= dt.date(2026, 1, 1)
    }
    assert stale == too_old and len(stale) >= 5 and len(fresh) >= 10


def test_every_link_on_the_demo_site_is_planted_or_works(demo: DemoServers) -> None:
    """No accidental problems: each link is either a planted one or must come out ok."""
    planted = {p.target for p in demo.planted() if p.target}
    ok = set(demo.ok_links())
    hosts = {demo.main.base_url, demo.ext1.base_url, demo.ext2.base_url}
    seen_planted: set[str] = set()
    checked: dict[str, int] = {}
    for path in _section_pages():
        page_url = demo.main.url(path)
        status, headers, body, _ = fetch(page_url)
        assert status == 200
        for href in _parse(body, headers.get_content_charset()).links:
            assert "{{" not in href
            url = urljoin(page_url, href)
            scheme = urlsplit(url).scheme
            if scheme in ("mailto", "tel", "javascript"):
                assert url in ok, url
                continue
            assert scheme == "http", url
            if url in planted:
                seen_planted.add(url)
                continue
            base = f"http://{urlsplit(url).netloc}"
            assert base in hosts, f"unplanned outside link {url} on {path}"
            if base != demo.main.base_url:
                assert url in ok, f"external link {url} on {path} is neither planted nor ok"
            target, _, fragment = url.partition("#")
            if target not in checked:
                checked[target] = fetch(target)[0]
                if checked[target] == 429:  # the planted 429-then-200: a retry succeeds
                    checked[target] = fetch(target)[0]
            assert checked[target] == 200, (url, path)
            if fragment:
                _, t_headers, t_body, _ = fetch(target)
                ids = _parse(t_body, t_headers.get_content_charset()).ids
                assert unquote(fragment) in ids, url
    # The links inside the flyer PDF: one planted, the others must work.
    for link in extract_links(fetch(demo.main.url(FLYER))[2]).links:
        if link.uri in planted:
            seen_planted.add(link.uri)
        else:
            assert link.uri in ok and fetch(link.uri)[0] == 200, link
    assert seen_planted == planted
    demo.reset()  # re-arm the 429 for later tests


def test_planted_list_is_consistent(demo: DemoServers) -> None:
    planted = demo.planted()
    assert len(PLANTED) == len(planted) >= 20
    assert {p.check for p in planted} == {
        "stale_page",
        "missing_review_date",
        "broken_link",
        "redirect",
        "unverified_link",
        "missing_pdf",
    }
    assert {p.detail for p in planted if p.check == "broken_link"} >= {
        "http_404",
        "dns",
        "refused",
        "missing_fragment",
        "soft_404",
        "redirect_loop",
    }
    assert {p.detail for p in planted if p.check == "missing_pdf"} == {
        "not_a_pdf",
        "http_404",
        "redirected_to_html",
    }
    watched = [p for p in planted if p.watched]
    assert watched and all(any(p.target.startswith(w) for w in demo.watched) for p in watched)
    flyer = demo.main.url(FLYER)
    for p in planted:
        # A page of the section, or a page of the flyer PDF (the links inside it).
        assert p.page in demo.review_dates() or p.page.startswith(flyer + "#page="), p
    assert len(OK_LINKS) == len(demo.ok_links())


def test_unreachable_targets_really_are_unreachable() -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.4", 9), timeout=2).close()
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("vanort-saskatoon.invalid", 80)


def _keys(table: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in table.items():
        out.add(prefix + key)
        if isinstance(value, dict) and not (prefix + key).endswith("max_age_by_prefix"):
            out |= _keys(value, f"{prefix}{key}.")
    return out


def test_demo_config_uses_known_keys(demo: DemoServers) -> None:
    text = demo.config_text()
    assert "{START_URL}" not in text and "{EXT1}" not in text
    cfg = tomllib.loads(text)
    defaults = tomllib.loads((REPO / "config" / "default.toml").read_text(encoding="utf-8"))
    assert _keys({k: v for k, v in cfg.items() if k != "owners"}) <= _keys(defaults)
    assert cfg["site"]["name"] == "umea.se/internationellt (demo)"
    assert cfg["site"]["start_urls"] == [demo.start_url]
    assert cfg["links"]["watched"] == demo.watched
    assert cfg["email"]["fallback_to"] == "webbredaktion@umea.example"
    owners = cfg["owners"]
    assert {o["language"] for o in owners} == {"sv", "en"}
    for owner in owners:
        assert set(owner) <= {"match", "name", "emails", "language", "edit_url"}
        assert all(m.startswith(demo.start_url) for m in owner["match"])
        assert "{url}" in owner["edit_url"]
    assert CONFIG_TEMPLATE.read_text(encoding="utf-8").count("{START_URL}") >= 3
