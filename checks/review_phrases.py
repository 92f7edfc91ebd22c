"""The words and date forms behind ``checks.freshness``: month names, review phrases, and
the parser of the dates they introduce.

:func:`parse_date_text` reads one date expression (Swedish or English forms);
:func:`find_phrase_date` finds the best review/update/publish phrase followed closely by a
date in visible page text. The rules are documented in ``checks.freshness``.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator

from checks.models import DateSource

MIN_YEAR = 1990
MAX_YEAR = 2100

#: How far (in characters) the date may start after the end of the phrase keyword.
MAX_GAP = 40


# --------------------------------------------------------------------------- date parsing

_MONTHS: dict[str, int] = {
    # Swedish
    "januari": 1,
    "februari": 2,
    "mars": 3,
    "april": 4,
    "maj": 5,
    "juni": 6,
    "juli": 7,
    "augusti": 8,
    "september": 9,
    "oktober": 10,
    "november": 11,
    "december": 12,
    # English
    "january": 1,
    "february": 2,
    "march": 3,
    "may": 5,
    "june": 6,
    "july": 7,
    "august": 8,
    "october": 10,
    # Abbreviations
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "sept": 9,
    "okt": 10,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}
# Longest first so that "mars" is tried before "mar", "september" before "sept".
_MONTH_ALT = "|".join(sorted(_MONTHS, key=len, reverse=True))
_MONTH = rf"(?:{_MONTH_ALT})(?!\w)\.?"

_DATE_RE = re.compile(
    rf"""
    (?P<iso_y>\d{{4}})(?P<iso_sep>[-/.])(?P<iso_m>\d{{1,2}})(?P=iso_sep)(?P<iso_d>\d{{1,2}})(?!\d)
  | (?P<dot_d>\d{{1,2}})\.(?P<dot_m>\d{{1,2}})\.(?P<dot_y>\d{{4}})(?!\d)
  | (?P<sl_d>\d{{1,2}})/(?P<sl_m>\d{{1,2}})(?:/|\s+)(?P<sl_y>\d{{4}})(?!\d)
  | (?P<dmy_d>\d{{1,2}})(?:st|nd|rd|th|:e|:a|\.)?\s+(?:of\s+)?(?P<dmy_m>{_MONTH})
        ,?\s+(?P<dmy_y>\d{{4}})(?!\d)
  | (?P<mdy_m>{_MONTH})\s+(?P<mdy_d>\d{{1,2}})(?:st|nd|rd|th)?(?!\d),?\s+(?P<mdy_y>\d{{4}})(?!\d)
    """,
    re.IGNORECASE | re.VERBOSE,
)

_WEEKDAYS = (
    "måndag|tisdag|onsdag|torsdag|fredag|lördag|söndag|"
    "monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
    "mån|tis|ons|tors|tor|fre|lör|sön|mon|tues|tue|wed|thurs|thur|thu|fri|sat|sun"
)
# What may stand between a phrase keyword and its date. One character or one word per
# repetition, so the match is linear; it is also bounded by ``endpos`` when used.
_GAP_RE = re.compile(
    rf"(?:[\s:.,;|\-–—(\[]|\b(?:den|senast|on|the|at|last|{_WEEKDAYS})\b)*",
    re.IGNORECASE,
)

_ISO_MACHINE_RE = re.compile(r"\s*(\d{4})-(\d{2})-(\d{2})(?![\d])")


def _make_date(y: int, m: int, d: int) -> datetime.date | None:
    if not MIN_YEAR <= y <= MAX_YEAR:
        return None
    try:
        return datetime.date(y, m, d)
    except ValueError:
        return None


def _date_from_match(m: re.Match[str]) -> datetime.date | None:
    g = m.groupdict()
    if g["iso_y"] is not None:
        return _make_date(int(g["iso_y"]), int(g["iso_m"]), int(g["iso_d"]))
    if g["dot_y"] is not None:
        return _make_date(int(g["dot_y"]), int(g["dot_m"]), int(g["dot_d"]))
    if g["sl_y"] is not None:
        return _make_date(int(g["sl_y"]), int(g["sl_m"]), int(g["sl_d"]))
    if g["dmy_y"] is not None:
        month = _MONTHS[g["dmy_m"].rstrip(".").lower()]
        return _make_date(int(g["dmy_y"]), month, int(g["dmy_d"]))
    month = _MONTHS[g["mdy_m"].rstrip(".").lower()]
    return _make_date(int(g["mdy_y"]), month, int(g["mdy_d"]))


def parse_date_text(s: str) -> datetime.date | None:
    """Parse one date expression at the start of ``s`` (Swedish or English forms).

    Leading whitespace, "den", "on" and a weekday name are skipped; anything after the date
    (a time of day, a zone) is ignored. Returns None for anything else, for impossible
    calendar dates and for years outside 1990..2100.
    """
    if not isinstance(s, str):
        return None
    try:
        s = s[:200]
        gap = _GAP_RE.match(s)
        start = gap.end() if gap else 0
        m = _DATE_RE.match(s, start)
        return _date_from_match(m) if m else None
    except Exception:  # pragma: no cover - defensive: must never raise
        return None


def _parse_machine(value: object) -> datetime.date | None:
    """An ISO 8601 date/datetime (date part as written); falls back to the text forms."""
    if not isinstance(value, str):
        return None
    value = value[:100]
    m = _ISO_MACHINE_RE.match(value)
    if m:
        return _make_date(int(m[1]), int(m[2]), int(m[3]))
    return parse_date_text(value)


# --------------------------------------------------------------------------- phrases

_PHRASE_RE = re.compile(
    r"""\b(?:
      (?P<reviewed>granskad(?:es|e)?|granskats|granskat|reviewed)
    | (?P<updated>uppdaterad(?:es|e)?|uppdaterat|ändrad(?:es|e)?|ändrat|reviderad(?:es|e)?
                  |updated|modified|revised)
    | (?P<published>publicerad(?:es|e)?|publicerat|published)
    )\b""",
    re.IGNORECASE | re.VERBOSE,
)
_RANKS = {"reviewed": 3, "updated": 2, "published": 1}

# A keyword right after one of these is about the future ("will be reviewed on ...").
_NEGATED_BEFORE_RE = re.compile(r"\b(?:next|nästa|be|ska|skall|bör)\s+$", re.IGNORECASE)


# Every keyword of _PHRASE_RE starts with one of these (lower-case); str.find on them is far
# faster than running the case-insensitive regex over the whole text.
_STEMS = (
    "gransk",
    "reviewed",
    "uppdater",
    "ändra",
    "revider",
    "revised",
    "updated",
    "modified",
    "publicer",
    "published",
)


def _has_stem(lowered: str) -> bool:
    return any(stem in lowered for stem in _STEMS)


#: The stems in UTF-8, and "ändra" also with a capital Ä: ``bytes.lower`` changes ASCII
#: letters only.
_STEM_BYTES = (*(stem.encode() for stem in _STEMS), "Ändra".encode())
#: Parts of the stems (each stem holds one of them), for the first scan.
_STEM_PARTS = (b"gransk", b"pdat", b"ndra", b"revi", b"modified", b"publi")


def _text_has_stem(text: str) -> bool:
    """``_has_stem(text.lower())``, without lower-casing a long non-ASCII text character by
    character (Python's slow path; ~8 % of reading a page of the PostgreSQL manual): its
    UTF-8 bytes are lower-cased instead, which finds the same stems (tested)."""
    # İ and the Kelvin sign are the only non-ASCII characters whose lower case holds ASCII
    # letters.
    if text.isascii() or "\u0130" in text or "\u212a" in text:
        return _has_stem(text.lower())
    data = text.encode("utf-8", "surrogatepass").lower()
    # Six scans find every page that may hold a stem ("pdat": updated, uppdater; "revi":
    # reviewed, revider, revised; "publi": published, publicer); most pages hold none.
    if not any(part in data for part in _STEM_PARTS):
        return False
    return any(stem in data for stem in _STEM_BYTES)


def _phrase_matches(text: str) -> list[re.Match[str]]:
    """All _PHRASE_RE matches in ``text``, in order."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a few code points change length when lower-cased
        return list(_PHRASE_RE.finditer(text))
    starts: set[int] = set()
    for stem in _STEMS:
        i = lowered.find(stem)
        while i != -1:
            starts.add(i)
            i = lowered.find(stem, i + 1)
    out = []
    for i in sorted(starts):
        m = _PHRASE_RE.match(text, i)
        if m is not None:
            out.append(m)
    return out


def _phrase_candidates(text: str) -> Iterator[tuple[int, int, datetime.date]]:
    """Yield (rank, position, date) for each phrase keyword closely followed by a date."""
    n = len(text)
    for pm in _phrase_matches(text):
        start, end = pm.span()
        if _NEGATED_BEFORE_RE.search(text, max(0, start - 12), start):
            continue
        gap = _GAP_RE.match(text, end, min(n, end + MAX_GAP))
        gap_end = gap.end() if gap else end
        dm = _DATE_RE.match(text, gap_end)
        if dm is None:
            continue
        d = _date_from_match(dm)
        if d is None:
            continue
        yield _RANKS[pm.lastgroup or "published"], start, d


def find_phrase_date(text: str) -> tuple[datetime.date, str] | None:
    """Search visible page text for a review phrase followed closely by a date.

    Returns ``(date, "text")`` for the best hit -- reviewed over updated over published, and
    among equals the last in the text -- or None.
    """
    if not isinstance(text, str) or not text:
        return None
    try:
        best: tuple[int, int, datetime.date] | None = None
        for cand in _phrase_candidates(text):
            if best is None or cand[:2] > best[:2]:
                best = cand
        return (best[2], DateSource.TEXT) if best else None
    except Exception:  # pragma: no cover - defensive
        return None
