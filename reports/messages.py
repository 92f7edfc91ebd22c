"""Swedish and English strings for editor emails: a small catalog, no gettext files.

``text(lang, key, **values)`` for interface strings, ``verdict(lang, finding, ...)`` for the
plain-words reason of one finding, ``plural`` and ``format_day`` for counts and dates.
Verdict lookup: (check, detail) exactly, then (check, "http_4xx"/"http_5xx"), then
(check, "http"), then (check, ""). ``{status}`` is the HTTP status from an ``http_NNN`` detail.
"""

from __future__ import annotations

import datetime as dt
import http
import re
from collections.abc import Mapping

from checks.models import Check, Finding, Severity, http_status, stale_age

LANGUAGES = ("sv", "en")
LOCALES = {"sv": "sv_SE", "en": "en_GB"}

_HTTP = re.compile(r"http_(\d{3})")

# Plural forms: (one, other).
PLURALS: Mapping[str, Mapping[str, tuple[str, str]]] = {
    "sv": {
        "new": ("{n} nytt fel", "{n} nya fel"),
        "fixed": ("{n} åtgärdat", "{n} åtgärdade"),
        "open": ("{n} kvarstående fel", "{n} kvarstående fel"),
        "unchecked_subject": ("{n} fel ej kontrollerat", "{n} fel ej kontrollerade"),
        "days": ("{n} dag", "{n} dagar"),
        "more": ("… och {n} till", "… och {n} till"),
        "times": ("{n} gång", "{n} gånger"),
        "pages": ("{n} sida", "{n} sidor"),
        "unchecked": (
            "{n} tidigare fel kunde inte kontrolleras den här gången.",
            "{n} tidigare fel kunde inte kontrolleras den här gången.",
        ),
    },
    "en": {
        "new": ("{n} new problem", "{n} new problems"),
        "fixed": ("{n} fixed", "{n} fixed"),
        "open": ("{n} open problem", "{n} open problems"),
        "unchecked_subject": ("{n} problem not checked", "{n} problems not checked"),
        "days": ("{n} day", "{n} days"),
        "more": ("… and {n} more", "… and {n} more"),
        "times": ("{n} time", "{n} times"),
        "pages": ("{n} page", "{n} pages"),
        "unchecked": (
            "{n} earlier problem could not be checked this time.",
            "{n} earlier problems could not be checked this time.",
        ),
    },
}

TEXTS: Mapping[str, Mapping[str, str]] = {
    "sv": {
        "week": "v.{week}",
        "all_clear_subject": "Inga fel",
        "nothing_new_subject": "Inga nya fel",
        "incomplete_subject": "ofullständig kontroll",
        "greeting": "Hej {name}!",
        "greeting_anon": "Hej!",
        "intro": (
            "Det här är veckans kontroll av dina sidor på {site} ({date}). "
            "Här ser du vad som är nytt, vad som fortfarande behöver åtgärdas och vad som "
            "har blivit åtgärdat sedan förra veckan."
        ),
        "all_clear": "Inga fel hittades på dina sidor den här veckan. Bra jobbat!",
        "incomplete": (
            "Kontrollen blev inte klar ({reasons}). Därför markeras inget som åtgärdat den "
            "här gången."
        ),
        "section_new": "Nya fel",
        "section_open": "Kvarstår",
        "section_fixed": "Åtgärdat sedan förra veckan",
        "page": "Sida",
        "link_text": "Länktext",
        "target": "Länken går till",
        "new_address": "Ny adress",
        "since": "Sedan {date} ({days})",
        "new_since": "Upptäckt {date}",
        "fixed_since": "Fanns från {date}",
        "review": "Senast granskad {date} ({days} sedan)",
        "edit": "Redigera sidan",
        "full_report": "Hela rapporten",
        "full_report_text": "Hela rapporten finns här: {url}",
        "error": "Fel",
        "warning": "Varning",
        "info": "Info",
        "footer": (
            "Det här meddelandet skickas automatiskt av sitewatch en gång i veckan. "
            "Du får det eftersom du är ansvarig för sidorna ovan. Svara inte på det här "
            "meddelandet."
        ),
        "untitled": "(sida utan titel)",
        "unknown_reason": "Okänt fel",
        "linked_from": "Länkas {times} från {pages}",
        "also_on": "Även på",
    },
    "en": {
        "week": "week {week}",
        "all_clear_subject": "All clear",
        "nothing_new_subject": "No new problems",
        "incomplete_subject": "incomplete check",
        "greeting": "Hello {name},",
        "greeting_anon": "Hello,",
        "intro": (
            "This is the weekly check of your pages on {site} ({date}): what is new, what "
            "still needs fixing and what has been fixed since last week."
        ),
        "all_clear": "No problems were found on your pages this week. Well done!",
        "incomplete": (
            "The check did not finish ({reasons}). Nothing is marked as fixed this time."
        ),
        "section_new": "New problems",
        "section_open": "Still open",
        "section_fixed": "Fixed since last week",
        "page": "Page",
        "link_text": "Link text",
        "target": "Link goes to",
        "new_address": "New address",
        "since": "Since {date} ({days})",
        "new_since": "Found {date}",
        "fixed_since": "Open since {date}",
        "review": "Last reviewed {date} ({days} ago)",
        "edit": "Edit the page",
        "full_report": "Full report",
        "full_report_text": "The full report is here: {url}",
        "error": "Error",
        "warning": "Warning",
        "info": "Info",
        "footer": (
            "This message is sent automatically by sitewatch once a week because you are "
            "responsible for the pages above. Please do not reply to it."
        ),
        "untitled": "(untitled page)",
        "unknown_reason": "Unknown problem",
        "linked_from": "Linked {times} from {pages}",
        "also_on": "Also on",
    },
}

