"""Realistic sample ``Report`` objects for tests (renderers, email, CLI).

The main sample models a small audit of a Swedish municipality site: Swedish titles with
åäö, a watched SKL→SKR redirect, a broken link to the Brussels EU office, a page last
reviewed 2018-03-28, a "PDF" that is really an HTML page, a 403 that could not be verified,
and some hostile page content (a ``<script>`` title, a ``javascript:`` target, a CSV
formula in a link text, an RTL override).  Findings are deliberately *not* in report order
so that renderers have to sort them.

Everything is built from plain constants, so tests can refer to them (``SITE``,
``STALE_URL``, ...).  Nothing here needs the crawler or the checks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from checks.models import (
    Check,
    DateSource,
    Finding,
    LinkRef,
    LinkResult,
    Page,
    RedirectHop,
    Report,
    RunInfo,
    Severity,
    Verdict,
)

SITE = "https://www.umea.se"
AS_OF = dt.date(2025, 3, 14)
CET = dt.timezone(dt.timedelta(hours=1))
STARTED_AT = dt.datetime(2025, 3, 14, 2, 0, 5, tzinfo=CET)
FINISHED_AT = dt.datetime(2025, 3, 14, 2, 17, 42, tzinfo=CET)

HOME_URL = "https://www.umea.se/"
POLITIK_URL = "https://www.umea.se/kommunochpolitik/"
EU_URL = "https://www.umea.se/kommunochpolitik/samarbeten/eu-och-internationellt.html"
BYGGLOV_URL = "https://www.umea.se/byggaboochmiljo/bygglov/altan-och-uteplats.html"
TAXOR_URL = "https://www.umea.se/byggaboochmiljo/avgifter-och-taxor.html"
HOSTILE_URL = "https://www.umea.se/uppleva/evenemang/kalender.html"

STALE_URL = BYGGLOV_URL
STALE_REVIEW_DATE = dt.date(2018, 3, 28)

SKL_URL = "https://skl.se/ekonomijuridikstatistik/statistik/kommungruppsindelning.html"
SKR_URL = "https://skr.se/skr/tjanster/kommunerochregioner/kommungruppsindelning.html"
BRUSSELS_URL = "https://www.northsweden.eu/sv/om-oss/kontoret-i-bryssel/"
FAKE_PDF_URL = "https://www.umea.se/download/18.4f1a/1709210000000/Taxa-bygglov-2024.pdf"
FORBIDDEN_URL = "https://www.facebook.com/umeakommun"
JS_URL = "javascript:alert(1)"
MAILTO_URL = "mailto:kontaktcenter@umea.se"
LANTMATERIET_URL = "https://www.lantmateriet.se/sv/kartor/"

HOSTILE_TITLE = "<script>alert(1)</script> Evenemang i Umeå"
#: A link text that Excel would run as a formula without the CSV guard.
FORMULA_TEXT = '=HYPERLINK("https://evil.example/","Klicka här")'
#: A link text with a right-to-left override that would reverse the text after it.
RTL_TEXT = "Läs mer \u202eFDP.exe"

TITLES = {
    HOME_URL: "Startsida – Umeå kommun",
    POLITIK_URL: "Kommun och politik – Umeå kommun",
    EU_URL: "EU och internationellt samarbete – Umeå kommun",
    BYGGLOV_URL: "Bygglov för altan och uteplats – Umeå kommun",
    TAXOR_URL: "Avgifter och taxor för bygglov – Umeå kommun",
    HOSTILE_URL: HOSTILE_TITLE,
}


def _pages() -> tuple[Page, ...]:
    html = "text/html; charset=utf-8"
    return (
        Page(
            HOME_URL,
            200,
            TITLES[HOME_URL],
            HOME_URL,
            html,
            depth=0,
            review_date=dt.date(2025, 1, 9),
            review_date_source="meta:dcterms.modified",
        ),
        Page(
            POLITIK_URL,
            200,
            TITLES[POLITIK_URL],
            POLITIK_URL,
            html,
            depth=1,
            review_date=dt.date(2024, 11, 20),
            review_date_source=DateSource.TEXT,
        ),
        Page(
            EU_URL,
            200,
            TITLES[EU_URL],
            EU_URL,
            html,
            depth=2,
            review_date=dt.date(2024, 6, 3),
            review_date_source="text:Senast uppdaterad",
        ),
        Page(
            BYGGLOV_URL,
            200,
            TITLES[BYGGLOV_URL],
            BYGGLOV_URL,
            html,
            depth=2,
            review_date=STALE_REVIEW_DATE,
            review_date_source=DateSource.TEXT,
        ),
        Page(TAXOR_URL, 200, TITLES[TAXOR_URL], TAXOR_URL, html, depth=2),
        Page(HOSTILE_URL, 200, HOSTILE_TITLE, HOSTILE_URL, html, depth=1),
    )


def _links() -> tuple[LinkResult, ...]:
    return (
        LinkResult(
            SKL_URL,
            Verdict.REDIRECT,
            detail="http_301",
            status=200,
            final_url=SKR_URL,
            redirect_chain=(RedirectHop(SKL_URL, 301),),
            content_type="text/html; charset=utf-8",
            found_on=(
                LinkRef(POLITIK_URL, "Kommungruppsindelning (SKL)"),
                LinkRef(EU_URL, "Sveriges Kommuner och Landsting"),
            ),
            watched=True,
        ),
        LinkResult(
            BRUSSELS_URL,
            Verdict.BROKEN,
            detail="http_404",
            status=404,
            final_url=BRUSSELS_URL,
            content_type="text/html",
            found_on=(LinkRef(EU_URL, "North Sweden European Office i Bryssel"),),
        ),
        LinkResult(
            FAKE_PDF_URL,
            Verdict.OK,
            status=200,
            final_url=FAKE_PDF_URL,
            content_type="text/html; charset=utf-8",
            found_on=(LinkRef(TAXOR_URL, "Taxa för bygglov 2024 (pdf, 212 kB)"),),
            pdf_link=True,
            pdf_magic=False,
            internal=True,
            pdf_problem="not_a_pdf",
        ),
        LinkResult(
            FORBIDDEN_URL,
            Verdict.UNVERIFIED,
            detail="http_403",
            status=403,
            final_url=FORBIDDEN_URL,
            found_on=(LinkRef(HOME_URL, "Umeå kommun på Facebook"),),
        ),
        LinkResult(
            LANTMATERIET_URL,
            Verdict.OK,
            status=200,
            final_url=LANTMATERIET_URL,
            content_type="text/html",
            found_on=(LinkRef(BYGGLOV_URL, "Kartor från Lantmäteriet"),),
        ),
        LinkResult(
            MAILTO_URL,
            Verdict.SKIPPED,
            detail="mailto",
            found_on=(LinkRef(HOME_URL, "Kontaktcenter"),),
        ),
        LinkResult(
            JS_URL,
            Verdict.BROKEN,
            detail="malformed_url",
            found_on=(LinkRef(HOSTILE_URL, FORMULA_TEXT),),
            internal=False,
        ),
        LinkResult(
            "https://www.umea.se/uppleva/evenemang/anmal.html",
            Verdict.UNVERIFIED,
            detail="http_429",
            status=429,
            final_url="https://www.umea.se/uppleva/evenemang/anmal.html",
            content_type="text/html",
            found_on=(LinkRef(HOSTILE_URL, RTL_TEXT),),
            internal=True,
        ),
    )


def _findings() -> tuple[Finding, ...]:
    # Deliberately shuffled: renderers must order them (watched, severity, page).
    # Codes only, as the checks give them (the words come from reports.messages); the
    # one message here stands for a hostile one read back from an old history.
    return (
        Finding(
            Check.MISSING_REVIEW_DATE,
            Severity.WARNING,
            TAXOR_URL,
            detail="",
        ),
        Finding(
            Check.BROKEN_LINK,
            Severity.ERROR,
            EU_URL,
            target=BRUSSELS_URL,
            detail="http_404",
            link_text="North Sweden European Office i Bryssel",
        ),
        Finding(
            Check.UNVERIFIED_LINK,
            Severity.WARNING,
            HOME_URL,
            target=FORBIDDEN_URL,
            detail="http_403",
            link_text="Umeå kommun på Facebook",
        ),
        Finding(
            Check.REDIRECT,
            Severity.ERROR,  # watched targets are raised to error
            POLITIK_URL,
            target=SKL_URL,
            detail="http_301",
            link_text="Kommungruppsindelning (SKL)",
            new_url=SKR_URL,
            watched=True,
        ),
        Finding(
            Check.STALE_PAGE,
            Severity.ERROR,
            STALE_URL,
            detail="2543_days",
        ),
        Finding(
            Check.MISSING_PDF,
            Severity.ERROR,
            TAXOR_URL,
            target=FAKE_PDF_URL,
            detail="not_a_pdf",
            link_text="Taxa för bygglov 2024 (pdf, 212 kB)",
        ),
        Finding(
            Check.MISSING_REVIEW_DATE,
            Severity.WARNING,
            HOSTILE_URL,
        ),
        Finding(
            Check.BROKEN_LINK,
            Severity.ERROR,
            HOSTILE_URL,
            target=JS_URL,
            detail="malformed_url",
            message="<b>not a real link</b>",
            link_text=FORMULA_TEXT,
        ),
        Finding(
            Check.REDIRECT,
            Severity.ERROR,
            EU_URL,
            target=SKL_URL,
            detail="http_301",
            link_text="Sveriges Kommuner och Landsting",
            new_url=SKR_URL,
            watched=True,
        ),
        Finding(
            Check.UNVERIFIED_LINK,
            Severity.INFO,  # not the default severity: here to exercise "info" everywhere
            HOSTILE_URL,
            target="https://www.umea.se/uppleva/evenemang/anmal.html",
            detail="http_429",
            link_text=RTL_TEXT,
        ),
    )


def sample_report(*, complete: bool = True) -> Report:
    """The main realistic sample (10 findings: 6 error, 3 warning, 1 info; 2 watched)."""
    run = RunInfo(
        started_at=STARTED_AT,
        finished_at=FINISHED_AT,
        as_of=AS_OF,
        start_urls=(HOME_URL,),
        scopes=("https://www.umea.se/",),
        complete=complete,
        pages_crawled=6,
        links_checked=8,
        stats={"requests": 37, "retries": 2, "bytes": 1843221, "duration_s": 1057.0},
        site=SITE,
        incomplete_reasons=()
        if complete
        else ("max_pages reached (6)", "timeout on 3 external hosts"),
    )
    return Report(run=run, pages=_pages(), links=_links(), findings=_findings())


def incomplete_report() -> Report:
    """The sample as an incomplete run (max_pages reached, timeouts)."""
    return sample_report(complete=False)


def empty_report() -> Report:
    """A complete run that found nothing at all (no pages even)."""
    run = RunInfo(
        started_at=STARTED_AT,
        finished_at=STARTED_AT,
        as_of=AS_OF,
        start_urls=(HOME_URL,),
        scopes=("https://www.umea.se/",),
        complete=True,
        pages_crawled=0,
        links_checked=0,
        site=SITE,
    )
    return Report(run=run, pages=(), links=(), findings=())


def hostile_report(size: int = 1_000_000) -> Report:
    """The sample plus page content meant to break renderers.

    A ``size``-character title and link text, NUL and other control characters,
    a lone surrogate, pipes, backticks and newlines for Markdown, ``]]>`` for XML.
    """
    base = sample_report()
    huge = "Å" * size
    nasty = "a|b`c\nd\r\ne\x00f\x0bg\ud800h]]>i\u202ej<img src=x onerror=alert(1)>"
    url = "https://www.umea.se/huge.html"
    page = Page(url, 200, huge + nasty, url, "text/html", depth=3)
    findings = (
        Finding(Check.MISSING_REVIEW_DATE, Severity.WARNING, url, message=nasty),
        Finding(
            Check.BROKEN_LINK,
            Severity.ERROR,
            url,
            target="https://www.umea.se/" + "x" * size,
            detail="http_500",
            message=huge,
            link_text=nasty + huge,
        ),
        Finding(
            Check.BROKEN_LINK,
            Severity.ERROR,
            url,
            target=" JavaScript:alert(2)",
            detail="malformed_url",
            link_text="+SUM(1,2)",
        ),
        Finding(
            Check.REDIRECT,
            Severity.WARNING,
            url,
            target="https://www.umea.se/old|page`x`",
            detail="http_308",
            link_text="-1+1",
            message="@SUM(1)",
        ),
    )
    return replace(base, pages=(*base.pages, page), findings=base.findings + findings)


def many_findings_report(n: int = 500) -> Report:
    """The sample plus ``n`` extra broken-link findings on generated pages."""
    base = sample_report()
    pages = list(base.pages)
    findings = list(base.findings)
    for i in range(n):
        url = f"https://www.umea.se/nyheter/{i:04d}-nyhet-om-skolan.html"
        pages.append(Page(url, 200, f"Nyhet {i} om skolan – Umeå kommun", url, depth=2))
        findings.append(
            Finding(
                Check.BROKEN_LINK,
                Severity.ERROR,
                url,
                target=f"https://gammal.example.se/sida-{i}",
                detail="dns",
                message="The domain name does not exist.",
                link_text=f"Gammal länk {i} | med `backticks`",
            )
        )
    return replace(base, pages=tuple(pages), findings=tuple(findings))
