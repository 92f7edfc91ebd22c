"""Swedish and English strings of the editors' workspace and of the email's workspace parts
(per-page headings, action links, the trend line, the "left out" line).

Kept apart from ``reports.messages`` (the findings' own wording, reused from there) so the
two catalogs grow independently; the same ``text``/``plural`` style.
"""

from __future__ import annotations

from collections.abc import Mapping

from reports.messages import LANGUAGES

PLURALS: Mapping[str, Mapping[str, tuple[str, str]]] = {
    "sv": {
        "problems": ("{n} problem", "{n} problem"),
        "weeks": ("{n} vecka", "{n} veckor"),
        "fewer": ("{n} färre än förra veckan", "{n} färre än förra veckan"),
        "more_than": ("{n} fler än förra veckan", "{n} fler än förra veckan"),
        "open_total": ("{n} öppet problem", "{n} öppna problem"),
        "left_out": (
            "{n} problem som du har kvitterat, avfärdat eller pausat visas inte här.",
            "{n} problem som du har kvitterat, avfärdat eller pausat visas inte här.",
        ),
    },
    "en": {
        "problems": ("{n} problem", "{n} problems"),
        "weeks": ("{n} week", "{n} weeks"),
        "fewer": ("{n} fewer than last week", "{n} fewer than last week"),
        "more_than": ("{n} more than last week", "{n} more than last week"),
        "open_total": ("{n} open problem", "{n} open problems"),
        "left_out": (
            "{n} problem you acknowledged, dismissed or snoozed is not listed here.",
            "{n} problems you acknowledged, dismissed or snoozed are not listed here.",
        ),
    },
}

TEXTS: Mapping[str, Mapping[str, str]] = {
    "sv": {
        "title": "Arbetsyta",
        "owner_heading": "Dina sidor: {name}",
        "owner_intro": (
            "Här är de problem som är öppna på dina sidor. Du kan kvittera ett problem "
            "(påminn mig mer sällan), markera det som inget problem (med en kort motivering) "
            "eller pausa det till ett datum. Allt kan ångras."
        ),
        "nothing_open": "Inga öppna problem på dina sidor. Bra jobbat!",
        "since": "Sedan {date}",
        "link_text": "Länktext",
        "target": "Länken går till",
        "edit": "Redigera sidan",
        "acknowledge": "Kvittera",
        "acknowledge_help": "Jag vet – visa det inte i mejlet på {weeks}.",
        "dismiss": "Inget problem",
        "dismiss_help": "Felaktigt larm för den här länken. Motivering krävs.",
        "reason": "Motivering",
        "snooze": "Pausa till",
        "snooze_help": "Visa det inte i mejlet förrän detta datum.",
        "undo": "Ångra",
        "state_acknowledge": "Kvitterat av {by} {at}, till {until}",
        "state_dismiss": "Inget problem enligt {by} {at}: ”{reason}”",
        "state_snooze": "Pausat av {by} {at}, till {until}",
        "hidden_note": "Visas inte i veckans mejl.",
        "done_acknowledge": "Kvitterat.",
        "done_dismiss": "Markerat som inget problem.",
        "done_snooze": "Pausat.",
        "done_undo": "Ångrat: problemet visas igen.",
        "err_reason_required": "Skriv en kort motivering.",
        "err_reason_too_long": "Motiveringen är för lång (högst 500 tecken).",
        "err_until_required": "Välj ett datum.",
        "err_until_past": "Datumet måste ligga i framtiden.",
        "err_until_too_far": "Datumet får ligga högst ett år fram.",
        "err_gone": "Problemet är inte längre öppet.",
        "open_in_workspace": "Öppna i arbetsytan",
        "act_links": "Kvittera, avfärda eller pausa",
        "trend": "{total} ({diff})",
        "trend_same": "{total}, lika många som förra veckan",
        "trend_first": "{total}",
        "workspace_link": "Alla dina problem i arbetsytan",
        "untitled": "(sida utan titel)",
    },
    "en": {
        "title": "Workspace",
        "owner_heading": "Your pages: {name}",
        "owner_intro": (
            "These are the open problems on your pages. You can acknowledge a problem "
            "(remind me less), mark it as not a problem (with a short reason) or snooze it "
            "until a date. Everything can be undone."
        ),
        "nothing_open": "No open problems on your pages. Well done!",
        "since": "Since {date}",
        "link_text": "Link text",
        "target": "Link goes to",
        "edit": "Edit the page",
        "acknowledge": "Acknowledge",
        "acknowledge_help": "I know – leave it out of the email for {weeks}.",
        "dismiss": "Not a problem",
        "dismiss_help": "A false alarm for this link. A reason is required.",
        "reason": "Reason",
        "snooze": "Snooze until",
        "snooze_help": "Leave it out of the email until this date.",
        "undo": "Undo",
        "state_acknowledge": "Acknowledged by {by} {at}, until {until}",
        "state_dismiss": "Not a problem according to {by} {at}: “{reason}”",
        "state_snooze": "Snoozed by {by} {at}, until {until}",
        "hidden_note": "Left out of the weekly email.",
        "done_acknowledge": "Acknowledged.",
        "done_dismiss": "Marked as not a problem.",
        "done_snooze": "Snoozed.",
        "done_undo": "Undone: the problem is listed again.",
        "err_reason_required": "Please give a short reason.",
        "err_reason_too_long": "The reason is too long (at most 500 characters).",
        "err_until_required": "Please choose a date.",
        "err_until_past": "The date must be in the future.",
        "err_until_too_far": "The date may be at most a year ahead.",
        "err_gone": "The problem is no longer open.",
        "open_in_workspace": "Open in the workspace",
        "act_links": "Acknowledge, dismiss or snooze",
        "trend": "{total} ({diff})",
        "trend_same": "{total}, as many as last week",
        "trend_first": "{total}",
        "workspace_link": "All your problems in the workspace",
        "untitled": "(untitled page)",
    },
}


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


def trend_line(lang: str, now_open: int, last_week: int | None) -> str:
    """ "12 open problems, 3 fewer than last week" (no comparison on the first run)."""
    total = plural(lang, "open_total", now_open)
    if last_week is None:
        return text(lang, "trend_first", total=total)
    diff = now_open - last_week
    if diff == 0:
        return text(lang, "trend_same", total=total)
    word = plural(lang, "fewer" if diff < 0 else "more_than", abs(diff))
    return f"{total}, {word}"