# (check, detail) -> text. Details are those of checks.models (BROKEN_DETAILS, PDF_DETAILS).
VERDICTS: Mapping[str, Mapping[tuple[str, str], str]] = {
    "sv": {
        ("broken_link", "http_404"): "Sidan som länken pekar på finns inte (404)",
        ("broken_link", "http_410"): "Sidan som länken pekar på har tagits bort (410)",
        ("broken_link", "http_429"): "Servern tar inte emot fler anrop just nu (429)",
        ("broken_link", "http_4xx"): "Sidan som länken pekar på går inte att öppna ({status})",
        ("broken_link", "http_5xx"): "Servern som länken pekar på har problem ({status})",
        ("broken_link", "http"): "Länken ger felkod {status}",
        ("broken_link", "dns"): "Webbadressens domän finns inte (DNS)",
        ("broken_link", "refused"): "Servern som länken pekar på vägrar ta emot anslutningar",
        ("broken_link", "timeout"): "Servern som länken pekar på svarar inte i tid",
        ("broken_link", "tls"): "Webbplatsens säkerhetscertifikat är ogiltigt",
        ("broken_link", "connection"): "Anslutningen till servern bröts",
        ("broken_link", "redirect_loop"): "Länken skickar runt besökaren i en evig loop",
        ("broken_link", "too_many_redirects"): "Länken skickas vidare för många gånger",
        ("broken_link", "soft_404"): (
            "Sidan som länken pekar på säger att den inte finns, fast servern svarar OK"
        ),
        ("broken_link", "missing_fragment"): (
            "Stället på sidan som länken hoppar till (#ankare) finns inte längre"
        ),
        ("broken_link", "malformed_url"): "Länkens adress är felskriven",
        ("broken_link", "redirect_to_home"): (
            "Länken skickas vidare till webbplatsens startsida – sidan har flyttats eller "
            "tagits bort"
        ),
        ("broken_link", ""): "Länken fungerar inte",
        ("redirect", ""): (
            "Länken skickas vidare till en ny adress – byt till den nya adressen i länken"
        ),
        ("missing_pdf", "http_404"): "PDF-filen finns inte (404)",
        ("missing_pdf", "http_410"): "PDF-filen har tagits bort (410)",
        ("missing_pdf", "http"): "PDF-filen går inte att öppna ({status})",
        ("missing_pdf", "not_a_pdf"): "Länken ska gå till en PDF men ger något annat",
        ("missing_pdf", "redirected_to_html"): (
            "PDF-länken leder till en webbsida i stället för till filen"
        ),
        ("missing_pdf", ""): "PDF-filen saknas",
        ("unverified_link", "http"): (
            "Länken kunde inte kontrolleras automatiskt – webbplatsen stoppar robotar "
            "({status}). Kontrollera den själv."
        ),
        ("unverified_link", ""): (
            "Länken kunde inte kontrolleras automatiskt. Kontrollera den själv."
        ),
        ("stale_page", ""): "Sidan behöver granskas – den har inte granskats på länge",
        ("missing_review_date", ""): "Sidan saknar datum för senaste granskning",
        ("unlinked_page", "http"): (
            "Sidan finns i webbplatskartan (sitemap) men går inte att öppna ({status})"
        ),
        ("unlinked_page", ""): (
            "Sidan finns i webbplatskartan (sitemap) men ingen sida i avsnittet länkar till den"
        ),
    },
    "en": {
        ("broken_link", "http_404"): "The page the link points to does not exist (404)",
        ("broken_link", "http_410"): "The page the link points to has been removed (410)",
        ("broken_link", "http_429"): "The server refuses more requests right now (429)",
        ("broken_link", "http_4xx"): "The page the link points to cannot be opened ({status})",
        ("broken_link", "http_5xx"): "The server the link points to has problems ({status})",
        ("broken_link", "http"): "The link returns error code {status}",
        ("broken_link", "dns"): "The link's domain does not exist (DNS)",
        ("broken_link", "refused"): "The server the link points to refuses connections",
        ("broken_link", "timeout"): "The server the link points to does not answer in time",
        ("broken_link", "tls"): "The site's security certificate is invalid",
        ("broken_link", "connection"): "The connection to the server was broken",
        ("broken_link", "redirect_loop"): "The link sends visitors round in an endless loop",
        ("broken_link", "too_many_redirects"): "The link is forwarded too many times",
        ("broken_link", "soft_404"): (
            "The page the link points to says it does not exist, although the server says OK"
        ),
        ("broken_link", "missing_fragment"): (
            "The place on the page the link jumps to (#anchor) no longer exists"
        ),
        ("broken_link", "malformed_url"): "The link's address is mistyped",
        ("broken_link", "redirect_to_home"): (
            "The link is forwarded to the site's front page – the page has moved or is gone"
        ),
        ("broken_link", ""): "The link does not work",
        ("redirect", ""): (
            "The link is forwarded to a new address – change the link to the new address"
        ),
        ("missing_pdf", "http_404"): "The PDF file does not exist (404)",
        ("missing_pdf", "http_410"): "The PDF file has been removed (410)",
        ("missing_pdf", "http"): "The PDF file cannot be opened ({status})",
        ("missing_pdf", "not_a_pdf"): "The link should lead to a PDF but gives something else",
        ("missing_pdf", "redirected_to_html"): (
            "The PDF link leads to a web page instead of the file"
        ),
        ("missing_pdf", ""): "The PDF file is missing",
        ("unverified_link", "http"): (
            "The link could not be checked automatically – the site blocks robots "
            "({status}). Please check it yourself."
        ),
        ("unverified_link", ""): "The link could not be checked automatically. Please check it.",
        ("stale_page", ""): "The page needs a review – it has not been reviewed for a long time",
        ("missing_review_date", ""): "The page has no date of its last review",
        ("unlinked_page", "http"): (
            "The page is in the sitemap, but it cannot be opened ({status})"
        ),
        ("unlinked_page", ""): (
            "The page is in the sitemap, but no page of the section links to it"
        ),
    },
}

