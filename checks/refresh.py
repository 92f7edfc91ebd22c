"""``<meta http-equiv="refresh" content="…">`` read as the HTML standard reads it.

:func:`parse_refresh` follows the standard's "shared declarative refresh steps": a delay
in whole seconds (digits, then digits and dots that are ignored), then optionally ``;`` or
``,`` and the URL, itself optionally after ``url`` (any case) and ``=`` and in quotes. It
returns the delay and the URL text as written (unresolved; None when the page refreshes
itself), or None when the browser would ignore the content.

A refresh hop in a redirect chain is a :class:`~checks.models.RedirectHop` with status
:data:`REFRESH_STATUS` (0, no HTTP status is 0): the page at ``url`` answered 2xx and its
``<meta http-equiv=refresh>`` sent the browser on (see docs/report-format.md).
"""

from __future__ import annotations

#: The status of a redirect hop that is an HTML meta refresh, not an HTTP redirect.
REFRESH_STATUS = 0
_WS = "\t\n\x0c\r "
_DIGITS = "0123456789"


def _skip(s: str, i: int, chars: str) -> int:
    n = len(s)
    while i < n and s[i] in chars:
        i += 1
    return i


def parse_refresh(content: str) -> tuple[int, str | None] | None:
    """(delay in seconds, URL text or None) of a refresh ``content``; None: ignored."""
    s, n = content, len(content)
    i = _skip(s, 0, _WS)
    j = _skip(s, i, _DIGITS)
    if j == i and (j >= n or s[j] != "."):
        return None
    delay = int(s[i:j]) if j > i else 0
    i = _skip(s, j, _DIGITS + ".")
    if i < n:
        if s[i] not in ";," + _WS:
            return None
        i = _skip(s, i, _WS)
        if i < n and s[i] in ";,":
            i += 1
        i = _skip(s, i, _WS)
    if i >= n:
        return delay, None
    url = _url_part(s, i)
    return delay, url


def _url_part(s: str, i: int) -> str:
    """The URL text from ``i`` on: after ``url =`` and inside quotes, if so written."""
    n, start = len(s), i
    if s[i] in "Uu":
        i += 1
        if not (i < n and s[i] in "Rr"):
            return s[start:]  # "parse": the remainder as it stands
        i += 1
        if not (i < n and s[i] in "Ll"):
            return s[start:]
        i = _skip(s, i + 1, _WS)
        if not (i < n and s[i] == "="):
            return s[start:]
        i = _skip(s, i + 1, _WS)
    quote = ""
    if i < n and s[i] in "'\"":
        quote = s[i]
        i += 1
    url = s[i:]
    if quote and quote in url:
        url = url[: url.index(quote)]
    return url
