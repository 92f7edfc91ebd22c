"""A small history for the workspace's tests: two owners, a fallback, a few runs recorded
through the real ``Store`` (SQLite), one hostile page title (from the hostile fixtures)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

from checks.models import Check, Finding, Page, Report, RunInfo, Severity
from crawler.config import Config, load_config
from crawler.history.store import Store

SITE = "umea.se/internationellt"
BASE = "https://www.umea.se/internationellt/"
SECRET = "s" * 40
HOSTILE_TITLE = '</title><script>window.__pwned=1;alert(1)</script><img src=x onerror="alert(2)">'
HOSTILE_TEXT = '"><img src=x onerror=alert(1)> <svg onload=alert(1)>\u202eFDP.exe'

HARSTAD = BASE + "harstad.html"
ENGLISH = BASE + "in-english.html"
EVIL = BASE + "evil.html"
EXT_403 = "https://partner.example.org/blocked"
EXT_404 = BASE + "harstad-besok-2019.html"


def config(tmp: Path, **web: object) -> Config:
    return load_config(
        None,
        {
            "site": {"name": SITE, "start_urls": [BASE]},
            "history": {"db": str(tmp / "h.db")},
            "report": {"out_dir": str(tmp / "out")},
            "email": {"fallback_to": "webb@umea.example", "outbox": str(tmp / "outbox")},
            "web": {"base_url": "http://127.0.0.1:8150/", **web},
            "owners": [
                {
                    "match": [ENGLISH],
                    "name": "Emma Lind",
                    "emails": ["emma@umea.example"],
                    "language": "en",
                },
                {
                    "match": [BASE],
                    "name": "Karin Nyström",
                    "emails": ["karin@umea.example"],
                    "edit_url": "https://cms.umea.example/edit?url={url}",
                },
            ],
        },
    )


def pages() -> tuple[Page, ...]:
    return (
        Page(BASE, 200, "Internationellt arbete"),
        Page(HARSTAD, 200, "Harstad, Norge"),
        Page(ENGLISH, 200, "In English"),
        Page(EVIL, 200, HOSTILE_TITLE),
    )


def findings(ext_detail: str = "http_403") -> tuple[Finding, ...]:
    return (
        Finding(Check.BROKEN_LINK, Severity.ERROR, HARSTAD, EXT_404, "http_404", link_text="Besök"),
        Finding(
            Check.BROKEN_LINK,
            Severity.ERROR,
            HARSTAD,
            EXT_403,
            ext_detail,
            link_text="Partnern",
        ),
        Finding(Check.STALE_PAGE, Severity.ERROR, ENGLISH, detail="2082_days"),
        Finding(
            Check.BROKEN_LINK,
            Severity.ERROR,
            EVIL,
            BASE + "gone.html",
            "http_404",
            link_text=HOSTILE_TEXT,
        ),
    )


def report(started: dt.datetime, found: tuple[Finding, ...]) -> Report:
    info = RunInfo(
        started_at=started,
        finished_at=started + dt.timedelta(minutes=1),
        as_of=started.date(),
        start_urls=(BASE,),
        scopes=(BASE,),
        complete=True,
        pages_crawled=4,
        links_checked=10,
        site=SITE,
    )
    return Report(run=info, pages=pages(), links=(), findings=found)


def record(cfg: Config, started: dt.datetime, found: tuple[Finding, ...]) -> int:
    with Store.for_config(cfg) as store:
        rid = store.begin_run(SITE, started, (BASE,), (BASE,))
        store.finish_run(rid, replace(report(started, found)))
        return rid


WEEK1 = dt.datetime(2026, 11, 23, 7, 0, tzinfo=dt.UTC)
WEEK2 = WEEK1 + dt.timedelta(weeks=1)
