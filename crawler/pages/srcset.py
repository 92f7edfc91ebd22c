"""The URLs of a ``srcset`` attribute, read by the HTML standard's algorithm.

"Parse a srcset attribute" (HTML Living Standard, 4.8.4.3.10): candidates are separated by
commas that *follow* a URL token, and a URL token runs until ASCII whitespace, so
``data:image/png;base64,AAAA 1x`` is one URL and ``a,b.png 2x`` is the URL ``a,b.png``.
Commas at the end of a URL token end the candidate and are stripped. Descriptors may hold
commas inside parentheses (``1x (a, b)``). Descriptors are read only to find where a
candidate ends: they are not validated (a link checker reports every URL written in the
markup, even one a browser would drop for a bad descriptor).

Linear in the attribute's length; no regular expression can backtrack.
"""

from __future__ import annotations

import re

#: ASCII whitespace as the HTML standard defines it (tab, LF, FF, CR, space).
_WS = "\t\n\x0c\r "
_SKIP = re.compile(r"[\t\n\x0c\r ,]*")
_URL = re.compile(r"[^\t\n\x0c\r ]+")
#: One step of the descriptor tokenizer: a run of ordinary characters, or one special one.
_DESC = re.compile(r"[^\t\n\x0c\r ,()]+|.", re.S)


def srcset_urls(value: str) -> list[str]:
    """The image candidate URLs of a ``srcset`` value, in order (duplicates kept)."""
    out: list[str] = []
    pos, end = 0, len(value)
    while True:
        pos = _SKIP.match(value, pos).end()  # type: ignore[union-attr]
        if pos >= end:
            return out
        m = _URL.match(value, pos)
        assert m is not None
        url, pos = m.group(), m.end()
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            pos = _skip_descriptors(value, pos)
        if url:
            out.append(url)


def _skip_descriptors(value: str, pos: int) -> int:
    """The position after a candidate's descriptors (after its ending comma, if any)."""
    in_parens = False
    for m in _DESC.finditer(value, pos):
        c = m.group()
        if in_parens:
            if c == ")":
                in_parens = False
        elif c == ",":
            return m.end()
        elif c == "(":
            in_parens = True
    return len(value)
