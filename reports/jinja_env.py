"""The Jinja2 environment for report templates, and the display filters for untrusted text.

Page content (titles, link texts, URLs) is untrusted.  Autoescaping handles HTML syntax;
the filters here handle what escaping does not: huge strings, control characters,
bidirectional overrides, and URLs whose scheme must never become a clickable ``href``.
The same functions are used directly by the Markdown renderer.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from jinja2 import (
    BytecodeCache,
    Environment,
    FileSystemBytecodeCache,
    FileSystemLoader,
    StrictUndefined,
    select_autoescape,
)

from reports.json_report import aware, clean_unicode

_T = TypeVar("_T")

TEMPLATES_DIR = Path(__file__).with_name("templates")

#: Displayed titles, link texts and URLs are cut to about this many characters.
DISPLAY_LIMIT = 200
#: Longer URLs are shown as text only (no ``href``).
MAX_HREF = 8192
ELLIPSIS = "…"

# Bidirectional formatting characters: an RLO in a link text must not reorder the page.
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# C0/C1 controls, DEL, and the XML/HTML noncharacters U+FFFE/U+FFFF.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ufffe\uffff]")
_SPACES = re.compile(r"\s+")
_URL_FORBIDDEN = re.compile("[\x00-\x20\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def display_text(value: object, limit: int = DISPLAY_LIMIT) -> str:
    """One line of safe-to-show text: controls and bidi overrides removed, whitespace
    collapsed, cut to ``limit`` characters with an ellipsis.  Not HTML-escaped."""
    text = "" if value is None else str(value)
    # Never run the regexes over megabytes: a generous prefix is enough to fill `limit`.
    cap = limit * 4 + 64
    cut = len(text) > cap
    text = _SPACES.sub(" ", _CONTROL.sub(" ", _BIDI.sub("", clean_unicode(text[:cap])))).strip()
    if cut or len(text) > limit:
        text = text[: max(limit - 1, 0)].rstrip() + ELLIPSIS
    return text


#: A run of percent-encoded bytes of which at least one is non-ASCII.
_PCT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})*%[89A-Fa-f][0-9A-Fa-f](?:%[0-9A-Fa-f]{2})*")


def _decode_run(m: re.Match[str]) -> str:
    raw = m.group()
    data = bytes.fromhex(raw.replace("%", ""))
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    # Only what encodes a non-ASCII character is shown decoded: an encoded "/", "?", "#",
    # "%" or space keeps its meaning, and an invisible character (a control, a bidi or
    # zero-width format character, a space of any kind) stays visible as its code.
    if decoded.isascii() or any(unicodedata.category(c)[0] in "CZ" for c in decoded):
        return raw
    return "".join(c if not c.isascii() else f"%{ord(c):02X}" for c in decoded)


def display_url(url: object) -> str:
    """``url`` as a browser's address bar shows it: UTF-8 percent-encodings of non-ASCII
    characters decoded (``/kontakt-och-%C3%B6ppettider`` reads ``/kontakt-och-öppettider``),
    everything else as it is. For display only; the ``href`` keeps the URL itself."""
    text = "" if url is None else str(url)
    if "%" not in text:
        return text
    return _PCT_RUN.sub(_decode_run, text[: DISPLAY_LIMIT * 4 + 64])


def safe_href(url: object) -> str | None:
    """``url`` if it may be used as an ``href`` (absolute http/https, no controls), else None.

    Everything else (``javascript:``, ``data:``, ``mailto:``, relative or malformed
    addresses, addresses with spaces or bidi controls) is to be shown as plain text.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_HREF:
        return None
    if _URL_FORBIDDEN.search(url) or clean_unicode(url) != url:
        return None
    head = url[:8].lower()
    if not (head.startswith("http://") or head.startswith("https://")):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def remembered(fn: Callable[..., _T]) -> Callable[..., _T]:
    """``fn`` with its results for hashable arguments kept (LRU, 8,192 of them)."""
    cached = functools.lru_cache(maxsize=8192)(fn)

    @functools.wraps(fn)
    def call(*args: Any) -> _T:
        try:
            return cached(*args)
        except TypeError:  # an unhashable argument
            return fn(*args)

    return call


def format_datetime(value: dt.datetime) -> str:
    """``2025-03-14 02:00 UTC+01:00`` (naive values are taken as UTC)."""
    value = aware(value)
    offset = value.utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hh, mm = divmod(abs(minutes), 60)
    return f"{value:%Y-%m-%d %H:%M} UTC{sign}{hh:02d}:{mm:02d}"


def _bytecode_cache() -> BytecodeCache | None:
    """Compiled templates kept between runs (Jinja2's per-user directory under the temp
    dir, mode 0700): compiling report.html.j2 costs ~0.08 s of every audit otherwise."""
    try:
        return FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None


@functools.cache
def get_env() -> Environment:
    """The shared environment: autoescaping for HTML/XML templates, strict undefined."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm", "xml", "html.j2", "htm.j2", "xml.j2"),
            disabled_extensions=("txt", "md", "txt.j2", "md.j2"),
            default_for_string=True,
            default=True,
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        bytecode_cache=_bytecode_cache(),
    )
    # A value shown again (a URL, a title) is cleaned once per process.
    env.filters["clip"] = remembered(display_text)
    env.filters["display_url"] = display_url
    env.filters["datetime"] = format_datetime
    # report.html's repeated pieces, used as filters: a filter is called directly, where a
    # function call goes through Jinja2's Context.call. (Imported here: html_parts
    # imports this module.)
    from reports.html_parts import PARTS

    env.filters.update(PARTS)
    return env
