"""The one HTTP stack (crawler/http/http1.py read by both clients: the audit's Scrapy download
handler crawler/http/handler.py and the re-run pass's crawler/http/client.py) against real
servers on loopback: nginx (HTTP/1.1, Content-Length, chunked SSI output, 304s, keep-alive),
Python's http.server (HTTP/1.0, no Content-Length, the body ended by the close), a chunked
server, a raw server that closes in the middle of a body (always an error, never a short
body taken as whole), and https through a CONNECT proxy (the audit's handler speaks to
proxies itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from scrapy import Request
from scrapy.exceptions import (
    DownloadConnectionRefusedError,
    DownloadFailedError,
    ResponseDataLossError,
)

from crawler.http import http1
from crawler.http.client import Answer, Client
from tests.raw_http import RawServer
from tests.test_http_handler import _with_handler

NGINX = "/usr/sbin/nginx"
BIG = bytes(range(256)) * 4096  # 1 MiB


def _scrapy_get(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> Any:
    async def go(handler: Any) -> Any:
        try:
            return await handler.download_request(Request(url, method=method, headers=headers))
        except Exception as e:
            return e

    return _with_handler(go, DOWNLOAD_MAXSIZE=0)


def _client_get(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> Any:
    async def go() -> Answer | Exception:
        http = Client("sitewatch-test", timeout=5)
        try:
            return await http.request(method, url, headers, body_limit=10 * len(BIG))
        except Exception as e:
            return e
        finally:
            http.close()

    return asyncio.run(go())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def nginx() -> Iterator[str]:
    if not Path(NGINX).exists():
        pytest.skip(f"nginx is not installed ({NGINX} missing)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # nginx's workers run as another user when started as root
        www = root / "www"
        (www / "ssi").mkdir(parents=True)
        (www / "big.bin").write_bytes(BIG)
        (www / "page.html").write_text("<p>sida</p>" * 100)
        (www / "ssi" / "part.html").write_text("<p>del</p>\n" * 500)
        (www / "ssi" / "index.html").write_text(
            '<html><!--# include file="part.html" --><!--# include file="part.html" --></html>'
        )
        port = _free_port()
        (root / "nginx.conf").write_text(
            f"""
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    default_type text/html;
    server {{
        listen 127.0.0.1:{port};
        root {www};
        location /ssi/ {{ ssi on; }}
    }}
}}
"""
        )
        proc = subprocess.Popen(
            [NGINX, "-c", str(root / "nginx.conf"), "-p", str(root)],
            stderr=subprocess.PIPE,
        )
        try:
            for _ in range(200):  # until it listens (or exits)
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=5).close()
                    break
                except OSError:
                    if proc.poll() is not None:
                        pytest.skip(f"nginx did not start: {proc.stderr.read()!r}")  # type: ignore[union-attr]
                    threading.Event().wait(0.05)  # a readiness poll, not a timed assert
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.mark.parametrize("get", [_scrapy_get, _client_get])
def test_nginx_static_files_304s_and_chunked_ssi(nginx: str, get: Any) -> None:
    big = get(f"{nginx}/big.bin")
    assert big.status == 200 and big.body == BIG
    page = get(f"{nginx}/page.html")
    etag = page.headers.get("etag") or page.headers.get("ETag")
    etag = etag.decode() if isinstance(etag, bytes) else etag
    again = get(f"{nginx}/page.html", headers={"If-None-Match": etag})
    assert again.status == 304 and again.body == b""
    head = get(f"{nginx}/big.bin", method="HEAD")
    assert head.status == 200 and head.body == b""
    missing = get(f"{nginx}/saknas.html")
    assert missing.status == 404 and b"404" in missing.body
    ssi = get(f"{nginx}/ssi/index.html")
    assert ssi.status == 200 and ssi.body == b"<html>" + b"<p>del</p>\n" * 1000 + b"</html>"


def test_nginx_ssi_answer_is_chunked(nginx: str) -> None:
    """The case above does read a chunked body (nginx frames SSI output so)."""

    async def go() -> http1.Head:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(nginx.rsplit(":", 1)[1]))
        writer.write(b"GET /ssi/index.html HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            return await http1.read_head(http1.Stream(reader), "GET")
        finally:
            writer.close()

    assert asyncio.run(go()).length == http1.CHUNKED


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.0 answers without Content-Length (the body ends with the connection); on
    /chunked an HTTP/1.1 chunked answer with an extension and a trailer."""

    def do_GET(self) -> None:
        if self.path == "/chunked":
            self.protocol_version = "HTTP/1.1"
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            for piece in (BIG[:1000], BIG[1000:70000]):
                self.wfile.write(b"%X;n=1\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\nExpires: 0\r\n\r\n")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self.wfile.write(BIG)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.2", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.2:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("get", [_scrapy_get, _client_get])