# (check, detail) -> the one-sentence ``message`` of a finding in report.json, CSV, JUnit,
# Markdown and HTML (the checks give codes only). Same lookup as VERDICTS; values:
# {status} (from http_NNN), {days} (from a stale_page's NNN_days), {detail}, {new_url}.
MESSAGES: Mapping[str, Mapping[tuple[str, str], str]] = {
    "sv": {
        ("missing_review_date", ""): "Inget granskningsdatum hittades på sidan.",
        ("stale_page", ""): "Senast granskad för {days} dagar sedan; det är över gränsen.",
        ("broken_link", "http"): "Trasig länk (servern svarade HTTP {status}).",
        ("broken_link", "dns"): "Trasig länk (värdnamnet finns inte).",
        ("broken_link", "refused"): "Trasig länk (servern vägrade ta emot anslutningen).",
        ("broken_link", "timeout"): "Trasig länk (servern svarade inte i tid).",
        ("broken_link", "tls"): (
            "Trasig länk (den säkra anslutningen misslyckades: certifikat- eller TLS-fel)."
        ),
        ("broken_link", "connection"): "Trasig länk (anslutningen misslyckades).",
        ("broken_link", "redirect_loop"): "Trasig länk (länken skickas vidare i en loop).",
        ("broken_link", "too_many_redirects"): (
            "Trasig länk (länken skickas vidare för många gånger)."
        ),
        ("broken_link", "soft_404"): "Trasig länk (sidan säger att den inte finns).",
        ("broken_link", "missing_fragment"): (
            "Trasig länk (#ankaret finns inte på sidan som länken går till)."
        ),
        ("broken_link", "malformed_url"): "Trasig länk (adressen är felskriven).",
        ("broken_link", "redirect_to_home"): (
            "Trasig länk (länken leder nu till webbplatsens startsida; sidan har flyttats)."
        ),
        ("broken_link", "*"): "Trasig länk ({detail}).",
        ("redirect", ""): "Länken har flyttats permanent; byt till {new_url}",
        ("redirect", "meta_refresh"): (
            "Länken leder till en sida som skickar vidare till {new_url}"
        ),
        ("missing_pdf", "http"): "PDF saknas: PDF-filen är borta (HTTP {status}).",
        ("missing_pdf", "not_a_pdf"): (
            "PDF saknas: länken utlovar en PDF men servern skickar något annat."
        ),
        ("missing_pdf", "redirected_to_html"): (
            "PDF saknas: PDF-länken leder nu till en webbsida i stället för en PDF."
        ),
        ("missing_pdf", "*"): "PDF saknas ({detail}).",
        ("unverified_link", "*"): (
            "Länken kunde inte kontrolleras: webbplatsen stoppade kontrollen ({detail})."
        ),
        ("unverified_link", ""): "Länken kunde inte kontrolleras: webbplatsen stoppade kontrollen.",
        ("unlinked_page", ""): (
            "Sidan finns i webbplatskartan, men ingen sida i avsnittet länkar till den."
        ),
        ("unlinked_page", "http"): (
            "Sidan finns i webbplatskartan, men ingen sida i avsnittet länkar till den "
            "(HTTP {status})."
        ),
        ("unlinked_page", "*"): (
            "Sidan finns i webbplatskartan, men ingen sida i avsnittet länkar till den ({detail})."
        ),
    },
    "en": {
        ("missing_review_date", ""): "No review date found on the page.",
        ("stale_page", ""): "Last reviewed {days} days ago; that is over the limit.",
        ("broken_link", "http"): "Broken link (the server answered HTTP {status}).",
        ("broken_link", "dns"): "Broken link (the host name does not exist).",
        ("broken_link", "refused"): "Broken link (the server refused the connection).",
        ("broken_link", "timeout"): "Broken link (the server did not answer in time).",
        ("broken_link", "tls"): (
            "Broken link (the secure connection failed (certificate or TLS error))."
        ),
        ("broken_link", "connection"): "Broken link (the connection failed).",
        ("broken_link", "redirect_loop"): "Broken link (the link redirects in a loop).",
        ("broken_link", "too_many_redirects"): ("Broken link (the link redirects too many times)."),
        ("broken_link", "soft_404"): "Broken link (the page says it cannot be found).",
        ("broken_link", "missing_fragment"): (
            "Broken link (the #anchor does not exist on the target page)."
        ),
        ("broken_link", "malformed_url"): "Broken link (the address is malformed).",
        ("broken_link", "redirect_to_home"): (
            "Broken link (the link now leads to the site's front page; the page has moved)."
        ),
        ("broken_link", "*"): "Broken link ({detail}).",
        ("redirect", ""): "The link has moved permanently; update it to {new_url}",
        ("redirect", "meta_refresh"): "The link leads to a page that refreshes to {new_url}",
        ("missing_pdf", "http"): "Missing PDF: the PDF is gone (HTTP {status}).",
        ("missing_pdf", "not_a_pdf"): (
            "Missing PDF: the link promises a PDF but the server sends something else."
        ),
        ("missing_pdf", "redirected_to_html"): (
            "Missing PDF: the PDF link now leads to a web page instead of a PDF."
        ),
        ("missing_pdf", "*"): "Missing PDF ({detail}).",
        ("unverified_link", "*"): (
            "Could not verify the link: the site refused the check ({detail})."
        ),
        ("unverified_link", ""): "Could not verify the link: the site refused the check.",
        ("unlinked_page", ""): (
            "The page is listed in the sitemap, but no page of the section links to it."
        ),
        ("unlinked_page", "http"): (
            "The page is listed in the sitemap, but no page of the section links to it "
            "(HTTP {status})."
        ),
        ("unlinked_page", "*"): (
            "The page is listed in the sitemap, but no page of the section links to it ({detail})."
        ),
    },
}

