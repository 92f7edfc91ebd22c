"""Whether a ``#fragment`` names a place on a page, as a browser decides it.

The HTML standard's "select the indicated part" (and its "find a potential indicated
element") on the fragment of the URL the link resolves to:

1. the empty fragment is the top of the page;
2. an element whose ``id`` (or an ``<a>`` whose ``name``) equals the fragment as the URL
   holds it, i.e. after the URL parser percent-encoded what its fragment percent-encode set
   names (controls, space, ``"``, ``<``, ``>``, backquote, every non-ASCII code point);
3. else one that equals the fragment percent-decoded and read as UTF-8 (invalid bytes
   become U+FFFD);
4. else ``top`` (ASCII case-insensitive, decoded) is the top of the page too.

So ``Byte.html#%3Cinit%3E(byte)`` finds ``id="<init>(byte)"``, ``#kontakt-och-%C3%B6ppet``
and ``#kontakt-och-öppet`` both find ``id="kontakt-och-öppet"``, ``#a%20b`` and ``#a b``
find ``id="a b"``; a ``+`` stays a ``+`` (it is not a space in a fragment).
"""

from __future__ import annotations

import re
from collections.abc import Container
from urllib.parse import unquote

#: What the URL parser percent-encodes in a fragment (the fragment percent-encode set).
_ENCODED_IN_FRAGMENT = re.compile('[\x00-\x20"<>`\x7f-\U0010ffff]')


def _percent_encode(m: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in m.group().encode("utf-8", "replace"))


def url_fragment(fragment: str) -> str:
    """``fragment`` as the URL parser stores it (its fragment state)."""
    return _ENCODED_IN_FRAGMENT.sub(_percent_encode, fragment)


def decoded_fragment(fragment: str) -> str:
    """The fragment percent-decoded and read as UTF-8 ("decodedFragment")."""
    if "%" not in fragment:
        return fragment
    return unquote(fragment, encoding="utf-8", errors="replace")


def fragment_found(fragment: str, ids: Container[str]) -> bool:
    """Whether ``#fragment`` (as written in the link, without ``#``) leads to a place on
    a page with these ``ids`` (``id`` and ``<a name>`` values)."""
    if not fragment:
        return True
    if fragment in ids and "%" not in fragment:
        # The common case, written as the id: without a "%" of its own, the fragment is
        # what decoding the URL's percent-encoding of it gives back (the second try).
        return True
    raw = url_fragment(fragment)
    if raw in ids:
        return True
    decoded = decoded_fragment(raw)
    if decoded in ids:
        return True
    return decoded.isascii() and decoded.lower() == "top"
