"""``ResolveCache`` gives exactly what ``resolve`` gives: same join key, same result."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.pages.urls import ResolveCache, join_key, resolve

DIRS = [
    "http://h/",
    "http://h/a/",
    "http://H:80/a/",
    "https://h/a//",
    "http://h:8080/a/b/",
    "http://g/x/",
    "http://h",
    "http://h/a/b;p/",
]
NAMES = ["", "x.html", "y.html?q=1", "z#f", "w;p?q#f", "v?y=/z/", "u?", "t#"]
HREF_CHARS = st.sampled_from([*"/.?#:;%@ ab\\\t\x01", "http", "HTTP", "mailto", "//", ".."])
HREFS = st.one_of(
    st.lists(HREF_CHARS, max_size=8).map("".join),
    st.sampled_from(
        [
            "",
            "//",
            "///x",
            "http:",
            "http:?q",
            "http://",
            "https://z/",
            "mailto:a@b",
            " #a",
            "\x01#f",
        ]
    ),
)


def _same(a: object, b: object) -> bool:
    return (a.base, a.fragment, a.skip) == (b.base, b.fragment, b.skip)  # type: ignore[attr-defined]


@settings(max_examples=1000, deadline=None)
@given(d=st.sampled_from(DIRS), n1=st.sampled_from(NAMES), n2=st.sampled_from(NAMES), h=HREFS)
def test_equal_join_keys_resolve_equally(d: str, n1: str, n2: str, h: str) -> None:
    p1, p2 = d + n1, d + n2
    if join_key(p1, h) == join_key(p2, h):
        assert _same(resolve(p1, h), resolve(p2, h)), (p1, p2, h)


@settings(max_examples=500, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from(DIRS), st.sampled_from(NAMES), HREFS), max_size=40))
def test_cache_matches_resolve(pairs: list[tuple[str, str, str]]) -> None:
    cache = ResolveCache(size=16)
    for d, n, h in pairs:
        assert _same(cache(d + n, h), resolve(d + n, h))


def test_cache_is_bounded_and_counts() -> None:
    cache = ResolveCache(size=3)
    for i in range(10):
        cache("http://h/a/p.html", f"x{i}.html")
    cache("http://h/a/q.html", "x9.html")
    assert cache.hits == 1
    assert len(cache._cache) <= 3


URL_CHARS = st.sampled_from([*"/.?#:;%@ ab~!$&'()*+,=-_AZ09[]{}|\\^\"<>`é", "%20", "%zz", ":80"])


@settings(max_examples=1000, deadline=None)
@given(h=st.lists(URL_CHARS, max_size=12).map("".join))
def test_verbatim_urls_are_what_scrapy_would_send(h: str) -> None:
    from w3lib.url import safe_url_string

    from crawler.engine.modes import _VERBATIM_URL

    r = resolve("http://127.0.0.1:8080/a/b.html", h)
    if not r.skip and _VERBATIM_URL.fullmatch(r.base):
        assert safe_url_string(r.base) == r.base
