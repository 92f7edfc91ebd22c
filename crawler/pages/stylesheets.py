"""Reading an in-scope stylesheet for the files it refers to (``@import``, ``url(...)``).

The spider fetches a stylesheet that a page links with ``<link rel=stylesheet>`` (or that
another stylesheet ``@import``s) with a GET capped at ``engine.modes.FULL_BYTES`` when it lies in
the crawl's scope; outside the scope it is only checked, as any other link. Each reference
is then taken as a link *found on the stylesheet* (``LinkRef.page`` is the stylesheet's URL,
``LinkRef.tag`` ``@import`` or ``css``), resolved against the stylesheet's own URL as
browsers do. The pages that use the stylesheet are the ones its own ``found_on`` lists: a
missing background image is reported once, on ``site.css``, and ``site.css`` names the
pages. (A ``<style>`` block's or ``style`` attribute's references are found on the page
itself: ``crawler.pages.extract``.)
"""

from __future__ import annotations

import codecs
import re

from w3lib.encoding import http_content_type_encoding, read_bom

from crawler.pages.css_refs import css_refs

_CHARSET = re.compile(rb'@charset "([A-Za-z0-9_\-:.]{1,40})";')


def is_stylesheet(content_type: str, url: str) -> bool:
    """Served as CSS (or without a type, named ``.css``): an HTML error page is not."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype:
        return ctype == "text/css"
    return url.split("?", 1)[0].lower().endswith(".css")


def stylesheet_text(body: bytes, content_type: str) -> str:
    """The stylesheet decoded as CSS Syntax says: BOM, then the Content-Type charset, then
    ``@charset``, else UTF-8; undecodable bytes become U+FFFD."""
    encoding = read_bom(body)[0] or http_content_type_encoding(content_type)
    if encoding is None:
        m = _CHARSET.match(body)
        if m is not None:
            encoding = m.group(1).decode("ascii")
    try:
        codecs.lookup(encoding or "utf-8")
    except LookupError:
        encoding = "utf-8"
    return body.decode(encoding or "utf-8", errors="replace").lstrip("\ufeff")


def stylesheet_refs(body: bytes, content_type: str, url: str) -> list[tuple[str, str]]:
    """``(reference, kind)`` of a stylesheet's body (none when it is not CSS)."""
    if not body or not is_stylesheet(content_type, url):
        return []
    return css_refs(stylesheet_text(body, content_type))
