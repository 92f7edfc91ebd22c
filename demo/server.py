"""A small, fast, threaded HTTP/1.1 server for loopback tests and the demo.

``SiteServer`` serves static files from a directory plus ``Route``s: special behaviours
for single paths (statuses, redirects, HEAD-only refusals, first-N failures, delays, or
a fully custom handler). It binds to any 127.0.0.x address, so one test can run a
"main site" on 127.0.0.1 and stand-in outside sites on 127.0.0.2 and 127.0.0.3.

Example::

    with SiteServer(root=Path("demo/site"), routes={"/old/": Route(301, redirect_to="/new/")}) as s:
        urllib.request.urlopen(s.url("/internationellt/"))
        assert s.hits("/internationellt/") == 1

Behaviour worth knowing:

- HTTP/1.1 with keep-alive; every response carries a correct ``Content-Length``; HEAD
  answers with the headers GET would send and no body.
- Paths are matched after percent-decoding, so ``/%C3%A5ter.html`` and a raw UTF-8
  ``/återbesök.html`` request both reach the file ``återbesök.html`` (or a route
  registered under either form). A route registered with a query string matches only
  that query; a route without one matches the path with any query. A route whose path
  ends in ``*`` matches every path starting with the rest (longest prefix wins; exact
  routes first), for URL spaces without end such as calendars and crawl traps.
- Routes take precedence over files. Without a file or route the answer is a 404 page
  whose title and heading say "Sidan kunde inte hittas". A directory path without its
  trailing slash is answered 301 to the slash form, as common web servers do.
- ``substitutions`` (placeholder -> text) are applied to every text/html body, files and
  routes alike, and to redirect ``Location``s; Content-Length is computed afterwards.
- ``requests`` logs ``(method, raw path, time.monotonic())`` for every request;
  ``spans`` logs ``(method, raw path, arrival, finish)`` once the answer is written (finish:
  as its head goes out), so tests can measure how many requests a client had in flight at
  once (``max_in_flight``).
- Quiet: nothing is logged to stderr except tracebacks of bugs in this module.
"""

from __future__ import annotations

import codecs
import contextlib
import html
import re
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import quote, unquote, urlsplit

__all__ = ["CONTENT_TYPES", "NOT_FOUND_HTML", "REDIRECT_STATUSES", "Route", "SiteServer"]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

#: Content types by file suffix; anything else is application/octet-stream.
CONTENT_TYPES: Mapping[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".pdf": "application/pdf",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".json": "application/json",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"

NOT_FOUND_HTML = """<!DOCTYPE html>
<html lang="sv">
<head>
<meta charset="utf-8">
<title>Sidan kunde inte hittas</title>
</head>
<body>
<h1>Sidan kunde inte hittas</h1>
<p>Sidan du försökte nå finns inte. Den kan ha flyttats eller tagits bort.</p>
<p>Felkod: 404</p>
</body>
</html>
"""

_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_CT_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9_.:-]+)", re.I)
_NO_BODY = frozenset({204, 304})
#: Characters left alone when percent-encoding a path (reserved ones and "%").
_URL_SAFE = "/:?#[]@!$&'()*+,;=%~"


@dataclass
class Route:
    """A special behaviour for one path (the path includes the query string when given)."""

    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/html; charset=utf-8"
    #: Status for HEAD while GET answers ``status`` (e.g. 405 or 403); 405 adds ``Allow: GET``.
    head_status: int | None = None
    #: ``Location`` (relative or absolute); ``status`` must then be 301/302/303/307/308.
    redirect_to: str | None = None
    #: Answer ``fail_status`` to the first N requests (GET and HEAD alike). 429 and 503
    #: carry ``Retry-After`` (``headers["Retry-After"]`` if given, else "1").
    fail_first: int = 0
    fail_status: int = 429
    #: Seconds to sleep before answering (timeouts).
    delay: float = 0.0
    #: Full custom behaviour: called with the request handler, writes the whole response
    #: itself (or resets the connection, trickles bytes, ...). ``delay`` still applies.
    handler: Callable[[BaseHTTPRequestHandler], None] | None = None

    def __post_init__(self) -> None:
        if self.redirect_to is not None and self.status not in REDIRECT_STATUSES:
            raise ValueError(
                f"Route(redirect_to={self.redirect_to!r}) needs a redirect status "
                f"(one of {sorted(REDIRECT_STATUSES)}), not {self.status}"
            )


