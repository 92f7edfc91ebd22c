"""Link syntax as browsers read it: srcset (HTML standard), CSS references (CSS Syntax),
URL validity (WHATWG URL Standard), and which elements links are read from."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import ada_url
import idna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.pages.css_refs import IMPORT, MAX_REFS, URL, css_refs
from crawler.pages.extract import facts_from_body
from crawler.pages.srcset import srcset_urls
from crawler.pages.stylesheets import is_stylesheet, stylesheet_refs, stylesheet_text
from crawler.pages.url_syntax import keeps_authority, whatwg_valid
from crawler.pages.urls import MAX_SKIPPED_URL, resolve

PAGE = "http://h.test/d/a.html"

# -- srcset -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "urls"),
    [
        ("a.png 1x, b.png 2x", ["a.png", "b.png"]),
        ("a.png", ["a.png"]),
        ("data:image/png;base64,AAAA 1x, x.png 2x", ["data:image/png;base64,AAAA", "x.png"]),
        ("a,b.png 2x", ["a,b.png"]),  # a comma inside a URL token
        ("a.png,b.png", ["a.png,b.png"]),  # no whitespace: one URL
        ("a.png, b.png", ["a.png", "b.png"]),  # trailing comma of a URL ends it
        ("a.png,,, b.png 100w", ["a.png", "b.png"]),
        ("a.png 1x (c, d), e.png", ["a.png", "e.png"]),  # commas inside parentheses
        ("  ,, x.png ,", ["x.png"]),
        ("a.png 100w\n,\tb.png\x0c200w", ["a.png", "b.png"]),
        ("", []),
        (" , , ", []),
    ],
)
def test_srcset_examples(value: str, urls: list[str]) -> None:
    assert srcset_urls(value) == urls


_URL_CHARS = st.text(
    alphabet=st.characters(
        codec="utf-8", blacklist_characters="\t\n\x0c\r ", blacklist_categories=("Cs",)
    ),
    min_size=1,
    max_size=30,
)
#: A candidate URL: may hold commas anywhere but at its end (which the algorithm strips)
#: and may not start with one (skipped as a separator).
_CANDIDATE_URL = _URL_CHARS.filter(lambda u: not u.startswith(",") and not u.endswith(","))
_DESCRIPTOR = st.sampled_from(["", "1x", "2x", "1.5x", "100w", "640w", "50h"])
_WS = st.text(alphabet="\t\n\x0c\r ", min_size=1, max_size=3)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_CANDIDATE_URL, _DESCRIPTOR, _WS, _WS), min_size=0, max_size=6),
    st.booleans(),
)
def test_srcset_returns_the_urls(candidates: list[tuple[str, str, str, str]], tail: bool) -> None:
    """A generated candidate list (URLs with commas inside, data: URIs, descriptors) gives
    back exactly its URLs."""
    parts = []
    for url, descriptor, ws1, ws2 in candidates:
        parts.append(ws1 + url + (ws2 + descriptor if descriptor else ""))
    # A separator comma follows a descriptor, or whitespace after a URL without one.
    value = ",".join(p if d else p + " " for p, (_, d, _, _) in zip(parts, candidates, strict=True))
    if tail:
        value += " ,"
    assert srcset_urls(value) == [u for u, _, _, _ in candidates]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_srcset_never_fails_and_urls_have_no_whitespace(value: str) -> None:
    for url in srcset_urls(value):
        assert url and not re.search(r"[\t\n\x0c\r ]", url) and not url.endswith(",")


def test_srcset_is_linear() -> None:
    for hostile in ("(" * 400_000, "a " + "(" * 400_000, ", " * 400_000, "a 1x" * 100_000):
        t = time.process_time()
        srcset_urls(hostile)
        assert time.process_time() - t < 5  # generous: quadratic would take minutes


# -- CSS references -------------------------------------------------------------------

CSS = r"""@charset "utf-8"; @import url(dejavu.css); @import "a b.css" screen;
@IMPORT 'c.css'; @import url("d.css") print;
/* url(commented.png) @import "no.css"; */
body { background: URL( img/bg.png ) no-repeat; x: myurl(no.png) }
.a { background: url("q\"x.png") } .b { background: url(data:image/png;base64,AAAA) }
.c { content: "url(no2.png)" } .d { background: url(\41 b.png) }
.e { background: url(bad"url.png) } .f { background: url(after-bad.png) }
@font-face { src: url('f.woff2') format('woff2'), url(g.woff) }
.g { background: url( ) } .h { background: url(tab\9 x.png) }
.i { background: url("multi\
line.png") }
"""


def test_css_refs_example() -> None:
    assert css_refs(CSS) == [
        ("dejavu.css", IMPORT),
        ("a b.css", IMPORT),
        ("c.css", IMPORT),
        ("d.css", IMPORT),
        ("img/bg.png", URL),
        ('q"x.png', URL),
        ("Ab.png", URL),
        ("after-bad.png", URL),
        ("f.woff2", URL),
        ("g.woff", URL),
        ("tab\tx.png", URL),
        ("multiline.png", URL),
    ]


@pytest.mark.parametrize(
    "css",
    [
        "url(",
        "url('x",
        '"unterminated',
        "/* open",
        "@import",
        "@import;",
        "url(\\",
        "\\",
        "url(\\110000)",
    ],
)
def test_css_refs_odd_endings(css: str) -> None:
    for ref, kind in css_refs(css):
        assert kind in (IMPORT, URL) and ref


_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_./?=&%#", min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_NAME, st.sampled_from(["bare", "dq", "sq", "import"])), max_size=8))
def test_css_refs_finds_what_was_written(refs: list[tuple[str, str]]) -> None:
    """Generated stylesheets, with comments and decoys between the rules, give back exactly
    their references, in order."""
    rules = []
    for name, form in refs:
        if form == "import":
            rules.append(f'@import "{name}";')
        elif form == "bare":
            rules.append(f".x{{background:url({name})}}")
        else:
            q = '"' if form == "dq" else "'"
            rules.append(f".x{{background:url( {q}{name}{q} )}}")
    css = "/* url(decoy.png) */\n".join(rules) + '\n.y{content:"url(decoy2.png)"}'
    want = [(n, IMPORT if f == "import" else URL) for n, f in refs]
    assert css_refs(css) == want


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="url()\"'\\/*@import ;{}ab\n", max_size=300))
def test_css_refs_never_fails_on_any_input(css: str) -> None:
    for ref, kind in css_refs(css):
        assert ref and kind in (IMPORT, URL) and not ref.lower().startswith("data:")


@pytest.mark.parametrize(
    "hostile",
    [
        "url(" * 200_000,
        '"' + "\\a" * 300_000,
        "/*" * 300_000,
        "url(\\1" * 200_000,
        "@import " * 200_000,
        "url('" * 200_000,
        "url(a" + " " * 500_000,
    ],
)
def test_css_refs_is_linear_on_hostile_input(hostile: str) -> None:
    t = time.process_time()
    css_refs(hostile)
    assert time.process_time() - t < 5  # generous: a backtracking scan would take hours


def test_css_refs_are_bounded() -> None:
    assert len(css_refs(".a{background:url(x.png)}" * (MAX_REFS + 50))) == MAX_REFS


def test_stylesheet_decoding_and_type() -> None:
    assert is_stylesheet("text/css; charset=utf-8", "http://h/x")
    assert not is_stylesheet("text/html", "http://h/x.css")  # an error page
    assert is_stylesheet("", "http://h/x.css?v=2")
    body = '@charset "iso-8859-1"; .a{background:url(b\xe5t.png)}'.encode("latin-1")
    assert stylesheet_text(body, "text/css").endswith("url(båt.png)}")
    assert stylesheet_refs(body, "text/css", "http://h/s.css") == [("båt.png", URL)]
    assert stylesheet_refs(b"url(x.png)", "text/html", "http://h/s.css") == []
    assert stylesheet_text(b"\xef\xbb\xbfurl(a)", "text/css; charset=nonsense") == "url(a)"


# -- URL validity ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "href",
    [
        "//////",
        "http://",
        "https://",
        "http://[bad",
        "http://exa mple.com/",
        "http://a^b/",
        "http://a:65536/",
        "http://a:99999/",
        "http://1.2.3.256/",
        "http://999999999999/",
        "http://a%20b/",
        "http://:80/",
        "//exa mple.com/x",
    ],
)
def test_whatwg_rejects(href: str) -> None:
    assert not whatwg_valid(PAGE, href)
    r = resolve(PAGE, href)
    assert r.skip == "malformed_url", (href, r.base)


@pytest.mark.parametrize(
    "href",
    [
        "x.html",
        "../y.html?q=1#f",
        "/abs/z.html",
        "#top",
        "",
        "?q",
        "http:",  # same scheme, no slashes: relative to the page
        "http://ex_ample.com/",
        "https://münchen.example/",
        "http://a:65535/",
        "http://[::1]:8080/",
        "https://hostile.invalid/<script>x</script>",
        "foo bar.html",
        "a:b",
        "mailto:x@y",
    ],
)
def test_whatwg_accepts(href: str) -> None:
    assert whatwg_valid(PAGE, href)
    assert resolve(PAGE, href).skip != "malformed_url"


_HREF = st.text(alphabet="ab:/\\?#[]@%.1 \t-_^", max_size=14)


@settings(max_examples=500, deadline=None)
@given(_HREF)
def test_shortcut_only_skips_references_the_parser_accepts(href: str) -> None:
    """Differential: wherever ``keeps_authority`` answers without the parser, the parser
    (ada, the WHATWG implementation) accepts the reference too."""
    if keeps_authority(href):
        ada_url.join_url(PAGE, href)  # raises ValueError if the shortcut were wrong
    assert whatwg_valid(PAGE, href) == _ada_accepts(href)


def _ada_accepts(href: str) -> bool:
    try:
        ada_url.join_url(PAGE, href)
    except ValueError:
        return False
    return True


#: A DNS label (``idna`` also refuses "--" at places 3-4, which WHATWG allows: left out).
_LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True).filter(
    lambda label: label[2:4] != "--"
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_LABEL, min_size=1, max_size=4),
    st.sampled_from(["com", "se", "example", "org"]),
    st.one_of(st.none(), st.integers(0, 65535)),
    st.text(alphabet="abc/._-~%20", max_size=15),
)
def test_valid_urls_agree_with_urllib_and_idna(
    labels: list[str], tld: str, port: int | None, path: str
) -> None:
    """Differential: URLs that urllib splits cleanly and whose host ``idna`` encodes are
    valid to the WHATWG check, and it finds the same host and port."""
    host = ".".join([*labels, tld])
    url = f"http://{host}{'' if port is None else f':{port}'}/{path}"
    parts = urlsplit(url)
    assert idna.encode(parts.hostname).decode() == host
    assert whatwg_valid(PAGE, url)
    parsed = ada_url.parse_url(url)
    assert parsed["hostname"] == host
    assert parsed["port"] == ("" if port in (None, 80) else str(port))


def test_skipped_urls_are_cut() -> None:
    data = "data:image/png;base64," + "A" * 650_000
    r = resolve(PAGE, data)
    assert r.skip == "data" and len(r.base) == MAX_SKIPPED_URL and r.base.endswith("…")


# -- extraction -----------------------------------------------------------------------

HTML = b"""<!doctype html><html><head><title>t</title><base href="/d/">
<link rel="stylesheet" href="s.css"><link rel="icon" href="fav.ico">
<link rel="alternate" type="application/rss+xml" href="feed.xml">
<link rel="preconnect" href="https://cdn.example/"><link rel="dns-prefetch" href="//dns.example">
<link rel="prefetch" href="next.html"><link rel="preload" href="font.woff2" as="font">
<style>@import url(imp.css); .a{background:url(bg.png)}</style></head><body>
<a href="x.html">x</a><img src="i.png" srcset="data:image/png;base64,AAAA 1x, i2.png 2x">
<object data="doc.pdf"></object><embed src="e.swf"><track src="sub.vtt">
<input type="image" src="btn.png" alt="Go"><input type="text" src="no.png">
<video poster="poster.jpg" src="v.mp4"><source src="v.webm"><source srcset="s1.png 1x">
</video><audio src="a.mp3"></audio><iframe src="f.html"></iframe>
<div style="background: url('div.png')"></div><p style="color:red">x</p>
<form action="post.php"><button formaction="b.php">b</button></form>
<a href="p.html" ping="/ping">p</a>
</body></html>"""


def test_every_element_is_read() -> None:
    page = facts_from_body(HTML, "utf-8", "http://h.test/d/a.html", None, (), True)
    assert page is not None and page.base_url == "http://h.test/d/"
    got = [(href, tag) for href, _, tag in page.links]
    assert got == [
        ("s.css", "stylesheet"),
        ("fav.ico", "link"),
        ("feed.xml", "link"),
        ("font.woff2", "link"),
        ("imp.css", "@import"),
        ("bg.png", "css"),
        ("x.html", "a"),
        ("i.png", "img"),
        ("data:image/png;base64,AAAA", "img"),
        ("i2.png", "img"),
        ("doc.pdf", "object"),
        ("e.swf", "embed"),
        ("sub.vtt", "track"),
        ("btn.png", "input"),
        ("v.mp4", "video"),
        ("poster.jpg", "video"),
        ("v.webm", "source"),
        ("s1.png", "source"),
        ("a.mp3", "audio"),
        ("f.html", "iframe"),
        ("p.html", "a"),
        ("div.png", "css"),
    ]
    texts = {href: text for href, text, _ in page.links}
    assert texts["btn.png"] == "Go"
