"""A permanently moved link: the finding carries the new address, the history keeps it and
the editor's email shows it ("Ny adress: ..." / "New address: ...")."""

from __future__ import annotations

import datetime as dt
import sqlite3
from email.message import EmailMessage
from pathlib import Path

from checks.changes import FindingState, compute_changes
from checks.evaluate import link_findings
from checks.models import (
    Check,
    Finding,
    LinkRef,
    LinkResult,
    RedirectHop,
    Report,
    RunInfo,
    Severity,
    Verdict,
)
from checks.owners import Owner
from checks.policy import Policy
from crawler.history import Store
from crawler.history.legacy import MIGRATIONS
from crawler.history.migrate import HEAD
from reports.email_build import ReportMeta, build_message

PAGE = "https://www.umea.se/internationellt/eu"
OLD = "https://skl.se/eu/"
NEW = "https://skr.se/eu/"
T0 = dt.datetime(2024, 11, 18, 6, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(days=7)
ANNA = Owner("Anna", ("anna@umea.se",), "sv", "", ("https://www.umea.se/",))
BEN = Owner("Ben", ("ben@umea.se",), "en", "", ("https://www.umea.se/",))


def moved(new_url: str = NEW) -> Finding:
    return Finding(
        Check.REDIRECT,
        Severity.WARNING,
        PAGE,
        OLD,
        "http_301",
        f"The link has moved permanently; update it to {new_url}",
        "SKL och EU",
        new_url=new_url,
    )


def report(at: dt.datetime, findings: list[Finding]) -> Report:
    return Report(
        run=RunInfo(
            started_at=at,
            finished_at=at + dt.timedelta(minutes=1),
            as_of=at.date(),
            start_urls=("https://www.umea.se/",),
            scopes=("https://www.umea.se/",),
            complete=True,
            pages_crawled=1,
            links_checked=1,
            site="umea",
        ),
        pages=(),
        links=(),
        findings=tuple(findings),
    )


def parts(msg: EmailMessage) -> tuple[str, str]:
    plain, html = list(msg.iter_parts())
    return plain.get_content(), html.get_content()


def test_redirect_finding_carries_final_url() -> None:
    links = [
        LinkResult(
            OLD,
            Verdict.REDIRECT,
            "http_301",
            200,
            final_url=NEW,
            redirect_chain=(RedirectHop(OLD, 301),),
            found_on=(LinkRef(PAGE, "SKL och EU"),),
        ),
        LinkResult(
            "https://x.se/gone",
            Verdict.BROKEN,
            "http_404",
            404,
            final_url="https://x.se/elsewhere",
            found_on=(LinkRef(PAGE, "Borta"),),
        ),
    ]
    found = {f.check: f for f in link_findings(links, Policy())}
    assert found[Check.REDIRECT].new_url == NEW
    assert found[Check.BROKEN_LINK].new_url == ""  # only moved links have a new address


def test_store_keeps_new_url(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as s:
        r1 = s.begin_run("umea", T0)
        s.finish_run(r1, report(T0, [moved()]))
        assert s.findings(r1)[0].new_url == NEW
        assert s.changes_for(r1).new[0].finding.new_url == NEW
        state = s.previous_state("umea")
        assert next(iter(state.values())).finding.new_url == NEW
        # The target moves again: the still-open finding shows the newest address.
        r2 = s.begin_run("umea", T1)
        s.finish_run(r2, report(T1, [moved("https://skr.se/eu-arbete/")]))
        assert s.changes_for(r2).still_open[0].finding.new_url == "https://skr.se/eu-arbete/"
        assert s.changes_for(r1).new[0].finding.new_url == NEW  # run 1 is kept as it was


def test_migration_from_version_1_keeps_old_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    con.execute("INSERT INTO schema_version VALUES (1)")
    for sql in MIGRATIONS[0]:
        con.execute(sql)
    con.execute(
        "INSERT INTO runs (site, status, started_at, finished_at, as_of) "
        "VALUES ('umea', 'complete', ?, ?, ?)",
        (T0.isoformat(), T0.isoformat(), T0.date().isoformat()),
    )
    f = moved()
    con.execute(
        "INSERT INTO run_findings (run_id, check_name, page, target, change, severity, detail, "
        "message, link_text, watched, first_seen, last_seen, consecutive_runs, seq) "
        "VALUES (1, 'redirect', ?, ?, 'new', 'warning', 'http_301', ?, ?, 0, ?, ?, 1, 0)",
        (PAGE, OLD, f.message, f.link_text, T0.isoformat(), T0.isoformat()),
    )
    con.execute(
        "INSERT INTO finding_state (site, check_name, page, target, first_seen, last_seen, "
        "consecutive_runs, severity, detail, message, link_text, watched, open, last_run_id) "
        "VALUES ('umea', 'redirect', ?, ?, ?, ?, 1, 'warning', 'http_301', ?, ?, 0, 1, 1)",
        (PAGE, OLD, T0.isoformat(), T0.isoformat(), f.message, f.link_text),
    )
    con.commit()
    con.close()
    with Store(db) as s:
        assert s.schema_revision == HEAD
        old = s.changes_for(1).new[0].finding
        assert (old.check, old.target, old.new_url) == (Check.REDIRECT, OLD, "")
        # The next run sees the link again and records its new address.
        r2 = s.begin_run("umea", T1)
        changes = s.finish_run(r2, report(T1, [moved()]))
        assert [i.finding.new_url for i in changes.still_open] == [NEW]
        assert s.changes_for(r2).still_open[0].finding.new_url == NEW
        assert next(iter(s.previous_state("umea").values())).finding.new_url == NEW


def test_email_shows_new_address_in_both_languages() -> None:
    changes = compute_changes([moved()], {}, now=T0)
    meta = ReportMeta(run_id=7, site="umea.se/internationellt", as_of=T0.date(), started_at=T0)
    for owner, label in ((ANNA, "Ny adress"), (BEN, "New address")):
        text, html = parts(build_message(owner, changes, meta, from_addr="sw@umea.se", now=T0))
        assert f"{label}: {NEW}" in text
        assert f"{label}:</span>" in html
        assert f'href="{NEW}"' in html and f">{NEW}</a>" in html


def test_email_new_address_is_escaped_and_not_linked_when_odd() -> None:
    odd = "javascript:alert(1)<script>x</script>"
    changes = compute_changes([moved(odd)], {}, now=T0)
    meta = ReportMeta(run_id=7, site="umea.se", as_of=T0.date(), started_at=T0)
    text, html = parts(build_message(BEN, changes, meta, from_addr="sw@umea.se", now=T0))
    assert f"New address: {odd}" in text
    assert "<script" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html


def test_fixed_redirect_shows_no_new_address() -> None:
    f = moved()
    changes = compute_changes([], {f.key: FindingState(T0, T0, 1, f.severity, f)}, now=T1)
    assert len(changes.fixed) == 1
    meta = ReportMeta(run_id=8, site="umea.se", as_of=T1.date(), started_at=T1)
    text, html = parts(build_message(BEN, changes, meta, from_addr="sw@umea.se", now=T1))
    assert OLD in text  # the fixed link is listed ...
    assert "New address" not in text and "New address" not in html  # ... without advice