#: Added to transient failures that are still warnings (see checks.changes.apply_flakiness).
TRANSIENT_NOTE = {
    "sv": "Det kan vara tillfälligt – vi kontrollerar igen innan det räknas som fel.",
    "en": "This may be temporary – we check again before counting it as an error.",
}


#: English sentences for detail codes, shown beside a finding in report.html (the watched
#: links' cards); :func:`explain_detail`.
DETAIL_TEXTS: dict[str, str] = {
    "dns": "The domain name does not exist (DNS lookup failed).",
    "refused": "The server refused the connection.",
    "timeout": "The server did not answer in time.",
    "tls": "The secure connection failed (HTTPS certificate problem).",
    "connection": "The connection to the server failed.",
    "redirect_loop": "The link redirects in a loop.",
    "too_many_redirects": "The link goes through too many redirects.",
    "soft_404": "The page says it does not exist, although the server reports success.",
    "missing_fragment": "The page exists, but the anchor (#…) the link points to is missing.",
    "malformed_url": "The address is malformed.",
    "redirect_to_home": (
        "The link is redirected to the site's front page: the page it pointed to has moved "
        "or is gone."
    ),
    "not_a_pdf": "The server does not send a PDF file.",
    "redirected_to_html": "The PDF link redirects to an ordinary web page.",
}