def _fix_raw(target: str) -> str:
    """Undo http.server's ISO-8859-1 decoding of a request line sent as raw UTF-8."""
    if target.isascii():
        return target
    try:
        return target.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return target


def _keys(target: str) -> tuple[str, str]:
    """(decoded path with query, decoded path) for a raw request target."""
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
    target = _fix_raw(target).split("#", 1)[0]
    path, _, query = target.partition("?")
    path_key = unquote(path)
    full = f"{path_key}?{unquote(query)}" if query else path_key
    return full, path_key


def _charset_of(content_type: str) -> str | None:
    m = _CT_CHARSET.search(content_type or "")
    return m.group(1) if m else None


def _codec(charset: str | None) -> str:
    if charset:
        try:
            return codecs.lookup(charset).name
        except LookupError:
            pass
    return "utf-8"


def _is_html(content_type: str) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() in {
        "text/html",
        "application/xhtml+xml",
    }


def _status_page(status: int, text: str = "") -> str:
    title = f"{status} {text}".strip()
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1></body></html>\n"
    )


def content_type_for(path: Path, body: bytes = b"") -> str:
    """Content type for a static file; HTML declares the charset of its ``<meta>``."""
    ctype = CONTENT_TYPES.get(path.suffix.lower(), DEFAULT_CONTENT_TYPE)
    if _is_html(ctype):
        m = _META_CHARSET.search(body[:4096])
        if m:
            ctype = f"text/html; charset={m.group(1).decode('ascii').lower()}"
    return ctype


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sitewatch-demo/1.0"
    #: Idle keep-alive connections are closed after this many seconds.
    timeout = 30
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.server.site._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.site._track(self.connection, add=False)

    def do_GET(self) -> None:
        self.server.site._serve(self, head=False)

    def do_HEAD(self) -> None:
        self.server.site._serve(self, head=True)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], site: SiteServer) -> None:
        self.site = site
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # client went away, reset, timed out: not our bug
            return
        super().handle_error(request, client_address)