def test_http10_server_without_content_length(http_server: str, get: Any) -> None:
    got = get(f"{http_server}/file")
    assert got.status == 200 and got.body == BIG


@pytest.mark.parametrize("get", [_scrapy_get, _client_get])
def test_chunked_server_with_extensions_and_trailer(http_server: str, get: Any) -> None:
    got = get(f"{http_server}/chunked")
    assert got.status == 200 and got.body == BIG[:70000]


_CUT = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + BIG[:5000],
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2000\r\n" + BIG[:3000],
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + BIG[:16] + b"\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Len",
]


@pytest.mark.parametrize("answer", _CUT, ids=["length", "in-chunk", "between-chunks", "head"])
def test_a_server_closing_early_is_an_error_never_a_short_body(answer: bytes) -> None:
    with RawServer(lambda n: answer, close_after=1) as server:
        scrapy_got = _scrapy_get(server.url("/"))
        client_got = _client_get(server.url("/"))
    if answer.endswith(b"Content-Len"):  # in the head: the download failed
        assert isinstance(scrapy_got, DownloadFailedError), scrapy_got
    else:  # in the body: Scrapy's data loss (the spider reports a truncated body)
        assert isinstance(scrapy_got, ResponseDataLossError), scrapy_got
    assert isinstance(client_got, http1.DataLoss), client_got


# -- https through a CONNECT proxy -----------------------------------------------------------


class _TunnelProxy:
    """A CONNECT proxy: answers ``status`` to each CONNECT (200: then relays bytes both
    ways). Keeps every CONNECT head."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.heads: list[bytes] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.4", 0))
        self._sock.listen(8)
        self.url = f"http://127.0.0.4:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = conn.recv(4096)
            if not data:
                conn.close()
                return
            buf += data
        head = buf.split(b"\r\n\r\n")[0]
        self.heads.append(head)
        if self.status != 200:
            conn.sendall(b"HTTP/1.1 %d No\r\nContent-Length: 0\r\n\r\n" % self.status)
            conn.close()
            return
        host, _, port = head.split(b" ")[1].decode().rpartition(":")
        upstream = socket.create_connection((host, int(port)))
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        threading.Thread(target=_relay, args=(upstream, conn), daemon=True).start()
        _relay(conn, upstream)


def _relay(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


class _TLSHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = (
            b"secret "
            + self.path.encode()
            + b" "
            + str(self.headers.get("Proxy-Authorization")).encode()
        )
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def tls_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    d = tmp_path_factory.mktemp("tls")
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
        capture_output=True,
    )  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"openssl could not make a test certificate: {made.stderr!r}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(d / "cert.pem", d / "key.pem")
    server = ThreadingHTTPServer(("127.0.0.3", 0), _TLSHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.3:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _through(proxy: str, urls: list[str]) -> list[Any]:
    async def go(handler: Any) -> list[Any]:
        got = []
        for url in urls:
            request = Request(
                url, meta={"proxy": proxy}, headers={"Proxy-Authorization": "Basic dTpw"}
            )
            try:
                got.append(await handler.download_request(request))
            except Exception as e:
                got.append(e)
        return got

    return _with_handler(go, DOWNLOAD_VERIFY_CERTIFICATES=False)


def test_https_through_a_connect_tunnel(tls_site: str) -> None:
    """TLS to the site inside the tunnel; the proxy's credentials on the CONNECT only;
    the tunnelled connection kept for the next request to that site."""
    proxy = _TunnelProxy()
    try:
        got = _through(proxy.url, [f"{tls_site}/a", f"{tls_site}/b"])
    finally:
        proxy.close()
    assert [(r.status, r.body) for r in got] == [(200, b"secret /a None"), (200, b"secret /b None")]
    authority = tls_site.removeprefix("https://").encode()
    assert len(proxy.heads) == 1
    assert proxy.heads[0].startswith(b"CONNECT %s HTTP/1.1\r\n" % authority)
    assert b"\r\nProxy-Authorization: Basic dTpw" in proxy.heads[0]


def test_a_refused_connect_is_a_connection_error(tls_site: str) -> None:
    proxy = _TunnelProxy(status=407)
    try:
        (got,) = _through(proxy.url, [f"{tls_site}/a"])
    finally:
        proxy.close()
    assert isinstance(got, DownloadConnectionRefusedError) and "407" in str(got)
