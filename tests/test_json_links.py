"""report.json's links are written out directly (reports.json_report._LinkEncoder): the
text must be what the JSON encoder gives for ``link_to_dict`` (hypothesis, hostile text)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from checks.models import LinkRef, LinkResult, RedirectHop, Verdict
from reports import json_report

_ODD = '"\\/\x00\x1f\x7f\u2028\u2029\ud800\udfff\ufeffåé\u202e★😀'
_text = st.text(alphabet=st.sampled_from(list("ab09 :/?#&=<>'" + _ODD)), max_size=40)
_refs = st.lists(st.builds(LinkRef, _text, _text, st.sampled_from(["a", "img"])), max_size=12)
_links = st.builds(
    LinkResult,
    url=_text,
    verdict=st.sampled_from(list(Verdict)),
    detail=_text,
    status=st.one_of(st.none(), st.integers(100, 599)),
    final_url=_text,
    redirect_chain=st.lists(st.builds(RedirectHop, _text, st.integers(300, 399)), max_size=3).map(
        tuple
    ),
    content_type=_text,
    found_on=_refs.map(tuple),
    pdf_link=st.booleans(),
    watched=st.booleans(),
    internal=st.booleans(),
)


@hyp_settings(max_examples=400, deadline=None)
@given(links=st.lists(_links, min_size=1, max_size=4), chunk=st.integers(1, 5))
def test_links_written_out_equal_the_encoder(links: list[LinkResult], chunk: int) -> None:
    encode = json_report._LinkEncoder()  # one encoder for several links, as iter_json uses
    table = json_report.PageTable()  # numbered alike: pages in the order first referred to
    old = json_report.FOUND_ON_CHUNK
    try:
        json_report.FOUND_ON_CHUNK = chunk
        for link in links:
            expected = json_report._ENCODE(json_report.link_to_dict(link, table))
            assert "".join(encode(link)) == expected
    finally:
        json_report.FOUND_ON_CHUNK = old


def test_a_page_is_numbered_once_and_written_once() -> None:
    encode = json_report._LinkEncoder()
    refs = tuple(LinkRef(f"http://h/{n % 3}", f"t{n}") for n in range(9))
    link = LinkResult("http://h/x", Verdict.OK, status=200, found_on=refs)
    for _ in range(2):
        text = "".join(encode(link))
        assert '[0, "t0"], [1, "t1"], [2, "t2"], [0, "t3"]' in text
    assert encode.table.urls() == ["http://h/0", "http://h/1", "http://h/2"]


class _OnceOnly(tuple):
    """A found_on that may be iterated once and never indexed (a crawl's spilled refs)."""

    iterations = 0

    def __iter__(self):
        type(self).iterations += 1
        return super().__iter__()

    def __getitem__(self, index):
        raise AssertionError("found_on indexed")


def test_a_long_found_on_is_iterated_once_not_indexed(monkeypatch) -> None:
    monkeypatch.setattr(json_report, "FOUND_ON_CHUNK", 3)
    refs = tuple(LinkRef(f"http://h/{n}", f"t{n}") for n in range(10))
    link = LinkResult("http://h/x", Verdict.OK, status=200, found_on=refs)
    expected = json_report._ENCODE(json_report.link_to_dict(link))
    once = LinkResult("http://h/x", Verdict.OK, status=200, found_on=_OnceOnly(refs))
    assert "".join(json_report._LinkEncoder()(once)) == expected
    assert _OnceOnly.iterations == 1
