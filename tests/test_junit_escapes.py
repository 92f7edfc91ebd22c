"""junit.xml escapes text as ElementTree's serializer does (reports.junit_report._attr and
_text are written out with str.replace; hypothesis against ElementTree itself)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from reports.junit_report import _attr, _text, xml_text

_text_st = st.text(alphabet=st.sampled_from(list("ab &<>\"'\r\n\t;#\x00\x0b\ud800åé★")))


@given(_text_st)
def test_attribute_escaped_as_elementtree_does(raw: str) -> None:
    value = xml_text(raw)
    assert ET.tostring(ET.Element("x", a=value), encoding="unicode") == f'<x a="{_attr(value)}" />'


@given(_text_st)
def test_text_escaped_as_elementtree_does(raw: str) -> None:
    value = xml_text(raw)
    elem = ET.Element("x")
    elem.text = value
    expected = f"<x>{_text(value)}</x>" if value else "<x />"
    assert ET.tostring(elem, encoding="unicode") == expected
