"""The soft-404 test (``crawler.pages.extract.is_soft_404``) with its cheap whole-document
precheck gives the same answer as checking each title/h1/h2 on its own
(the precheck may only skip pages with no hit)."""

from __future__ import annotations

import lxml.html
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.pages.extract import XPATH_HEADINGS, is_soft_404

PHRASES = ("sidan kunde inte hittas", "page not found", "404 not found")
WORDS = st.sampled_from(
    [
        "sidan",
        "kunde",
        "inte",
        "hittas",
        "page",
        "not",
        "found",
        "404",
        "Sid",
        "an",
        "PAGE",
        " ",
        "\n",
    ]
)


def reference(root: object) -> bool:
    for el in XPATH_HEADINGS(root):
        text = " ".join(el.text_content().split()).lower()
        if any(p in text for p in PHRASES):
            return True
    return False


TAGS = st.sampled_from(["title", "h1", "h2", "p", "b"])
ELEMENT = st.tuples(TAGS, st.lists(WORDS, max_size=6), st.lists(WORDS, max_size=3))


@settings(max_examples=1500, deadline=None)
@given(elements=st.lists(ELEMENT, max_size=6))
def test_precheck_agrees_with_per_heading_check(elements: list) -> None:
    body = "".join(
        f"<{tag}>{' '.join(a)}<b>{''.join(b)}</b>{' '.join(b)}</{tag}>" for tag, a, b in elements
    )
    root = lxml.html.document_fromstring(f"<html><body>{body or '<p>x</p>'}</body></html>")
    assert is_soft_404(root, PHRASES) == reference(root)


def test_split_phrase_inside_one_heading_is_found() -> None:
    root = lxml.html.document_fromstring("<html><body><h1>Sid<b>an</b> kunde inte hittas</h1>")
    assert is_soft_404(root, PHRASES)


def test_phrase_across_two_headings_is_not_a_soft_404() -> None:
    root = lxml.html.document_fromstring("<html><body><h1>Page</h1><h2>not found</h2></body>")
    assert not is_soft_404(root, PHRASES)