def _http_phrase(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "unexpected answer"


def explain_detail(detail: str, check: Check | None = None) -> str:
    """A plain-English sentence for a detail code ("" when there is nothing to say)."""
    if detail in DETAIL_TEXTS:
        return DETAIL_TEXTS[detail]
    if (code := http_status(detail)) is not None:
        if check is Check.REDIRECT:
            return f"The address has moved permanently (HTTP {code})."
        if check is Check.UNVERIFIED_LINK:
            return f"The website refused our automatic check ({code} {_http_phrase(code)})."
        if check is Check.MISSING_PDF:
            return f"The PDF is gone: the server answered {code} ({_http_phrase(code)})."
        return f"The server answered {code} ({_http_phrase(code)})."
    if check is Check.STALE_PAGE and (days := stale_age(detail)) is not None:
        return f"Last reviewed {days} days ago."
    return ""


def _lang(lang: str) -> str:
    if lang not in LANGUAGES:
        raise ValueError(f"unsupported language {lang!r}; use one of {LANGUAGES}")
    return lang


def text(lang: str, key: str, **values: object) -> str:
    s = TEXTS[_lang(lang)][key]
    return s.format(**values) if values else s


def plural(lang: str, key: str, n: int) -> str:
    one, other = PLURALS[_lang(lang)][key]
    return (one if n == 1 else other).format(n=n)


def format_day(lang: str, day: dt.date | dt.datetime, fmt: str = "long") -> str:
    """A date in the language's own style ("28 november 2024" / "28 November 2024")."""
    from babel.dates import format_date  # emails only: the audit's reports never load Babel

    if isinstance(day, dt.datetime):
        day = day.date()
    return format_date(day, format=fmt, locale=LOCALES[_lang(lang)])


def severity_label(lang: str, severity: Severity) -> str:
    return text(lang, severity.value)


def verdict(lang: str, finding: Finding, *, transient: bool = False) -> str:
    """The plain-words reason for one finding, for an editor."""
    table = VERDICTS[_lang(lang)]
    check, detail = finding.check.value, finding.detail
    m = _HTTP.fullmatch(detail)
    status = m.group(1) if m else ""
    candidates = [(check, detail)]
    if status:
        candidates += [(check, f"http_{status[0]}xx"), (check, "http")]
    candidates.append((check, ""))
    for c in candidates:
        if c in table:
            out = table[c].format(status=status)
            break
    else:
        out = finding.message or text(lang, "unknown_reason")
    if transient and finding.severity is Severity.WARNING:
        out = f"{out}. {TRANSIENT_NOTE[lang]}"
    return out


def _candidates(check: str, detail: str, status: str) -> list[tuple[str, str]]:
    """Catalog keys to try, most specific first: the exact detail, ``http_4xx``,
    ``http``, any other detail (``*``), then the check alone."""
    out = [(check, detail)]
    if status:
        out += [(check, f"http_{status[0]}xx"), (check, "http")]
    if detail:
        out.append((check, "*"))
    out.append((check, ""))
    return out


def catalog_message(lang: str, finding: Finding) -> str | None:
    """The catalog's sentence for a finding's (check, detail), or None when it has none."""
    table = MESSAGES[_lang(lang)]
    status = http_status(finding.detail)
    code = "" if status is None else str(status)
    days = stale_age(finding.detail) if finding.check is Check.STALE_PAGE else None
    for key in _candidates(finding.check.value, finding.detail, code):
        if key in table:
            return table[key].format(
                status=code,
                days="?" if days is None else days,
                detail=finding.detail,
                new_url=finding.new_url or finding.target,
            )
    return None


def finding_message(finding: Finding, lang: str = "en") -> str:
    """The ``message`` of a finding in the reports: the finding's own (a finding read from
    an old history or built by hand may carry one), else the catalog's sentence in ``lang``
    (English for the machine formats: reports have no language of their own)."""
    return finding.message or catalog_message(lang, finding) or finding.detail


def covered_checks() -> set[Check]:
    """Checks with a generic phrasing in every language (a test keeps this complete)."""
    return {Check(c) for c in Check if all((c.value, "") in VERDICTS[lang] for lang in LANGUAGES)}
