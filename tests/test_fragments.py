"""``#fragment`` matching as the HTML standard's "select the indicated part" does it
(``checks.fragments``), through ``judge`` and through the crawl's own URL joining."""

from __future__ import annotations

from urllib.parse import quote, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checks.fragments import decoded_fragment, fragment_found, url_fragment
from checks.models import Verdict
from checks.policy import Policy
from checks.verdicts import Probe, judge
from crawler.pages.urls import resolve

JAVADOC_IDS = frozenset({"<init>(byte)", "wrap(byte[])", "compareTo(java.lang.Byte)"})
SWEDISH_IDS = frozenset({"kontakt-och-öppettider", "Åtgärder", "a b", "a+b", "c%20d"})


@pytest.mark.parametrize(
    "fragment",
    [
        "%3Cinit%3E(byte)",  # javadoc's own spelling
        "%3cinit%3e(byte)",  # lower-case hex digits decode the same
        "<init>(byte)",  # unencoded, as some generators write it
        "wrap(byte%5B%5D)",
        "wrap(byte[])",
        "compareTo(java.lang.Byte)",
    ],
)
def test_javadoc_fragments_found(fragment: str) -> None:
    assert fragment_found(fragment, JAVADOC_IDS)


@pytest.mark.parametrize(
    "fragment",
    [
        "kontakt-och-%C3%B6ppettider",
        "kontakt-och-öppettider",
        "%C3%85tg%C3%A4rder",
        "Åtgärder",
    ],
)
def test_swedish_fragments_found(fragment: str) -> None:
    assert fragment_found(fragment, SWEDISH_IDS)


@pytest.mark.parametrize(
    ("fragment", "found"),
    [
        ("a%20b", True),  # %20 is a space
        ("a b", True),  # a raw space: the URL parser makes it %20, which decodes back
        ("a+b", True),  # + is +
        ("a%2Bb", True),
        ("c%20d", True),  # the id as written in the URL (raw form first)
        ("c d", True),  # decoded from the raw %20 the parser makes of it
        ("c%2520d", True),  # decoded once: "c%20d"
    ],
)
def test_plus_and_space(fragment: str, found: bool) -> None:
    assert fragment_found(fragment, SWEDISH_IDS) is found


@pytest.mark.parametrize("fragment", ["a+b", "a%2Bb"])
def test_plus_is_not_a_space(fragment: str) -> None:
    assert not fragment_found(fragment, frozenset({"a b"}))


@pytest.mark.parametrize(
    "fragment",
    [
        "kontakt-och-oppettider",
        "%3Cinit%3E(int)",
        "wrap(byte%5B%5D",
        "%C3%B6",  # decodes to ö, not an id here
        "%FF%FE",  # not UTF-8: U+FFFD twice, matches nothing
        "%",  # a lone percent sign stays as it is
        "kontakt-och-%c3%b6ppettider%",
    ],
)
def test_truly_missing(fragment: str) -> None:
    assert not fragment_found(fragment, JAVADOC_IDS | SWEDISH_IDS)


@pytest.mark.parametrize("fragment", ["", "top", "TOP", "Top", "%74op", "%54%4F%50"])
def test_top_and_empty_always_found(fragment: str) -> None:
    assert fragment_found(fragment, frozenset())


def test_only_top_itself_is_implicit() -> None:
    assert not fragment_found("top2", frozenset())
    assert not fragment_found("to%20p", frozenset())


def test_invalid_utf8_decodes_to_replacement_character() -> None:
    assert decoded_fragment("%FF") == "\ufffd"
    assert fragment_found("%FF", frozenset({"\ufffd"}))
    assert fragment_found("%FF", frozenset({"%FF"}))  # the raw form is tried first


def test_url_fragment_encodes_what_the_url_parser_does() -> None:
    assert url_fragment('a b"<>`\x7f') == "a%20b%22%3C%3E%60%7F"
    assert url_fragment("ö") == "%C3%B6"
    assert url_fragment("a%20b+c[d]#e") == "a%20b+c[d]#e"  # left alone


def _policy() -> Policy:
    return Policy()


