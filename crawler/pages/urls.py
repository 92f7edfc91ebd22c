"""URL handling for the crawl: joining hrefs, scope, exclusion and crawl-trap shapes."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from crawler.pages.url_syntax import whatwg_valid

SKIP_SCHEMES = {"mailto": "mailto", "tel": "tel", "javascript": "javascript", "data": "data"}
_DIGITS = re.compile(r"\d+")
_SAFE = "/%:@!$&'()*+,;=-._~"
_SAFE_QUERY = _SAFE + "?"
#: Query keys that only carry a session id (lower case): dropped when normalising, as
#: every answer may hand out a fresh one and the URL space never ends.
SESSION_PARAMS = frozenset(
    {"jsessionid", "phpsessid", "aspsessionid", "sessionid", "cfid", "cftoken", "oscsid", "zenid"}
)
#: Keys that are session ids only when the value looks like a token (``?sid=3`` may well be
#: "sida 3"): dropped when the value is at least 16 characters long.
LOOSE_SESSION_PARAMS = frozenset({"sid", "sessid", "session_id", "session"})
_SESSION_HINTS = ("sid", "sess", "cfid", "cftoken", "zenid")
#: ``;jsessionid=…`` path parameters and ASP.NET's cookieless ``/(S(…))/`` segments.
_PATH_SESSION = re.compile(r";(?:jsessionid|phpsessid|sid|sessionid)=[^/;]*|/\(S\([^)/]*\)\)", re.I)
#: A skipped or malformed href is its own target "URL", cut to this many characters: a
#: ``data:`` image of 600 KB is not repeated in every report.
MAX_SKIPPED_URL = 300


def _cut(raw: str) -> str:
    return raw if len(raw) <= MAX_SKIPPED_URL else raw[: MAX_SKIPPED_URL - 1] + "…"


class Resolved:
    """An href resolved against its page: absolute URL without fragment, and the fragment."""

    __slots__ = ("base", "fragment", "skip")

    def __init__(self, base: str, fragment: str | None, skip: str | None = None) -> None:
        self.base = base
        self.fragment = fragment
        self.skip = skip


def resolve(page_url: str, href: str) -> Resolved:
    """Join ``href`` to ``page_url``; ``skip`` names why it is not fetched, if so."""
    raw = href.strip()
    head = raw[:12].lower()
    colon = head.find(":")
    if colon > 0:
        scheme = head[:colon]
        if scheme in SKIP_SCHEMES:
            return Resolved(_cut(raw), None, SKIP_SCHEMES[scheme])
    if not whatwg_valid(page_url, raw):  # crawler/pages/url_syntax.py
        return Resolved(_cut(raw), None, "malformed_url")
    try:
        joined = urljoin(page_url, raw)
        parts = urlsplit(joined)
        host = parts.hostname  # raises ValueError on bad IPv6 literals
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        return Resolved(_cut(raw), None, "malformed_url")
    if parts.scheme not in ("http", "https"):
        if parts.scheme in SKIP_SCHEMES:
            return Resolved(_cut(raw), None, SKIP_SCHEMES[parts.scheme])
        return Resolved(_cut(joined), None, "scheme")
    if not host:
        return Resolved(_cut(raw), None, "malformed_url")
    path = parts.path
    if ";" in path or "(" in path:
        path = _PATH_SESSION.sub("", path)
    query = parts.query
    if query and any(h in query.lower() for h in _SESSION_HINTS):
        query = strip_session_params(query)
    path = quote(path, safe=_SAFE) or "/"
    query = quote(query, safe=_SAFE_QUERY)
    netloc = parts.netloc.lower() if "@" not in parts.netloc else parts.netloc
    if (parts.scheme == "http" and netloc.endswith(":80")) or (
        parts.scheme == "https" and netloc.endswith(":443")
    ):
        netloc = netloc.rsplit(":", 1)[0]
    base = urlunsplit((parts.scheme, netloc, path, query, ""))
    frag = parts.fragment if "#" in raw else None
    return Resolved(base, frag)


def strip_session_params(query: str) -> str:
    """``query`` without session-id parameters (order and spelling of the rest kept)."""
    kept = []
    for kv in query.split("&"):
        key, _, value = kv.partition("=")
        key = key.lower()
        if key in SESSION_PARAMS or (key in LOOSE_SESSION_PARAMS and len(value) >= 16):
            continue
        kept.append(kv)
    return "&".join(kept)


def directory_of(url: str) -> str:
    """The directory prefix of a URL: scheme://host:port/path/ up to the last slash."""
    parts = urlsplit(url)
    path = parts.path or "/"
    path = path[: path.rfind("/") + 1]
    return urlunsplit((parts.scheme, parts.netloc.lower(), path, "", ""))


