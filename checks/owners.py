"""Who owns which pages: route findings to editors by URL prefix or glob.

A pattern containing ``*``, ``?`` or ``[`` is a glob (``fnmatch``, case-sensitive, ``*``
also matches ``/``); anything else is a URL prefix. A prefix matches the URL itself and
everything below it: ``https://x.se/skola`` matches ``https://x.se/skola/a`` and
``https://x.se/skola?x=1`` but not ``https://x.se/skolmat``. Scheme and host are compared
case-insensitively. The most specific pattern wins: the longest prefix, a glob counting its
literal (non-wildcard) characters; on a tie a prefix beats a glob, then config order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from urllib.parse import quote, urlsplit, urlunsplit

from checks.changes import ChangeItem, Changes
from checks.models import Finding

LANGUAGES = ("sv", "en")
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Owner:
    """An editor (or team) and the pages they own."""

    name: str
    emails: tuple[str, ...]
    language: str = "sv"
    #: CMS edit link template; ``{url}`` is replaced by the page URL (see ``edit_link``).
    edit_url: str = ""
    match: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Accept lists from config; keep the value hashable.
        object.__setattr__(self, "emails", tuple(self.emails))
        object.__setattr__(self, "match", tuple(self.match))
        if not self.emails:
            raise ValueError(f"owner {self.name!r}: at least one email address is needed")
        if self.language not in LANGUAGES:
            raise ValueError(f"owner {self.name!r}: language must be one of {LANGUAGES}")
        for e in self.emails:
            if "@" not in e or any(c in e for c in "\r\n,;<> \t"):
                raise ValueError(f"owner {self.name!r}: invalid email address {e!r}")

    def edit_link(self, page_url: str) -> str:
        """The CMS edit link for a page, or "" when no template is configured.

        In the query part of the template (after ``?``) the URL is percent-encoded as one
        parameter value; elsewhere (e.g. ``{url}?edit=1``) it is inserted as it is.
        """
        if not self.edit_url or "{url}" not in self.edit_url:
            return ""
        pos = self.edit_url.index("{url}")
        in_query = "?" in self.edit_url[:pos]
        value = quote(page_url, safe="") if in_query else page_url
        return self.edit_url.replace("{url}", value)


def _norm(url: str) -> str:
    """Lower-case scheme and host; the rest is kept as it is."""
    try:
        p = urlsplit(url)
    except ValueError:
        return url
    return urlunsplit((p.scheme.lower(), p.netloc.lower(), p.path, p.query, p.fragment))


def is_glob(pattern: str) -> bool:
    return bool(_GLOB_CHARS.search(pattern))


def _score(url: str, pattern: str) -> tuple[int, int] | None:
    """(specificity, prefix-beats-glob) when the pattern matches, else None."""
    if is_glob(pattern):
        if fnmatchcase(url, _norm(pattern)):
            return (len(_GLOB_CHARS.sub("", pattern)), 0)
        return None
    prefix = _norm(pattern)
    if url == prefix or (
        url.startswith(prefix) and (prefix.endswith("/") or url[len(prefix)] in "/?#")
    ):
        return (len(prefix), 1)
    return None


def owner_for(page_url: str, owners: Sequence[Owner]) -> Owner | None:
    """The owner whose most specific pattern matches the page, or None."""
    url = _norm(page_url)
    best: Owner | None = None
    best_score: tuple[int, int] | None = None
    for owner in owners:
        for pattern in owner.match:
            s = _score(url, pattern)
            if s is not None and (best_score is None or s > best_score):
                best, best_score = owner, s
    return best


class _Router:
    """owner_for with a per-page cache (100k findings on a few thousand pages)."""

    def __init__(self, owners: Sequence[Owner], fallback: Owner | None) -> None:
        self.owners = owners
        self.fallback = fallback
        self.cache: dict[str, Owner | None] = {}

    def __call__(self, page: str) -> Owner | None:
        if page not in self.cache:
            self.cache[page] = owner_for(page, self.owners) or self.fallback
        return self.cache[page]


def route_findings(
    findings: Iterable[Finding], owners: Sequence[Owner], fallback: Owner | None
) -> dict[Owner, list[Finding]]:
    """Findings per owner of their page; unowned pages go to ``fallback``.

    With no fallback, findings on unowned pages are left out (see ``unowned``).
    Only owners with at least one finding appear; order follows the findings.
    """
    route = _Router(owners, fallback)
    out: dict[Owner, list[Finding]] = {}
    for f in findings:
        owner = route(f.page)
        if owner is not None:
            out.setdefault(owner, []).append(f)
    return out


def route_changes(
    changes: Changes, owners: Sequence[Owner], fallback: Owner | None
) -> dict[Owner, Changes]:
    """The comparison split per owner: every owner (config order), then the fallback.

    Owners with nothing to report are included with empty ``Changes`` so that an all-clear
    can be sent; ``fallback`` is included when given.
    """
    route = _Router(owners, fallback)
    everyone: list[Owner] = list(dict.fromkeys([*owners, *([fallback] if fallback else [])]))
    buckets: dict[Owner, dict[str, list[ChangeItem]]] = {
        o: {"new": [], "still_open": [], "fixed": [], "unchecked": []} for o in everyone
    }
    for section in ("new", "still_open", "fixed", "unchecked"):
        for item in getattr(changes, section):
            owner = route(item.finding.page)
            if owner is not None:
                buckets[owner][section].append(item)
    return {
        o: replace(
            changes,
            new=tuple(b["new"]),
            still_open=tuple(b["still_open"]),
            fixed=tuple(b["fixed"]),
            unchecked=tuple(b["unchecked"]),
        )
        for o, b in buckets.items()
    }


def unowned(findings: Iterable[Finding], owners: Sequence[Owner]) -> list[Finding]:
    """Findings on pages that no owner pattern matches."""
    route = _Router(owners, None)
    return [f for f in findings if route(f.page) is None]


def _strings(value: object) -> tuple[str, ...]:
    """One string, or an iterable of them, as a tuple of strings."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Iterable):
        raise TypeError(f"expected a string or a list of strings, not {type(value).__name__}")
    return tuple(str(v) for v in value)


def owners_from_config(entries: Iterable[Mapping[str, object] | object]) -> tuple[Owner, ...]:
    """Owners from config entries (mappings or objects with the same fields)."""

    def get(e: Mapping[str, object] | object, name: str, default: object) -> object:
        if isinstance(e, Mapping):
            return e.get(name, default)
        return getattr(e, name, default)

    out = []
    for e in entries:
        emails = get(e, "emails", ())
        match = get(e, "match", ())
        out.append(
            Owner(
                name=str(get(e, "name", "")),
                emails=_strings(emails),
                language=str(get(e, "language", "sv")),
                edit_url=str(get(e, "edit_url", "") or ""),
                match=_strings(match),
            )
        )
    return tuple(out)
