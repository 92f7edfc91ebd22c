"""The small pieces ``report.html`` repeats on every row, as Python functions.

Used in the template as filters (``{{ u|url }}``, ``{{ r.page|page_cell(r.page_title) }}``;
registered by ``reports.jinja_env.get_env``), they return :class:`markupsafe.Markup` built
from escaped parts. They were Jinja2 macros: a macro call costs several microseconds of
bookkeeping, and a big site's report makes tens of thousands of them (s2000: ~39,000
calls, most of the HTML's render time). A filter is called directly, where a function
called in a template goes through Jinja2's ``Context.call``. The same URLs and titles
recur on many rows, so the pieces for them are built once per process.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

from reports.jinja_env import display_text, display_url, remembered, safe_href

_NOLINK = '<span class="url nolink" title="Not a web address; not clickable">'
_WATCHED = Markup(' <span class="badge watched" title="Watched target">★ watched</span>')
_EMPTY = Markup("")


@remembered
def url(u: object) -> Markup:
    """A URL: a link for absolute http(s) addresses, plain text for anything else."""
    shown = escape(display_text(display_url(u)))
    h = safe_href(u)
    if h:
        return Markup(f'<a class="url" href="{escape(h)}">{shown}</a>')
    return Markup(f"{_NOLINK}{shown}</span>")


@remembered
def text(t: object) -> Markup:
    """Untrusted text, cleaned and cut (``display_text``), isolated from the page's
    direction in ``<bdi>``."""
    return Markup(f"<bdi>{escape(display_text(t))}</bdi>")


@remembered
def badge(severity: object) -> Markup:
    s = escape(severity)
    return Markup(f'<span class="badge {s}">{s}</span>')


def watched_badge(row: Any) -> Markup:
    """The "watched" badge, and an editor's decision in force (``Row.decided``)."""
    badge = _WATCHED if row.watched else _EMPTY
    decided = getattr(row, "decided", "")
    if decided:
        badge += Markup(f'<div class="decided small muted">{text(decided)}</div>')
    return badge


def page_cell(page_url: object, title: object) -> Markup:
    """A page's title (when it has one) above its URL."""
    head = f'<div class="title">{text(title)}</div>' if title else ""
    return Markup(f"{head}<div>{url(page_url)}</div>")


def what(row: Any) -> Markup:
    """What is wrong: the finding's message, then its detail code."""
    out = f'<div class="msg">{text(row.message)}</div>' if row.message else ""
    if row.detail:
        out += f"<div><code>{escape(display_text(row.detail, 60))}</code></div>"
    return Markup(out)


def review(page: Any) -> Markup:
    """When a page was last reviewed, how long ago, and where the date was found."""
    if not page.review_date:
        return Markup('<span class="muted">No review date found</span>')
    out = f"Reviewed <strong>{escape(page.review_date)}</strong>"
    if page.age_days is not None:
        out += f" · {escape(page.age_days)} days ago"
    if page.review_date_source:
        out += f' · <span class="muted">source: {text(page.review_date_source)}</span>'
    return Markup(out)


def _times(n: int, one: str, other: str) -> str:
    return f"{n:,} {one if n == 1 else other}"


def linked_from(group: Any) -> str:
    """ "linked 1,410 times from 3 pages" for a problem (a ``GroupView``)."""
    return (
        f"linked {_times(group.links, 'time', 'times')} from {_times(group.pages, 'page', 'pages')}"
    )


def _place(row: Any, key: str) -> str:
    out = str(page_cell(row.page, row.page_title))
    if row.link_text:
        out += f'<div class="muted">“{text(row.link_text)}”</div>'
    if row.target != key:  # the address differs from the resource: show how (#fragment)
        rest = row.target[len(key) :] if row.target.startswith(key) else row.target
        out += f"<div><code>{escape(display_text(rest, 120))}</code></div>"
    return out


def places(group: Any) -> Markup:
    """Where a problem is linked from: the page (and link text) when once, else a
    ``<details>`` list of at most ``EXAMPLE_PLACES`` places and "… and N more"."""
    key = group.target
    if group.links == 1:
        return Markup(_place(group.rows[0], key))
    items = "".join(f"<li>{_place(r, key)}</li>" for r in group.rows)
    if group.more:
        items += (
            f'<li class="muted">… and {group.more:,} more (every place is listed in '
            "report.csv and report.json)</li>"
        )
    return Markup(
        f"<details><summary>{escape(linked_from(group))}</summary>"
        f'<ul class="places">{items}</ul></details>'
    )


#: The filters ``report.html.j2`` uses.
PARTS = {
    "url": url,
    "text": text,
    "badge": badge,
    "watched_badge": watched_badge,
    "page_cell": page_cell,
    "what": what,
    "review": review,
    "places": places,
    "linked_from": linked_from,
}