def _page(ids: frozenset[str]) -> Probe:
    return Probe(
        "http://127.0.0.1/api/Byte.html",
        200,
        final_url="http://127.0.0.1/api/Byte.html",
        content_type="text/html",
        ids=ids,
    )


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("%3Cinit%3E(byte)", (Verdict.OK, "")),
        ("wrap(byte%5B%5D)", (Verdict.OK, "")),
        ("kontakt-och-%C3%B6ppettider", (Verdict.OK, "")),
        ("top", (Verdict.OK, "")),
        ("", (Verdict.OK, "")),
        ("nowhere", (Verdict.BROKEN, "missing_fragment")),
        ("a+b", (Verdict.OK, "")),
        ("a%20b", (Verdict.OK, "")),
    ],
)
def test_judge_uses_browser_matching(fragment: str, expected: tuple[Verdict, str]) -> None:
    assert judge(_page(JAVADOC_IDS | SWEDISH_IDS), fragment, _policy()) == expected


@pytest.mark.parametrize(
    "href",
    [
        "Byte.html#%3Cinit%3E(byte)",
        "Byte.html#<init>(byte)",
        "Byte.html#wrap(byte%5B%5D)",
        "Byte.html#wrap(byte[])",
        "Byte.html#kontakt-och-%C3%B6ppettider",
        "Byte.html#kontakt-och-öppettider",
        "Byte.html#a b",
        "Byte.html#a%20b",
    ],
)
def test_fragments_as_the_crawl_joins_them(href: str) -> None:
    """The fragment ``crawler.pages.urls.resolve`` keeps (raw, as written) is what is matched."""
    r = resolve("http://127.0.0.1/api/index.html", href)
    assert r.base == "http://127.0.0.1/api/Byte.html"
    assert r.fragment is not None
    assert fragment_found(r.fragment, JAVADOC_IDS | SWEDISH_IDS)


#: encodeURIComponent leaves these alone; quote(safe="") encodes everything else.
_COMPONENT_SAFE = "-_.!~*'()"


@given(st.text(min_size=1))
def test_any_id_found_through_its_percent_encoding(id_: str) -> None:
    """For any id, the spellings a generator writes for it all find it: fully
    percent-encoded (UTF-8), encodeURIComponent-style, and through ``resolve``."""
    ids = frozenset({id_, "other"})
    for encoded in (quote(id_, safe=""), quote(id_, safe=_COMPONENT_SAFE)):
        assert fragment_found(encoded, ids)
        r = resolve("http://127.0.0.1/a/b.html", "c.html#" + encoded)
        assert r.fragment == encoded
        assert fragment_found(r.fragment, ids)


@given(st.text(min_size=1), st.text(min_size=1))
def test_encoded_other_id_is_not_found(id_: str, other: str) -> None:
    """A fragment that encodes a different string is not found by accident, unless that
    string is ``top`` (always found) or percent-decodes to the id itself."""
    ids = frozenset({id_})
    encoded = quote(other, safe="")
    decodes_to_id = decoded_fragment(url_fragment(encoded)) == id_ or url_fragment(encoded) == id_
    if other.lower() == "top" or decodes_to_id:
        return
    assert not fragment_found(encoded, ids)


def _standard(fragment: str, ids: frozenset[str]) -> bool:
    """The HTML standard's steps written out plainly (no shortcuts), for comparison."""
    if fragment == "":
        return True
    in_url = "".join(
        "".join(f"%{b:02X}" for b in c.encode("utf-8"))
        if ord(c) <= 0x20 or ord(c) >= 0x7F or c in '"<>`'
        else c
        for c in fragment
    )
    if in_url in ids:
        return True
    decoded = unquote(in_url, errors="replace")
    return decoded in ids or (decoded.isascii() and decoded.lower() == "top")


_FRAGMENT_CHARS = st.sampled_from(list('%25%3C%C3%B6+ <>aAbB0129[]()öÅ"`\x00\x7f\u00ff\U0001f600'))


@given(
    st.text(_FRAGMENT_CHARS, max_size=12),
    st.frozensets(st.text(_FRAGMENT_CHARS, max_size=8), max_size=4),
)
def test_same_answer_as_the_standard_steps(fragment: str, ids: frozenset[str]) -> None:
    found = fragment_found(fragment, ids)
    assert found == _standard(fragment, ids)
    # The id list with the fragment as written added: found exactly when the standard says.
    assert fragment_found(fragment, ids | {fragment}) == _standard(fragment, ids | {fragment})
