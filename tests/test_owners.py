"""Owner routing: longest prefix, globs, fallback, edit links."""

from __future__ import annotations

import datetime as dt

import pytest

from checks.changes import compute_changes
from checks.models import Check, Finding, Severity
from checks.owners import (
    Owner,
    owner_for,
    owners_from_config,
    route_changes,
    route_findings,
    unowned,
)

SITE = "https://www.umea.se"
ANNA = Owner("Anna", ("anna@umea.se",), "sv", match=(f"{SITE}/internationellt/",))
BEN = Owner("Ben", ("ben@umea.se",), "en", match=(f"{SITE}/internationellt/english",))
CARL = Owner("Carl", ("carl@umea.se",), "sv", match=(f"{SITE}/*/kontakt*",))
DORA = Owner("Dora", ("dora@umea.se",), "sv", match=(f"{SITE}/skola",))
OWNERS = (ANNA, BEN, CARL, DORA)
FALLBACK = Owner("", ("webb@umea.se",), "sv")


def f(page: str, target: str = "") -> Finding:
    return Finding(Check.BROKEN_LINK, Severity.ERROR, page, target, "http_404")


def test_longest_prefix_wins() -> None:
    assert owner_for(f"{SITE}/internationellt/a", OWNERS) is ANNA
    assert owner_for(f"{SITE}/internationellt/english/b", OWNERS) is BEN
    assert owner_for(f"{SITE}/internationellt/english", OWNERS) is BEN
    assert owner_for(f"{SITE}/annat", OWNERS) is None


def test_prefix_matches_whole_segments_only() -> None:
    assert owner_for(f"{SITE}/skola", OWNERS) is DORA
    assert owner_for(f"{SITE}/skola/grundskola", OWNERS) is DORA
    assert owner_for(f"{SITE}/skola?id=1", OWNERS) is DORA
    assert owner_for(f"{SITE}/skolmat", OWNERS) is None


def test_scheme_and_host_case_insensitive() -> None:
    assert owner_for("HTTPS://WWW.UMEA.SE/internationellt/x", OWNERS) is ANNA
    assert owner_for(f"{SITE}/Internationellt/x", OWNERS) is None  # paths are case-sensitive


def test_glob_and_specificity() -> None:
    assert owner_for(f"{SITE}/bygga/kontakt", OWNERS) is CARL
    # the longer literal prefix beats the glob
    assert owner_for(f"{SITE}/internationellt/kontakt", OWNERS) is ANNA
    broad = Owner("All", ("all@umea.se",), match=(f"{SITE}/*",))
    assert owner_for(f"{SITE}/bygga/kontakt", (broad, CARL)) is CARL
    assert owner_for(f"{SITE}/bygga", (broad, CARL)) is broad


def test_tie_goes_to_prefix_then_config_order() -> None:
    a = Owner("A", ("a@x.se",), match=("https://x.se/a/",))
    b = Owner("B", ("b@x.se",), match=("https://x.se/a/",))
    assert owner_for("https://x.se/a/1", (a, b)) is a
    assert owner_for("https://x.se/a/1", (b, a)) is b


def test_route_findings_each_page_to_its_owner_only() -> None:
    findings = [
        f(f"{SITE}/internationellt/a", "t1"),
        f(f"{SITE}/internationellt/english/b", "t2"),
        f(f"{SITE}/annat", "t3"),
        f(f"{SITE}/internationellt/c", "t4"),
    ]
    routed = route_findings(findings, OWNERS, FALLBACK)
    assert [x.target for x in routed[ANNA]] == ["t1", "t4"]
    assert [x.target for x in routed[BEN]] == ["t2"]
    assert [x.target for x in routed[FALLBACK]] == ["t3"]
    assert CARL not in routed
    no_fallback = route_findings(findings, OWNERS, None)
    assert sum(len(v) for v in no_fallback.values()) == 3
    assert [x.target for x in unowned(findings, OWNERS)] == ["t3"]


def test_route_changes_includes_everyone() -> None:
    now = dt.datetime(2024, 11, 25, tzinfo=dt.UTC)
    changes = compute_changes([f(f"{SITE}/internationellt/a", "t")], {}, now=now)
    routed = route_changes(changes, OWNERS, FALLBACK)
    assert list(routed) == [*OWNERS, FALLBACK]
    assert len(routed[ANNA].new) == 1
    assert not routed[BEN].has_problems and not routed[FALLBACK].has_problems


def test_edit_link() -> None:
    page = "https://www.umea.se/a b?x=1&y=2"
    q = Owner("A", ("a@x.se",), edit_url="https://cms.umea.se/edit?url={url}")
    assert q.edit_link(page) == (
        "https://cms.umea.se/edit?url=https%3A%2F%2Fwww.umea.se%2Fa%20b%3Fx%3D1%26y%3D2"
    )
    suffix = Owner("A", ("a@x.se",), edit_url="{url}#edit")
    assert suffix.edit_link("https://x.se/p") == "https://x.se/p#edit"
    assert Owner("A", ("a@x.se",)).edit_link(page) == ""


def test_owner_validation_and_config() -> None:
    with pytest.raises(ValueError):
        Owner("A", ("a@x.se",), language="de")
    with pytest.raises(ValueError):
        Owner("A", ("a@x.se\r\nBcc: evil@x.se",))
    with pytest.raises(ValueError):
        Owner("A", ())
    owners = owners_from_config(
        [{"match": ["https://x.se/a/"], "name": "A", "emails": ["a@x.se"], "edit_url": None}]
    )
    assert owners == (Owner("A", ("a@x.se",), "sv", "", ("https://x.se/a/",)),)
    assert hash(owners[0]) == hash(Owner("A", ["a@x.se"], "sv", "", ["https://x.se/a/"]))