def in_scope(url: str, scopes: Iterable[str]) -> bool:
    return any(url.startswith(s) for s in scopes)


def trap_shape(url: str) -> str:
    """A URL's "shape": digits masked, query values dropped and keys sorted.

    Many crawled pages of one shape (``/kalender/2031/05``, ``?page=417``) signal an
    endless URL space.
    """
    parts = urlsplit(url)
    keys = sorted({kv.split("=", 1)[0] for kv in parts.query.split("&") if kv})
    return f"{parts.netloc}{_DIGITS.sub('N', parts.path)}?{'&'.join(keys)}"


def path_trap(url: str, max_segments: int) -> bool:
    """Paths that grow without end: too deep, or one segment repeated three times."""
    segs = [s for s in urlsplit(url).path.split("/") if s]
    if len(segs) > max_segments:
        return True
    seen: dict[str, int] = {}
    for s in segs:
        seen[s] = seen.get(s, 0) + 1
        if seen[s] >= 3:
            return True
    return False


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
#: Characters ``urlsplit`` removes from anywhere in a URL.
_URL_REMOVES = re.compile("[\t\r\n]")


def join_key(page_url: str, href: str) -> str:
    """The part of ``page_url`` that ``resolve(page_url, href)`` depends on.

    A reference with a path (``x.html``, ``../x``, ``//host/x``) is joined against the
    page's directory only (RFC 3986 merge), ``/x`` against its scheme and host; an absolute
    URL with a host, and the skipped schemes (mailto: ...), against nothing. Anything else
    (empty, ``?q``, ``#f``, ``;p``, ``//``, ``http:?q``, tabs or newlines that urlsplit
    removes) keys on the whole page URL.
    """
    h = href.strip()  # as resolve() does
    if not h or h[0] in "#?;" or h[0] < " " or "\t" in h or "\n" in h or "\r" in h:
        return page_url
    m = _SCHEME.match(h) if ":" in h else None
    if m:
        if h[: m.end() - 1].lower() in SKIP_SCHEMES:
            return ""
        rest = h[m.end() :]
        if rest.startswith("//") and rest[2:3] not in ("", "/", "?", "#", "\\"):
            return ""
        return page_url
    if h.startswith("//") and h[2:3] in ("", "/", "?", "#", "\\"):
        return page_url
    keys = _page_keys(page_url)
    if keys is None:
        return page_url
    if h[0] == "/" and h[1:2] != "/":
        return keys[0]  # an absolute path needs only scheme and host
    return keys[1]


@functools.lru_cache(maxsize=1024)
def _page_keys(page_url: str) -> tuple[str, str] | None:
    """``page_url``'s scheme and host, and its directory (for ``join_key``; a page's links
    ask for them one after the other)."""
    u = page_url.split("#", 1)[0].split("?", 1)[0]
    sep = u.find("://")
    slash = u.find("/", sep + 3) if sep >= 0 else -1
    if slash < 0:
        return None
    return u[:slash], u[: u.rfind("/") + 1]


class ResolveCache:
    """``resolve`` with memory: the same href on pages of one directory is joined once.

    A site's navigation repeats on every page, so most (page, href) pairs of a crawl share
    their ``join_key`` with an earlier one. Results are shared: treat them as read-only.
    The cache is emptied when it reaches ``size`` entries, which bounds its memory.
    """

    __slots__ = ("_cache", "_size", "hits", "misses")

    def __init__(self, size: int = 50_000) -> None:
        self._cache: dict[tuple[str, str], Resolved] = {}
        self._size = size
        self.hits = 0
        self.misses = 0

    def __call__(self, page_url: str, href: str) -> Resolved:
        key = (join_key(page_url, href), href)
        r = self._cache.get(key)
        if r is not None:
            self.hits += 1
            return r
        self.misses += 1
        r = None
        cut = href.find("#")
        if cut >= 0:
            # ``x.html#f``: join ``x.html`` (cached once for all its fragments) and keep
            # the fragment as ``resolve`` would, unless whitespace around the ``#`` (which
            # ``resolve`` strips from the ends of the whole href only) or a character the
            # join removes (tab, CR, LF) makes the two differ.
            part, fragment = href[:cut], href[cut + 1 :]
            if (
                fragment == fragment.rstrip()
                and part == part.rstrip()
                and not _URL_REMOVES.search(fragment)
            ):
                r0 = self(page_url, part)
                if r0.skip is None:
                    r = Resolved(r0.base, fragment)
        if r is None:
            r = resolve(page_url, href)
        if len(self._cache) >= self._size:
            self._cache.clear()
        self._cache[key] = r
        return r
