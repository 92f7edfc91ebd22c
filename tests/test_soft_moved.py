"""Soft-moved outside links (checks.soft_moved): redirected onto a front page."""

from __future__ import annotations

import pytest

from checks.models import RedirectHop, Verdict
from checks.policy import Policy
from checks.soft_moved import DETAIL, lands_on_home, path_depth, soft_moved


@pytest.mark.parametrize(
    ("url", "depth"),
    [
        ("https://x.se/", 0),
        ("https://x.se", 0),
        ("https://x.se/en/", 1),
        ("https://x.se/en/index.html", 1),
        ("https://x.se/index.php?id=3", 0),
        ("https://x.se/a/b/c.html", 3),
        ("https://x.se/old/page", 2),
        ("https://x.se/a//b/", 2),
    ],
)
def test_path_depth(url: str, depth: int) -> None:
    assert path_depth(url) == depth


HOP = (RedirectHop("https://x.se/a/b/c.html", 301),)


@pytest.mark.parametrize(
    ("url", "final", "home"),
    [
        ("https://x.se/a/b/c.html", "https://x.se/", True),
        ("https://x.se/a/b/c.html", "https://x.se/en/", True),
        ("https://x.se/a/b/c.html", "https://www.x.se/sv/index.html", True),
        ("https://x.se/docs/page", "https://x.se/docs/", True),
        # Already shallow: "/" -> "/sv/" is a language choice, not a lost page.
        ("https://x.se/", "https://x.se/sv/", False),
        ("https://x.se/sv", "https://x.se/sv/", False),
        # One segment onto the root: the page is gone.
        ("https://x.se/kontakt", "https://x.se/", True),
        # Same depth: a plain move.
        ("https://x.se/old/page", "https://x.se/new/page", False),
        # http -> https, same path.
        ("http://x.se/a/b/c.html", "https://x.se/a/b/c.html", False),
        # Deeper or equal is never home.
        ("https://x.se/a/b", "https://x.se/c/d/e", False),
    ],
)
def test_lands_on_home(url: str, final: str, home: bool) -> None:
    assert lands_on_home(url, HOP, final) is home


def test_a_hop_through_the_root_counts() -> None:
    chain = (RedirectHop("https://x.se/kontakt", 301), RedirectHop("https://x.se/", 302))
    assert lands_on_home("https://x.se/kontakt", chain, "https://x.se/sv/")
    # Through a shallower hop to a real page: a move, not home.
    chain = (RedirectHop("https://x.se/a/b", 301), RedirectHop("https://x.se/new/", 301))
    assert not lands_on_home("https://x.se/a/b", chain, "https://x.se/new/page/")
    # "/" -> "/sv/" via "/index.html" stays a language choice.
    chain = (RedirectHop("https://x.se/", 302), RedirectHop("https://x.se/index.html", 302))
    assert not lands_on_home("https://x.se/", chain, "https://x.se/sv/")


def test_no_chain_is_not_soft_moved() -> None:
    assert not lands_on_home("https://x.se/a/b/c.html", (), "https://x.se/")


def _judge(
    verdict: Verdict, internal: bool = False, policy: Policy | None = None
) -> tuple[Verdict, str]:
    return soft_moved(
        verdict,
        "http_301" if verdict is Verdict.REDIRECT else "",
        url="https://x.se/a/b/c.html",
        chain=HOP,
        final_url="https://x.se/",
        internal=internal,
        policy=policy or Policy(),
    )


def test_outside_link_to_home_is_broken() -> None:
    assert _judge(Verdict.REDIRECT) == (Verdict.BROKEN, DETAIL)
    assert _judge(Verdict.OK) == (Verdict.BROKEN, DETAIL)  # a temporary redirect too


def test_internal_links_and_other_verdicts_unchanged() -> None:
    assert _judge(Verdict.REDIRECT, internal=True) == (Verdict.REDIRECT, "http_301")
    assert _judge(Verdict.UNVERIFIED) == (Verdict.UNVERIFIED, "")
    assert _judge(Verdict.BROKEN) == (Verdict.BROKEN, "")


@pytest.mark.parametrize("allowed", ["x.se", "https://x.se/a/", "https://x.se/"])
def test_exemptions(allowed: str) -> None:
    policy = Policy(redirect_to_home_ok=(allowed,))
    assert _judge(Verdict.REDIRECT, policy=policy) == (Verdict.REDIRECT, "http_301")


def test_exemption_of_another_target_does_not_apply() -> None:
    policy = Policy(redirect_to_home_ok=("https://x.se/other/", "y.se"))
    assert _judge(Verdict.REDIRECT, policy=policy) == (Verdict.BROKEN, DETAIL)


def test_switched_off() -> None:
    policy = Policy(redirect_to_home=False)
    assert _judge(Verdict.REDIRECT, policy=policy) == (Verdict.REDIRECT, "http_301")
