"""One problem per missing resource: findings grouped by what they point at.

A broken target is identified by its URL without ``#fragment`` (:func:`target_key`): a
missing ``changelog.html`` linked through a thousand different ``#anchors`` from three
pages is one problem, "linked 1,410 times from 3 pages", not a thousand.
``missing_fragment`` findings stay one group per fragment (the page exists; each missing
anchor is its own fix). Page checks (``stale_page``, ``missing_review_date``) are one
group per page.

Pure functions over :class:`~checks.models.Finding`; the renderers decide how many of a
group's places they show (the full list stays in report.json and report.csv).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from checks.models import Check, Detail, Finding, Severity

#: Checks whose findings point at a link target (grouped by target).
LINK_CHECKS = frozenset(
    {Check.BROKEN_LINK, Check.MISSING_PDF, Check.REDIRECT, Check.UNVERIFIED_LINK}
)
#: Details that stay one group per full target (``#fragment`` included).
PER_FRAGMENT_DETAILS = frozenset({Detail.MISSING_FRAGMENT})


def target_key(url: str) -> str:
    """The resource a link points at: ``url`` without its ``#fragment``."""
    return url.partition("#")[0]


def group_key(f: Finding) -> tuple[str, str, str]:
    """(check, resource, detail): the findings that share it are one problem.

    The resource is the target without fragment for link checks (the full target for
    ``missing_fragment``) and the page itself for page checks.
    """
    if f.check not in LINK_CHECKS:
        return (f.check.value, f.page, f.detail)
    if f.detail in PER_FRAGMENT_DETAILS:
        return (f.check.value, f.target, f.detail)
    return (f.check.value, target_key(f.target), f.detail)


@dataclass(frozen=True, slots=True)
class Group:
    """Findings of one check on one resource, in the order they were given."""

    check: Check
    #: The resource: target without fragment (full target for ``missing_fragment``;
    #: the page for page checks).
    key: str
    detail: str
    findings: tuple[Finding, ...]

    @property
    def first(self) -> Finding:
        return self.findings[0]

    @property
    def severity(self) -> Severity:
        return max((f.severity for f in self.findings), key=lambda s: s.rank)

    @property
    def watched(self) -> bool:
        return any(f.watched for f in self.findings)

    @property
    def links(self) -> int:
        """Links to the resource: distinct (page, target) pairs (one finding each)."""
        return len(self.findings)

    @property
    def pages(self) -> int:
        """Distinct pages that carry a link to the resource."""
        return len({f.page for f in self.findings})

    @property
    def targets(self) -> int:
        """Distinct link addresses (e.g. #fragments) that lead to the resource."""
        return len({f.target for f in self.findings})


def group_sort_key(g: Group) -> tuple[object, ...]:
    """Watched first, then severity, then the most-linked, then by resource."""
    return (not g.watched, -g.severity.rank, -g.links, g.check.value, g.key, g.detail)


def group_findings(findings: Iterable[Finding]) -> list[Group]:
    """Findings grouped by :func:`group_key`, in :func:`group_sort_key` order.

    Within a group the findings keep the order given (pass them in report order).
    """
    buckets: dict[tuple[str, str, str], list[Finding]] = {}
    for f in findings:
        buckets.setdefault(group_key(f), []).append(f)
    groups = [
        Group(check=Check(check), key=key, detail=detail, findings=tuple(fs))
        for (check, key, detail), fs in buckets.items()
    ]
    groups.sort(key=group_sort_key)
    return groups
