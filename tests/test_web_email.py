"""The weekly email's workspace parts: problems by page, one-click signed links, the trend
line, decisions leaving problems out (counted), lapsing when the verdict changes; sv and
en; under 100 KB. Real SQLite history, real message building (``messages_for_run``)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

from checks.suppress import Kind
from crawler.app.email_setup import setup_from_config
from crawler.history.store import Store
from crawler.web.links import workspace_links
from crawler.web.tokens import Signing
from reports.delivery import messages_for_run
from reports.email_workspace import finding_id
from reports.web_messages import trend_line
from tests.workspace_data import SECRET, SITE, WEEK1, WEEK2, config, findings, record

ENV = {"SITEWATCH_WEB_SECRET": SECRET}


def plain(msg: EmailMessage) -> str:
    body = msg.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def html(msg: EmailMessage) -> str:
    body = msg.get_body(("html",))
    assert body is not None
    return str(body.get_content())


def messages(tmp: Path, run: int, now: dt.datetime) -> dict[str, EmailMessage]:
    cfg = config(tmp)
    setup = replace(setup_from_config(cfg), workspace=workspace_links(cfg, ENV))
    with Store.for_config(cfg) as store:
        return messages_for_run(store, run, setup, now=now)


def test_email_groups_by_page_links_into_the_workspace_and_shows_the_trend(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path)
    record(cfg, WEEK1, findings())
    run2 = record(cfg, WEEK2, findings()[:3])  # the hostile page's problem is fixed
    msgs = messages(tmp_path, run2, WEEK2)
    karin = plain(msgs["karin@umea.example"])
    assert "-- Harstad, Norge – 2 problem" in karin
    assert "2 öppna problem, 1 färre än förra veckan" in karin
    fid = finding_id(findings()[1].key)
    m = re.search(rf"http://127\.0\.0\.1:8150/o/([A-Za-z0-9._-]+)/f/{fid}", karin)
    assert m, karin
    assert m.group(0) in html(msgs["karin@umea.example"])
    who = Signing(SECRET).read_owner_token(m.group(1), 28)
    assert who is not None and (who.owner, who.site) == ("Karin Nyström", SITE)
    emma = plain(msgs["emma@umea.example"])
    assert "1 open problem, as many as last week" in emma
    assert "-- In English – 1 problem" in emma
    for m in msgs.values():
        assert len(html(m).encode()) < 100_000


def test_decisions_leave_problems_out_until_the_verdict_changes(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    run1 = record(cfg, WEEK1, findings())
    with Store.for_config(cfg) as store:
        store.record_decision(
            SITE, findings()[1], Kind.DISMISS, by="Karin Nyström", reason="Blockerar robotar"
        )
        store.record_decision(
            SITE,
            findings()[2],
            Kind.SNOOZE,
            by="Emma Lind",
            until=WEEK1 + dt.timedelta(days=3),
        )
    msgs = messages(tmp_path, run1, WEEK1 + dt.timedelta(hours=1))
    karin = plain(msgs["karin@umea.example"])
    assert "partner.example.org/blocked" not in karin
    assert "1 problem som du har kvitterat, avfärdat eller pausat visas inte här." in karin
    assert "emma@umea.example" not in msgs  # her only problem is snoozed: no email
    # The snooze ends: Emma's problem is back.
    later = messages(tmp_path, run1, WEEK1 + dt.timedelta(days=4))
    assert "has not been reviewed" in plain(later["emma@umea.example"])
    # Week 2: the blocked link answers 404: the dismissal no longer applies.
    run2 = record(cfg, WEEK2, findings(ext_detail="http_404"))
    again = plain(messages(tmp_path, run2, WEEK2)["karin@umea.example"])
    assert "partner.example.org/blocked" in again
    assert "visas inte här" not in again


def test_trend_line_words() -> None:
    assert trend_line("sv", 12, 15) == "12 öppna problem, 3 färre än förra veckan"
    assert trend_line("en", 12, 10) == "12 open problems, 2 more than last week"
    assert trend_line("en", 1, None) == "1 open problem"
