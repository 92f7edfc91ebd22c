"""The crawl's probe modes and limits, and the small pure helpers the spider's parts share
(``crawler.engine.spider``, ``frontier``, ``answers``)."""

from __future__ import annotations

import email.utils
import re
import time

from crawler.pages.parse_worker import Resolution
from crawler.pages.urls import Resolved

# Probe modes, weakest first: a stronger mode answers every question a weaker one does.
HEAD, SNIFF, FULL, PAGE = 1, 2, 3, 4
FULL_BYTES = 2_000_000
#: Give freed heap memory back (``crawler.state.memory.trim``) every so many answers.
TRIM_EVERY = 2000
#: URLs that ``safe_url_string`` (Scrapy's Request) would leave exactly as they are: ASCII
#: host and port, a path and query of characters it never quotes, every ``%`` starting an
#: escape. Such requests skip Scrapy's re-quoting (meta ``verbatim_url``); tested against it.
_VERBATIM_URL = re.compile(
    r"https?://[A-Za-z0-9.\-]+(?::[0-9]{1,5})?/(?:[A-Za-z0-9/:@!$&()*+,;=._~?\-]|%[0-9A-Fa-f]{2})*"
)


_SAYS_PDF = re.compile(r"\(\s*pdf\b|\[\s*pdf\b|\bpdf\s*[)\],]|\.pdf\b|\bpdf\s*$", re.I)


def says_pdf(text: str) -> bool:
    """Link text that promises a PDF: "Flyer (pdf)", "Rapport [PDF, 2 MB]", "flyer.pdf".

    A mere mention ("Building the PDF documentation") does not count.
    """
    return "pdf" in text.lower() and _SAYS_PDF.search(text) is not None


def _joined(r: Resolved) -> Resolution:
    return r.base, r.fragment, r.skip


def _retry_after(value: bytes | None) -> float | None:
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
