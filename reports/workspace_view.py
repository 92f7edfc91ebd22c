"""View data of the editors' workspace (``sitewatch web``): open findings grouped by page,
each with what is wrong in words (``reports.messages``), since when, the link text, the CMS
edit link and the editor's decision in force (``checks.suppress``).

Pure: plain data in (findings, page titles, decisions, ``now``), plain data out; the Flask
app (``crawler/web``) renders it with the templates in ``reports/templates/web``.
Page-derived text is cut and stripped of control/bidi characters here and escaped by the
templates (autoescape).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from checks.models import Finding, Severity
from checks.owners import Owner
from checks.suppress import Key, Suppression, suppression_for
from reports import messages as M
from reports import web_messages as W
from reports.email_build import _href, _one_line, _short_url
from reports.email_workspace import finding_id


@dataclass(frozen=True)
class ItemView:
    fid: str
    severity: str
    severity_label: str
    verdict: str
    since: str
    link_text: str
    target: str
    target_href: str
    target_short: str
    edit_url: str
    #: The decision in force, in words ("" when none), and its id (for undo).
    state: str = ""
    decision_id: int = 0


@dataclass
class PageGroup:
    page: str
    href: str
    title: str
    heading: str
    items: list[ItemView] = field(default_factory=list)


_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


def state_text(lang: str, s: Suppression) -> str:
    at = M.format_day(lang, s.at)
    until = M.format_day(lang, s.until) if s.until else ""
    by = _one_line(s.by, 80)
    reason = _one_line(s.reason, 500)
    return W.text(lang, f"state_{s.kind.value}", by=by, at=at, until=until, reason=reason)


def item_view(
    lang: str,
    f: Finding,
    since: dt.datetime,
    owner: Owner | None,
    decision: Suppression | None,
) -> ItemView:
    return ItemView(
        fid=finding_id(f.key),
        severity=f.severity.value,
        severity_label=M.severity_label(lang, f.severity),
        verdict=_one_line(M.verdict(lang, f), 300),
        since=W.text(lang, "since", date=M.format_day(lang, since)),
        link_text=_one_line(f.link_text, 150),
        target=_one_line(f.target, 2000),
        target_href=_href(f.target),
        target_short=_short_url(f.target),
        edit_url=_href(owner.edit_link(f.page)) if owner else "",
        state=state_text(lang, decision) if decision else "",
        decision_id=decision.id if decision else 0,
    )


def group_by_page(
    lang: str,
    items: Iterable[tuple[Finding, dt.datetime]],
    titles: Mapping[str, str],
    decisions: Mapping[Key, Suppression],
    now: dt.datetime,
    owner: Owner | None = None,
) -> list[PageGroup]:
    """Findings grouped by page ("Internationellt arbete – 4 problem"), pages in order of
    their worst finding, then by address."""
    by_page: dict[str, list[tuple[Finding, dt.datetime]]] = {}
    for f, since in items:
        by_page.setdefault(f.page, []).append((f, since))
    groups: list[tuple[tuple[int, str], PageGroup]] = []
    for page, found in by_page.items():
        found.sort(key=lambda p: (_ORDER[p[0].severity], p[0].check.value, p[0].target))
        title = _one_line(titles.get(page, ""), 150) or W.text(lang, "untitled")
        group = PageGroup(
            page=_one_line(page, 2000),
            href=_href(page),
            title=title,
            heading=f"{title} – {W.plural(lang, 'problems', len(found))}",
        )
        for f, since in found:
            group.items.append(item_view(lang, f, since, owner, suppression_for(f, decisions, now)))
        groups.append(((min(_ORDER[f.severity] for f, _ in found), page), group))
    return [g for _, g in sorted(groups, key=lambda x: x[0])]


def count_by(
    items: Sequence[tuple[str, str]],
) -> list[tuple[str, str, int]]:
    """(a, b) pairs counted, most first: open findings by check and owner (admin view)."""
    counts: dict[tuple[str, str], int] = {}
    for pair in items:
        counts[pair] = counts.get(pair, 0) + 1
    return [(a, b, n) for (a, b), n in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]
