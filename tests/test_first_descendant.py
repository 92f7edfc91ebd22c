"""``crawler.pages.extract.first_descendant`` finds what ``find(".//tag")`` finds, in any tree."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from crawler.pages.extract import first_descendant, parse_html

TAGS = ("title", "head", "body", "div", "p", "noscript", "svg")

# A tree: a tag and its children; comments and processing instructions mixed in.
NODES = st.recursive(
    st.sampled_from(TAGS).map(lambda tag: (tag, [])) | st.just(("#comment", [])),
    lambda children: st.tuples(st.sampled_from(TAGS), st.lists(children, max_size=4)),
    max_leaves=25,
)


def build(parent: etree._Element, node: tuple[str, list]) -> None:
    tag, children = node
    if tag == "#comment":
        parent.append(etree.Comment("title"))
        return
    el = etree.SubElement(parent, tag)
    el.text = tag
    for child in children:
        build(el, child)


@settings(max_examples=600, deadline=None)
@given(children=st.lists(NODES, max_size=4), tag=st.sampled_from(TAGS))
def test_same_element_as_find(children: list, tag: str) -> None:
    root = etree.Element("html")
    for child in children:
        build(root, child)
    assert first_descendant(root, tag) is root.find(".//" + tag)


def test_the_root_itself_is_not_a_match() -> None:
    root = etree.fromstring("<title><p/><title>inner</title></title>")
    assert first_descendant(root, "title") is root.find(".//title")
    assert first_descendant(root, "title").text == "inner"


def test_parsed_pages() -> None:
    pages = [
        b"<html><head><title>A</title></head><body><title>B</title></body></html>",
        b"<p>no head<title>late</title>",
        b"<!-- c --><html><body><div><title>deep</title></div></body></html>",
        b"<html><head><meta charset=utf-8></head><body>none</body></html>",
        b"<?pi x?><title>first</title><title>second</title>",
    ]
    for body in pages:
        root = parse_html(body, "utf-8")
        assert root is not None
        assert first_descendant(root, "title") is root.find(".//title"), body
