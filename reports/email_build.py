"""Weekly editor emails: one message per recipient per run, built from ``Changes``.

``build_digest`` routes nothing itself: give it ``{Owner: Changes}`` (``checks.owners
.route_changes``) and it returns ``{recipient address: EmailMessage}``. Each address gets
its own message (an owner with two addresses gets two, so a refusal of one address does not
block the other); an address listed by several owners gets one message covering all their
pages, in the language of the first of those owners.

Messages are ``multipart/alternative``: text/plain first, text/html last, both rendered with
Jinja2 from the same view data (HTML autoescaped, CSS inlined by css_inline, no remote
loading, 600 px table layout, no scripts). Long sections are cut at ``max_items`` with a
count and a link to the full report, and cut further until the HTML is under
``max_html_bytes``. Headers never carry page data: the subject is built from counts, the site
name and the week only, and every header value is stripped of control characters.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from checks.changes import ChangeItem, Changes, is_transient
from checks.groups import group_key
from checks.models import Check, Page, RunInfo, Severity
from checks.owners import Owner
from reports import messages as M
from reports import web_messages as W
from reports.email_workspace import (
    OwnerExtras,
    item_link,
    order_by_page,
    page_headings,
    trend_line,
)
from reports.jinja_env import display_url

TEMPLATES = Path(__file__).parent / "templates"
MAX_HTML_BYTES = 100_000
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufffe\uffff]+")
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_URL_FORBIDDEN = re.compile("[\x00-\x20\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def header_safe(value: str, limit: int = 200) -> str:
    """A header value with every control character (CR, LF, TAB, ...) turned into a space."""
    return " ".join(_CONTROL.sub(" ", _BIDI.sub("", value)).split())[:limit]


def _one_line(value: str, limit: int) -> str:
    """Safe-to-show text: controls and bidi overrides removed, whitespace collapsed, cut."""
    text = _BIDI.sub("", value[: limit * 4 + 64])
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _href(url: str) -> str:
    """The URL if it may become a link (absolute http/https, no spaces or controls), else ""."""
    if not url or len(url) > 4000 or _URL_FORBIDDEN.search(url):
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return url if parts.scheme.lower() in ("http", "https") and parts.hostname else ""


def _short_url(url: str, limit: int = 80) -> str:
    """The URL as shown beside its link: no scheme, non-ASCII characters decoded."""
    return _one_line(re.sub(r"^https?://", "", display_url(url)), limit)


@dataclass(frozen=True)
class ReportMeta:
    """What an email says about the run itself."""

    run_id: int
    #: Shown in the subject and heading, e.g. "umea.se/internationellt".
    site: str
    as_of: dt.date
    #: The run's time: part of the Message-ID, so a recreated database never reuses one.
    started_at: dt.datetime

    @classmethod
    def from_run(cls, run_id: int, run: RunInfo, site_name: str = "") -> ReportMeta:
        site = site_name or run.site
        if not site and run.start_urls:
            site = urlsplit(run.start_urls[0]).hostname or ""
        return cls(run_id=run_id, site=site, as_of=run.as_of, started_at=run.started_at)


@dataclass(frozen=True)
class EmailSettings:
    """What email building needs from config (``email.*``)."""

    from_addr: str
    report_url: str = ""
    max_items: int = 40
    send_all_clear: bool = False
    max_html_bytes: int = MAX_HTML_BYTES
    #: Domain of Message-IDs; empty: the domain of ``from_addr``.
    message_id_domain: str = ""


def message_id(meta: ReportMeta, recipient: str, domain: str) -> str:
    """Deterministic Message-ID for (run, recipient): a resend carries the same ID."""
    started = meta.started_at.isoformat()
    seed = f"{meta.site}\0{meta.run_id}\0{started}\0{recipient.strip().lower()}"
    digest = hashlib.sha256(seed.encode()).hexdigest()[:24]
    return f"<sitewatch.{meta.run_id}.{digest}@{domain}>"


def _domain_of(addr: str) -> str:
    _, spec = parseaddr(addr)
    domain = spec.rpartition("@")[2]
    return domain if re.fullmatch(r"[A-Za-z0-9.-]+", domain or "") else "sitewatch.invalid"


# --- view data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    severity: str
    severity_label: str
    verdict: str
    page_url: str
    page_href: str
    page_short: str
    page_title: str
    link_text: str
    target_url: str
    target_href: str
    target_short: str
    #: For a permanently moved link: the address to change it to (full, for copying).
    new_url: str
    new_url_href: str
    review: str
    when: str
    edit_url: str
    #: For a problem linked from several places (``checks.groups``): "Linked 1,410 times
    #: from 3 pages", and the other places (at most :data:`EMAIL_PLACES`).
    linked_from: str = ""
    places: tuple[_Place, ...] = ()
    places_more: str = ""
    #: "Internationellt arbete – 4 problem" on the first problem of each page.
    page_heading: str = ""
    #: One-click link into the workspace for this problem ("" without a workspace).
    act_url: str = ""


@dataclass(frozen=True)
class _Place:
    """Another page carrying a link to the same problem."""

    page_url: str
    page_href: str
    page_short: str
    page_title: str
    link_text: str


#: Other places listed under a grouped problem (the rest is counted; the report lists all).
EMAIL_PLACES = 5


@dataclass
class _Section:
    key: str
    title: str
    count: int
    all_items: list[_Item]
    items: list[_Item] = field(default_factory=list)
    more: int = 0
    more_text: str = ""


_SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


def _sort_key(pair: tuple[Owner, ChangeItem]) -> tuple[Any, ...]:
    f = pair[1].finding
    return (_SEVERITY_ORDER[f.severity], not f.watched, f.page, f.check.value, f.target)


def _title(pages: Mapping[str, Page], url: str, lang: str) -> str:
    page = pages.get(url)
    title = _one_line(page.title, 150) if page and page.title.strip() else ""
    return title or M.text(lang, "untitled")


def _grouped(pairs: Sequence[tuple[Owner, ChangeItem]]) -> list[list[tuple[Owner, ChangeItem]]]:
    """Pairs grouped by problem (``checks.groups.group_key``), in the order first seen."""
    groups: dict[tuple[str, str, str], list[tuple[Owner, ChangeItem]]] = {}
    for pair in pairs:
        groups.setdefault(group_key(pair[1].finding), []).append(pair)
    return list(groups.values())


def _group_item(
    lang: str,
    group: Sequence[tuple[Owner, ChangeItem]],
    section: str,
    pages: Mapping[str, Page],
    as_of: dt.date,
    extras: Mapping[Owner, OwnerExtras] | None = None,
) -> _Item:
    """One problem: the first place in full, the others listed (capped) and counted."""
    owner, ci = group[0]
    item = _item(lang, owner, ci, section, pages, as_of)
    if extras and section != "fixed" and owner in extras:
        item = replace(item, act_url=_href(item_link(extras[owner].workspace_url, ci.key)))
    if len(group) == 1:
        return item
    findings = [c.finding for _, c in group]
    distinct_pages = len({f.page for f in findings})
    places = tuple(
        _Place(
            page_url=_one_line(f.page, 2000),
            page_href=_href(f.page),
            page_short=_short_url(f.page),
            page_title=_title(pages, f.page, lang),
            link_text=_one_line(f.link_text, 150),
        )
        for f in findings[1 : 1 + EMAIL_PLACES]
    )
    more = len(findings) - 1 - len(places)
    key = group_key(ci.finding)[1]
    target = key if len({f.target for f in findings}) > 1 else ci.finding.target
    return replace(
        item,
        target_url=_one_line(target, 2000),
        target_href=_href(target),
        target_short=_short_url(target),
        linked_from=M.text(
            lang,
            "linked_from",
            times=M.plural(lang, "times", len(findings)),
            pages=M.plural(lang, "pages", distinct_pages),
        ),
        places=places,
        places_more=M.plural(lang, "more", more) if more > 0 else "",
    )


def _item(
    lang: str,
    owner: Owner,
    ci: ChangeItem,
    section: str,
    pages: Mapping[str, Page],
    as_of: dt.date,
) -> _Item:
    f = ci.finding
    page = pages.get(f.page)
    title = _one_line(page.title, 150) if page and page.title.strip() else ""
    review = ""
    if f.check is Check.STALE_PAGE and page and page.review_date:
        age = max(0, (as_of - page.review_date).days)
        review = M.text(
            lang,
            "review",
            date=M.format_day(lang, page.review_date),
            days=M.plural(lang, "days", age),
        )
    day = M.format_day(lang, ci.since)
    if section == "new":
        when = M.text(lang, "new_since", date=day)
    elif section == "fixed":
        when = M.text(lang, "fixed_since", date=day)
    else:
        when = M.text(lang, "since", date=day, days=M.plural(lang, "days", ci.days))
    transient = f.check in (Check.BROKEN_LINK, Check.MISSING_PDF) and is_transient(f.detail)
    new_url = f.new_url if f.check is Check.REDIRECT and section != "fixed" else ""
    return _Item(
        severity=f.severity.value,
        severity_label=M.severity_label(lang, f.severity),
        verdict=_one_line(M.verdict(lang, f, transient=transient), 300),
        page_url=_one_line(f.page, 2000),
        page_href=_href(f.page),
        page_short=_short_url(f.page),
        page_title=title or M.text(lang, "untitled"),
        link_text=_one_line(f.link_text, 150),
        target_url=_one_line(f.target, 2000),
        target_href=_href(f.target),
        target_short=_short_url(f.target),
        new_url=_one_line(new_url, 2000),
        new_url_href=_href(new_url),
        review=review,
        when=when,
        edit_url="" if section == "fixed" else _href(owner.edit_link(f.page)),
    )


def subject_for(
    lang: str, counts: Mapping[str, int], site: str, as_of: dt.date, *, complete: bool = True
) -> str:
    """ "3 nya fel, 2 åtgärdade – umea.se/internationellt v.48": counts and site only."""
    parts = []
    if counts.get("new"):
        parts.append(M.plural(lang, "new", counts["new"]))
    if counts.get("fixed"):
        parts.append(M.plural(lang, "fixed", counts["fixed"]))
    if not parts:
        if counts.get("still_open"):
            parts.append(M.plural(lang, "open", counts["still_open"]))
        elif complete:
            parts.append(M.text(lang, "all_clear_subject"))
        elif counts.get("unchecked"):  # not "all clear": those pages were not looked at
            parts.append(M.plural(lang, "unchecked_subject", counts["unchecked"]))
        else:
            parts.append(M.text(lang, "nothing_new_subject"))
    week = M.text(lang, "week", week=as_of.isocalendar().week)
    subject = f"{', '.join(parts)} – {header_safe(site, 80)} {week}".replace("  ", " ")
    if not complete:
        subject += f" ({M.text(lang, 'incomplete_subject')})"
    return header_safe(subject, 250)


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(
            enabled_extensions=("html.j2",), disabled_extensions=("txt.j2",), default=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@lru_cache(maxsize=1)
def _inliner() -> css_inline.CSSInliner:
    return css_inline.CSSInliner(load_remote_stylesheets=False, keep_link_tags=False)


def _cut(sections: list[_Section], limit: int, lang: str) -> None:
    for s in sections:
        s.items = s.all_items[:limit]
        s.more = max(0, s.count - len(s.items))
        s.more_text = M.plural(lang, "more", s.more) if s.more else ""


def _with_headings(lang: str, items: list[_Item]) -> list[_Item]:
    heads = page_headings(lang, [i.page_url for i in items], [i.page_title for i in items])
    return [replace(i, page_heading=h) for i, h in zip(items, heads, strict=True)]


def _workspace_ctx(
    lang: str, parts: Sequence[tuple[Owner, Changes]], extras: Mapping[Owner, OwnerExtras] | None
) -> dict[str, Any]:
    """The trend line, the "left out" line and the workspace link of one recipient."""
    mine = [extras[o] for o, _ in parts if extras and o in extras]
    left_out = sum(e.left_out for e in mine)
    urls = [e.workspace_url for e in mine if e.workspace_url]
    return {
        "trend": trend_line(lang, mine),
        "left_out": W.plural(lang, "left_out", left_out) if left_out else "",
        "workspace_url": _href(urls[0]) if len(urls) == 1 else "",
    }


def _sections(
    lang: str,
    grouped: Mapping[str, Sequence[Sequence[tuple[Owner, ChangeItem]]]],
    pages: Mapping[str, Page],
    as_of: dt.date,
    max_items: int,
    extras: Mapping[Owner, OwnerExtras] | None,
) -> list[_Section]:
    """New, still open and fixed problems, each a section with its page headings."""
    sections: list[_Section] = []
    for key, title in (
        ("new", "section_new"),
        ("still_open", "section_open"),
        ("fixed", "section_fixed"),
    ):
        groups = grouped[key]
        if groups:
            items = [
                _group_item(lang, g, key, pages, as_of, extras) for g in groups[: max(0, max_items)]
            ]
            sections.append(
                _Section(
                    key=key,
                    title=M.text(lang, title),
                    count=len(groups),
                    all_items=_with_headings(lang, items),
                )
            )
    return sections


def _render(
    lang: str,
    parts: Sequence[tuple[Owner, Changes]],
    meta: ReportMeta,
    recipient_name: str,
    report_url: str,
    pages: Mapping[str, Page],
    max_items: int,
    max_html_bytes: int,
    extras: Mapping[Owner, OwnerExtras] | None = None,
) -> tuple[str, str, str]:
    """(subject, text, html) for one recipient."""
    changes = Changes()
    for _, c in parts:
        changes = changes + c
    # One entry per problem: links to one missing page are one problem (checks.groups),
    # listed page by page (the page of the problem's first place).
    grouped = {
        key: order_by_page(
            _grouped(sorted(((o, ci) for o, c in parts for ci in getattr(c, key)), key=_sort_key)),
            page=lambda g: g[0][1].finding.page,
            rank=lambda g: _SEVERITY_ORDER[g[0][1].finding.severity],
        )
        for key in ("new", "still_open", "fixed")
    }
    counts = {**changes.counts(), **{key: len(g) for key, g in grouped.items()}}
    subject = subject_for(lang, counts, meta.site, meta.as_of, complete=changes.complete)

    sections = _sections(lang, grouped, pages, meta.as_of, max_items, extras)
    notice = ""
    if not changes.complete:
        reasons = ", ".join(header_safe(r, 100) for r in changes.incomplete_reasons) or "?"
        notice = M.text(lang, "incomplete", reasons=reasons)
        if changes.unchecked:
            notice += " " + M.plural(lang, "unchecked", len(changes.unchecked))
    name = _one_line(recipient_name, 80)
    ctx: dict[str, Any] = {
        "lang": lang,
        "t": M.TEXTS[lang],
        "subject": subject,
        "site": meta.site,
        "week": M.text(lang, "week", week=meta.as_of.isocalendar().week),
        "greeting": M.text(lang, "greeting", name=name) if name else M.text(lang, "greeting_anon"),
        "intro": M.text(lang, "intro", site=meta.site, date=M.format_day(lang, meta.as_of)),
        "summary": ", ".join(
            M.plural(lang, k, counts[c])
            for k, c in (("new", "new"), ("open", "still_open"), ("fixed", "fixed"))
            if counts[c]
        ),
        # Only a complete run may say "no problems": an incomplete one did not see every page.
        "all_clear": ""
        if changes.has_problems or not changes.complete
        else M.text(lang, "all_clear"),
        "notice": notice,
        "sections": sections,
        "report_url": _href(report_url),
        "footer": M.text(lang, "footer"),
        "w": W.TEXTS[lang],
        **_workspace_ctx(lang, parts, extras),
    }
    env = _env()
    limit = max(0, max_items)
    while True:
        _cut(sections, limit, lang)
        html = _inliner().inline(env.get_template("email.html.j2").render(ctx))
        size = len(html.encode("utf-8"))
        if size <= max_html_bytes or limit == 0:
            break
        limit = max(0, min(limit - 1, int(limit * max_html_bytes / size * 0.95)))
    text = env.get_template("email.txt.j2").render(ctx)
    return subject, text, html


def build_message(
    owner: Owner,
    changes: Changes,
    meta: ReportMeta,
    *,
    from_addr: str,
    recipient: str | None = None,
    lang: str | None = None,
    pages: Mapping[str, Page] | None = None,
    report_url: str = "",
    max_items: int = 40,
    max_html_bytes: int = MAX_HTML_BYTES,
    message_id_domain: str = "",
    now: dt.datetime | None = None,
) -> EmailMessage:
    """One owner's email for one recipient (default: the owner's first address)."""
    return _message(
        [(owner, changes)],
        meta,
        recipient=recipient or owner.emails[0],
        name=owner.name,
        lang=lang or owner.language,
        settings=EmailSettings(
            from_addr=from_addr,
            report_url=report_url,
            max_items=max_items,
            max_html_bytes=max_html_bytes,
            message_id_domain=message_id_domain,
        ),
        pages=pages or {},
        now=now,
    )


def _message(
    parts: Sequence[tuple[Owner, Changes]],
    meta: ReportMeta,
    *,
    recipient: str,
    name: str,
    lang: str,
    settings: EmailSettings,
    pages: Mapping[str, Page],
    now: dt.datetime | None,
    extras: Mapping[Owner, OwnerExtras] | None = None,
) -> EmailMessage:
    if _CONTROL.search(recipient) or _CONTROL.search(settings.from_addr):
        raise ValueError("email addresses must not contain control characters")
    subject, text, html = _render(
        lang,
        parts,
        meta,
        name,
        settings.report_url,
        pages,
        settings.max_items,
        settings.max_html_bytes,
        extras,
    )
    msg = EmailMessage()
    msg["From"] = settings.from_addr
    msg["To"] = Address(display_name=header_safe(name, 80), addr_spec=recipient)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now or dt.datetime.now(dt.UTC))
    domain = settings.message_id_domain or _domain_of(settings.from_addr)
    msg["Message-ID"] = message_id(meta, recipient, header_safe(domain, 100))
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Sitewatch-Run"] = str(int(meta.run_id))
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    # After the content: set_content() drops every Content-* header set before it.
    msg["Content-Language"] = lang
    return msg


def build_digest(
    routed: Mapping[Owner, Changes],
    meta: ReportMeta,
    settings: EmailSettings,
    *,
    pages: Mapping[str, Page] | None = None,
    now: dt.datetime | None = None,
    extras: Mapping[Owner, OwnerExtras] | None = None,
) -> dict[str, EmailMessage]:
    """All messages of a run: ``{recipient: message}``, in owner order.

    Owners with nothing new and nothing open get no message unless
    ``settings.send_all_clear``. ``extras``: per owner, what the workspace adds (problems
    left out by editors' decisions, the trend line, signed workspace links).
    """
    by_addr: dict[str, list[tuple[Owner, Changes]]] = {}
    for owner, changes in routed.items():
        for addr in owner.emails:
            by_addr.setdefault(addr.strip().lower(), []).append((owner, changes))
    out: dict[str, EmailMessage] = {}
    for addr, parts in by_addr.items():
        if not settings.send_all_clear and not any(c.has_problems for _, c in parts):
            continue
        first = parts[0][0]
        names = list(dict.fromkeys(o.name for o, _ in parts if o.name))
        out[addr] = _message(
            parts,
            meta,
            recipient=addr,
            name=names[0] if len(names) == 1 else "",
            lang=first.language,
            settings=settings,
            pages=pages or {},
            now=now,
            extras=extras,
        )
    return out