class SiteServer:
    """Static files from ``root`` plus ``routes``, on ``host:port`` (0 = any free port).

    The socket is bound on construction, so ``base_url`` is known before ``start()``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        root: Path | str | None = None,
        routes: Mapping[str, Route] | None = None,
        name: str | None = None,
        substitutions: Mapping[str, str] | None = None,
        validators: bool = False,
    ) -> None:
        #: Static files carry ETag and Last-Modified and are answered 304 to a matching
        #: If-None-Match / If-Modified-Since, as nginx does (off by default: Last-Modified
        #: is a review-date source of last resort).
        self.validators = validators
        #: 304 answers given (``validators``).
        self.not_modified = 0
        self.root: Path | None = Path(root).resolve() if root is not None else None
        self.name = name or f"site@{host}"
        #: Routes as registered (path as given -> Route).
        self.routes: dict[str, Route] = {}
        #: Placeholder -> replacement, applied to text/html bodies and redirect Locations.
        self.substitutions: dict[str, str] = dict(substitutions or {})
        #: (method, raw path, time.monotonic()) for every request, in arrival order.
        self.requests: list[tuple[str, str, float]] = []
        #: (method, raw path, arrival, finish) per request answered (or abandoned).
        self.spans: list[tuple[str, str, float, float]] = []
        self._lock = threading.Lock()
        self._by_key: dict[str, Route] = {}
        #: (decoded prefix, route) for routes registered as "/prefix*", longest first.
        self._prefixes: list[tuple[str, Route]] = []
        self._hits: dict[str, int] = {}
        self._conns: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        self._stopped = False
        for path, route in (routes or {}).items():
            self.add_route(path, route)
        self._httpd = _Server((host, port), self)

    # -- addresses ---------------------------------------------------------------------

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, path: str = "/") -> str:
        """Absolute URL for ``path``; non-ASCII characters are percent-encoded."""
        if not path.startswith("/"):
            path = "/" + path
        return self.base_url + quote(path, safe=_URL_SAFE)

    # -- configuration -----------------------------------------------------------------

    def add_route(self, path: str, route: Route) -> None:
        """Register (or replace) the behaviour for ``path``; resets its request counter."""
        key = _keys(path)[0]
        with self._lock:
            self.routes[path] = route
            if key.endswith("*"):
                prefix = key[:-1]
                self._prefixes = [(p, r) for p, r in self._prefixes if p != prefix]
                self._prefixes.append((prefix, route))
                self._prefixes.sort(key=lambda pr: -len(pr[0]))
            else:
                self._by_key[key] = route
            self._hits.pop(key, None)

    def hits(self, path: str, method: str | None = None) -> int:
        """How many requests reached ``path`` (decoded; with its query only if given)."""
        want_full, want_path = _keys(path)
        use_full = "?" in want_full
        with self._lock:
            log = list(self.requests)
        n = 0
        for m, raw, _ in log:
            if method is not None and m != method:
                continue
            full, p = _keys(raw)
            if (full == want_full) if use_full else (p == want_path):
                n += 1
        return n

    def reset(self) -> None:
        """Forget the request log and the ``fail_first`` counters."""
        with self._lock:
            self.requests.clear()
            self.spans.clear()
            self._hits.clear()

    def max_in_flight(self) -> int:
        """The most requests this server was handling at one moment (from ``spans``)."""
        with self._lock:
            spans = list(self.spans)
        events = sorted([(a, 1) for _, _, a, _ in spans] + [(f, -1) for _, _, _, f in spans])
        most = now = 0
        for _, step in events:  # at equal times a finish (-1) sorts before an arrival
            now += step
            most = max(most, now)
        return most

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> SiteServer:
        """Serve in a background thread; returns self."""
        if self._stopped:
            raise RuntimeError(f"{self.name} was stopped; create a new SiteServer")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"SiteServer {self.name} {self.base_url}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and any open keep-alive connections."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> SiteServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SiteServer {self.name} {self.base_url} root={self.root}>"

    # -- request handling (called from handler threads) --------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _serve(self, h: BaseHTTPRequestHandler, *, head: bool) -> None:
        target = h.path
        full, path_key = _keys(target)
        arrival = time.monotonic()
        h.sw_finish = None  # type: ignore[attr-defined]  # (one handler serves a connection)
        try:
            self._answer(h, head, target, full, path_key, arrival)
        finally:
            # Taken after the answer was written, a finish could come after the client's
            # next request reached another server (this thread waiting for a CPU), and
            # two requests that never overlapped would seem to.
            finish = h.sw_finish or time.monotonic()  # type: ignore[attr-defined]
            with self._lock:
                self.spans.append((h.command, target, arrival, finish))

    def _answer(
        self,
        h: BaseHTTPRequestHandler,
        head: bool,
        target: str,
        full: str,
        path_key: str,
        arrival: float,
    ) -> None:
        with self._lock:
            self.requests.append((h.command, target, arrival))
            key = full if full in self._by_key else path_key
            route = self._by_key.get(key)
            if route is None:
                for prefix, candidate in self._prefixes:
                    if path_key.startswith(prefix):
                        key, route = prefix + "*", candidate
                        break
            n = 0
            if route is not None:
                n = self._hits[key] = self._hits.get(key, 0) + 1
        if route is not None:
            self._serve_route(h, head, route, n)
        else:
            self._serve_file(h, head, target, path_key)

    def _serve_route(self, h: BaseHTTPRequestHandler, head: bool, route: Route, n: int) -> None:
        if route.delay > 0:
            time.sleep(route.delay)
        if route.handler is not None:
            route.handler(h)
            return
        html_type = "text/html; charset=utf-8"
        if n <= route.fail_first:
            headers = {}
            if route.fail_status in (429, 503):
                headers["Retry-After"] = route.headers.get("Retry-After", "1")
            body = _status_page(route.fail_status, h.responses.get(route.fail_status, ("",))[0])
            self._send(h, head, route.fail_status, body, html_type, headers)
            return
        if head and route.head_status is not None:
            headers = {"Allow": "GET"} if route.head_status == 405 else {}
            body = _status_page(route.head_status, h.responses.get(route.head_status, ("",))[0])
            self._send(h, head, route.head_status, body, html_type, headers)
            return
        headers = dict(route.headers)
        body: bytes | str = route.body
        if route.redirect_to is not None:
            location = self._substitute_text(route.redirect_to)
            headers["Location"] = location
            if not body:
                href = html.escape(location, quote=True)
                body = (
                    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Flyttad</title>'
                    f'</head><body><p>Sidan har flyttats till <a href="{href}">{href}</a>.</p>'
                    "</body></html>\n"
                )
        self._send(h, head, route.status, body, route.content_type, headers)

    def _serve_file(
        self, h: BaseHTTPRequestHandler, head: bool, target: str, path_key: str
    ) -> None:
        fs = self._resolve(path_key)
        if fs is None:
            self._send(h, head, 404, NOT_FOUND_HTML, "text/html; charset=utf-8", {})
            return
        if fs.is_dir():
            if not path_key.endswith("/"):
                raw_path, _, query = _fix_raw(target).partition("?")
                location = (
                    quote(raw_path, safe=_URL_SAFE)
                    + "/"
                    + (f"?{quote(query, safe=_URL_SAFE)}" if query else "")
                )
                headers = {"Location": location}
                self._send(h, head, 301, _status_page(301), "text/html; charset=utf-8", headers)
                return
            fs = fs / "index.html"
        try:
            body = fs.read_bytes()
        except OSError:
            self._send(h, head, 404, NOT_FOUND_HTML, "text/html; charset=utf-8", {})
            return
        headers: dict[str, str] = {}
        if self.validators:
            st = fs.stat()
            etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
            last_mod = formatdate(int(st.st_mtime), usegmt=True)
            headers = {"ETag": etag, "Last-Modified": last_mod}
            inm = h.headers.get("If-None-Match")
            ims = h.headers.get("If-Modified-Since")
            if (inm is not None and etag in [v.strip() for v in inm.split(",")]) or (
                inm is None and ims == last_mod
            ):
                with self._lock:
                    self.not_modified += 1
                self._send(h, head, 304, b"", "", headers)
                return
        self._send(h, head, 200, body, content_type_for(fs, body), headers)

    def _resolve(self, path_key: str) -> Path | None:
        if self.root is None or "\x00" in path_key:
            return None
        try:
            fs = (self.root / path_key.lstrip("/")).resolve()
            if not fs.is_relative_to(self.root) or not fs.exists():
                return None
        except (OSError, ValueError):
            return None
        return fs

    def _substitute_text(self, text: str) -> str:
        with self._lock:
            subs = list(self.substitutions.items())
        for placeholder, value in subs:
            text = text.replace(placeholder, value)
        return text

    def _substitute(self, body: bytes, codec: str) -> bytes:
        with self._lock:
            subs = list(self.substitutions.items())
        for placeholder, value in subs:
            try:
                body = body.replace(placeholder.encode(codec), value.encode(codec))
            except UnicodeError:
                continue
        return body

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        head: bool,
        status: int,
        body: bytes | str,
        content_type: str,
        headers: Mapping[str, str],
    ) -> None:
        codec = _codec(_charset_of(content_type))
        if isinstance(body, str):
            body = body.encode(codec, errors="xmlcharrefreplace")
        if _is_html(content_type) and self.substitutions:
            body = self._substitute(body, codec)
        no_body = status in _NO_BODY or status < 200
        lower = {k.lower() for k in headers}
        h.send_response(status)
        if content_type and "content-type" not in lower:
            h.send_header("Content-Type", content_type)
        if not no_body and "content-length" not in lower:
            h.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            h.send_header(name, value)
        # The span ends as the answer goes out: the client cannot have it (and send its
        # next request, maybe to another server) before this.
        h.sw_finish = time.monotonic()  # type: ignore[attr-defined]
        h.end_headers()
        if not head and not no_body:
            h.wfile.write(body)
        h.wfile.flush()
