"""Is a link's URL one the WHATWG URL Standard accepts? (``broken`` / ``malformed_url``)

Browsers parse hrefs with the WHATWG URL parser, which rejects some references that
Python's ``urljoin`` quietly turns into something else: ``//////`` and ``http://`` (a special
URL without a host; ``urljoin`` makes the first ``http://host////`` and the second the page
itself), a host with a space or a forbidden code point (``http://exa mple.com/``,
``http://a^b/``), an IPv4 address out of range (``http://1.2.3.256/``), a bad IPv6 literal
(``http://[bad``), a port past 65535. Such a link goes nowhere in a browser: the audit
reports it ``broken`` / ``malformed_url`` instead of checking what ``urljoin`` made of it.

The check is the ``ada-url`` package (Python bindings of ada, the URL parser of Node.js,
which implements the standard and is tested against the WHATWG's own test suite), asked
only where the answer can be "no": the parser fails only in the scheme and authority
(host, port) of a URL, never in a path, query or fragment. So a reference that keeps the
page's scheme and host, i.e. one that starts with neither a scheme nor two slashes
(``x.html``, ``../a?b``, ``/docs/x``, ``#top``), is valid whenever the page URL is: most
links of a site, answered by :func:`keeps_authority` without the parser. The others
(absolute URLs, ``//host/x``) are parsed once per distinct href (``urls.ResolveCache``).

Joining stays ``urljoin``'s (the audit's target URLs are unchanged); where the standard
would join differently (``///x`` is ``http://x/`` to a browser, ``\\\\x`` is ``//x``), the
target is the one ``urljoin`` made: documented in docs/report-format.md.
"""

from __future__ import annotations

import re

import ada_url

#: What the URL parser removes before it starts: C0 controls and spaces at the ends, and
#: every tab and newline.
_ENDS = "".join(map(chr, range(0x21)))
_TAB_NL = re.compile("[\t\n\r]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


def keeps_authority(href: str) -> bool:
    """True when ``href`` (as the URL parser sees it) is a relative reference that takes
    its scheme, host and port from the base: a path, a query or a fragment."""
    h = href.strip(_ENDS)
    if "\t" in h or "\n" in h or "\r" in h:
        h = _TAB_NL.sub("", h)
    if not h:
        return True
    c = h[0]
    if c in "/\\":
        return h[1:2] not in ("/", "\\")
    if c in "?#":
        return True
    return _SCHEME.match(h) is None


def whatwg_valid(base: str, href: str) -> bool:
    """Whether the URL parser accepts ``href`` joined to ``base`` (a page's URL)."""
    if keeps_authority(href):
        return True
    try:
        ada_url.join_url(base, href)
    except ValueError:
        # Also raised for a base the parser rejects: then judge the href on its own.
        return not ada_url.check_url(base) and ada_url.check_url(href)
    return True
