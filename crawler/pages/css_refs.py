"""The references in a stylesheet: ``@import`` and ``url(...)``, as CSS Syntax reads them.

A small scanner, not a CSS parser: one regular expression walks the text once and knows
just enough tokens to never mistake text for a reference:

- comments (``/* ... */``, an unterminated one runs to the end) are skipped;
- strings (``"..."``, ``'...'``) are read with their escapes; a string counts only right
  after ``@import`` (``@import "x.css"``);
- ``url(...)`` (any case, not part of a longer name like ``myurl(``) in its unquoted form
  (escapes allowed; a quote, ``(`` or control character inside makes it a "bad url" that
  browsers ignore, and so do we) and its quoted forms ``url("...")`` / ``url('...')``.

Escapes are decoded (``\\41`` is ``A``, ``\\)`` is ``)``; a backslash-newline in a string
continues the line). ``data:`` references and empty ones are left out, so are references
inside ``image-set("a.png" 1x)``'s bare strings (rare; documented in docs/report-format.md).

Bounded: at most ``MAX_CHARS`` characters are read and ``MAX_REFS`` references returned.
Every alternative of the pattern consumes characters one class at a time with no nested
quantifiers, so the scan is linear in the input's length (tested on hostile input).
"""

from __future__ import annotations

import re

#: Characters of a stylesheet read (the spider fetches at most ``engine.modes.FULL_BYTES``).
MAX_CHARS = 2_000_000
#: References returned per stylesheet or ``<style>`` block.
MAX_REFS = 10_000

#: Reference kinds: what ``LinkRef.tag`` says for each (crawler/pages/extract.py, the spider).
IMPORT, URL = "@import", "css"

_TOKENS = re.compile(
    r"""
      (?P<comment>/\*[\s\S]*?(?:\*/|\Z))
    | (?P<dq>"(?:[^"\\\n]|\\[\s\S])*+(?:"|\n|\Z))
    | (?P<sq>'(?:[^'\\\n]|\\[\s\S])*+(?:'|\n|\Z))
    | (?P<import>@import(?![\w-]))
    | (?<![\w\\-])(?P<url>url\([\t\n\x0c\r ]*+
        (?:
            (?P<udq>"(?:[^"\\\n]|\\[\s\S])*+")
          | (?P<usq>'(?:[^'\\\n]|\\[\s\S])*+')
          | (?P<bare>(?:[^"'()\\\x00-\x08\x0b\x0e-\x1f\x7f\t\n\x0c\r ]
                      |\\[0-9a-fA-F]{1,6}+[\t\n\x0c\r ]?+|\\[^\n0-9a-fA-F])*+)
        )
        [\t\n\x0c\r ]*+\))
    | (?<![\w\\-])(?P<badurl>url\((?:[^)\\]|\\[\s\S])*+\)?)
    | (?P<other>[;{}])
    """,
    re.I | re.X,
)
_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})[\t\n\x0c\r ]?|(\n)|([\s\S]))")


def _unescape(s: str) -> str:
    if "\\" not in s:
        return s
    return _ESCAPE.sub(_escaped, s)


def _escaped(m: re.Match[str]) -> str:
    hexa, newline, char = m.groups()
    if hexa is not None:
        code = int(hexa, 16)
        if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return "\ufffd"
        return chr(code)
    if newline is not None:
        return ""  # a line continuation inside a string
    return char  # type: ignore[no-any-return]


def css_refs(text: str) -> list[tuple[str, str]]:
    """``(reference, kind)`` pairs of a stylesheet in order, ``kind`` :data:`IMPORT` or
    :data:`URL`; without ``data:`` and empty references; duplicates kept."""
    out: list[tuple[str, str]] = []
    after_import = False
    for m in _TOKENS.finditer(text[:MAX_CHARS]):
        kind = m.lastgroup
        if kind == "comment":
            continue
        ref: str | None = None
        if kind in ("dq", "sq"):
            token = m.group()
            if after_import and len(token) >= 2 and token[-1] == token[0]:
                ref = _unescape(token[1:-1])
        elif kind == "url" or m.group("url") is not None:
            quoted = m.group("udq") or m.group("usq")
            ref = _unescape(quoted[1:-1] if quoted else m.group("bare"))
        was_import, after_import = after_import, kind == "import"
        if ref is None:
            continue
        ref = ref.strip("\t\n\x0c\r ")
        if ref and ref[:5].lower() != "data:":
            out.append((ref, IMPORT if was_import else URL))
            if len(out) >= MAX_REFS:
                break
    return out
