"""End to end: the weekly editor emails (issue 3) through the real CLI.

``sitewatch audit`` then ``sitewatch send`` run as child processes against a fixture site on
127.0.0.1 (outside links on 127.0.0.2), a real SQLite history in a temporary directory and a
real aiosmtpd server on loopback (STARTTLS with a self-signed certificate, AUTH; the password
only in the environment). The site has two owners (``sv`` owns /site/sv/, ``en`` owns
/site/en/) and a fallback address for the rest (the start page).

The module runs four weekly runs in order and the tests read what they left behind:

1. problems on both owners' pages and on the unowned start page;
2. one broken link fixed, another broken (``SiteServer.add_route``), a flaky link persists;
3. ``--max-pages 1``: an incomplete run, which must not mark anything fixed although the
   start page's broken link now works;
4. a complete run again: now that fix is recognised, and the earlier problems keep their
   first-seen dates.

``first_seen`` and the run times in the history are wall-clock times; expected dates and day
counts are read back from the database, never computed from the clock.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
import sqlite3
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from checks.changes import observed_at
from demo.server import Route, SiteServer
from reports import messages as M
from tests.cli_runner import CliResult, sitewatch, write_config
from tests.smtp_server import SmtpTestServer

PASSWORD = f"pw-{secrets.token_hex(12)}-Hemligt"
#: A mistyped password, tried once in week 4 before the right one.
WRONG_PASSWORD = f"pw-{secrets.token_hex(12)}-Fel"
PASSWORD_ENV = "SW_E2E_SMTP_PASSWORD"
ENV = {PASSWORD_ENV: PASSWORD}
USER = "sitewatch"
SITE_NAME = "kommun.test/internationellt"
SARA, EDWARD, WEBB = "sara@kommun.test", "edward@kommun.test", "webbredaktionen@kommun.test"
AS_OF = {1: "2026-11-26", 2: "2026-12-03", 3: "2026-12-10", 4: "2026-12-17"}  # weeks 48-51
CHROMIUM = Path("/usr/bin/chromium")
#: Where the moved link now leads: long and without break opportunities, so the email must
#: wrap it rather than grow wider than its 600 px.
NEW_PATH = "/skr/eu/" + "eu_och_internationellt_arbete_" * 6 + "2026.html"


def page(title: str, body: str, lang: str = "sv") -> str:
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{title}</title></head><body>{body}</body></html>"
    )


SV_TITLE = "Vänorter och samarbete"
EN_TITLE = "Twin towns and partners"
INDEX_TITLE = "Internationellt arbete"


# --- the scenario --------------------------------------------------------------------------


@dataclass
class Week:
    """One run: the audit, its sends and the messages the SMTP server got for it."""

    audit: CliResult
    sends: list[CliResult] = field(default_factory=list)
    messages: dict[str, EmailMessage] = field(default_factory=dict)
    #: Messages that arrived during the second ``send`` of the same run (must be none).
    resent: int = 0
    #: A ``send`` with a wrong password before the real one (week 4).
    failed_send: CliResult | None = None


@dataclass
class Scenario:
    tmp: Path
    config: Path
    db: Path
    main: SiteServer
    ext: SiteServer
    smtp: SmtpTestServer
    weeks: dict[int, Week]
    history: CliResult
    raw_messages: list[bytes]

    def url(self, path: str) -> str:
        return self.main.url(path)

    def every_output(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for n, w in self.weeks.items():
            extra = [w.failed_send] if w.failed_send else []
            for i, r in enumerate([w.audit, *extra, *w.sends]):
                out += [(f"week {n} command {i} stdout", r.stdout)]
                out += [(f"week {n} command {i} stderr", r.stderr)]
        out += [("history stdout", self.history.stdout), ("history stderr", self.history.stderr)]
        return out


def _site() -> tuple[SiteServer, SiteServer]:
    main = SiteServer("127.0.0.1", name="kommun")
    ext = SiteServer("127.0.0.2", name="outside")
    E = ext.base_url
    main.add_route(
        "/site/index.html",
        Route(
            body=page(
                INDEX_TITLE,
                '<h1>Internationellt arbete</h1><a href="sv/index.html">Svenska sidor</a> '
                '<a href="en/index.html">English pages</a> '
                '<a href="gammal.html">Gammal rapport</a>'
                "<footer>Sidan har granskats 2018-03-28</footer>",
            )
        ),
    )
    main.add_route(
        "/site/sv/index.html",
        Route(
            body=page(
                SV_TITLE,
                '<a href="saknas.html">Vänortsavtal</a> '
                '<a href="fixas.html">Årsrapport 2025</a> '
                '<a href="kontakt.html">Kontakta oss</a>'
                "<footer>Senast granskad: 2026-11-01</footer>",
            )
        ),
    )
    main.add_route(
        "/site/sv/kontakt.html",
        Route(body=page("Kontakt", "<p>Senast granskad: 2026-11-01</p>")),
    )
    main.add_route(
        "/site/en/index.html",
        Route(
            body=page(
                EN_TITLE,
                f'<a href="{E}/skl/eu/">SKL and the EU</a> '
                f'<a href="{E}/nope">North Sweden office</a> '
                f'<a href="{E}/flaky">Partner portal</a>'
                "<p>Last reviewed 2 November 2026</p>",
                lang="en",
            )
        ),
    )
    # /site/sv/saknas.html, /site/sv/fixas.html and /site/gammal.html: no route, so 404.
    ext.add_route("/skl/eu/", Route(status=301, redirect_to=NEW_PATH))
    ext.add_route(NEW_PATH, Route(body=page("SKR och EU", "<p>ok</p>")))
    ext.add_route("/nope", Route(status=404, body="nope", content_type="text/plain"))
    ext.add_route("/flaky", Route(status=503, body="down", content_type="text/plain"))
    return main, ext


def _config(tmp: Path, main: SiteServer, smtp: SmtpTestServer) -> Path:
    base = main.base_url
    return write_config(
        tmp / "site.toml",
        f"""
[site]
name = "{SITE_NAME}"
start_urls = ["{main.url("/site/index.html")}"]

[crawl]
timeout = 5
retries = 0

[history]
db = "{tmp / "var" / "sitewatch.db"}"
flaky_runs = 2

[email]
from_addr = "Sitewatch <sitewatch@kommun.test>"
fallback_to = "{WEBB}"

[email.smtp]
host = "{smtp.host}"
port = {smtp.port}
security = "starttls"
user = "{USER}"
password_env = "{PASSWORD_ENV}"
ca_file = "{smtp.cafile}"
timeout = 20

[[owners]]
match = ["{base}/site/sv/"]
name = "Sara Svensson"
emails = ["{SARA}"]
language = "sv"
edit_url = "https://cms.kommun.test/edit?url={{url}}"

[[owners]]
match = ["{base}/site/en/"]
name = "Edward Evans"
emails = ["{EDWARD}"]
language = "en"
""",
    )


def _week(
    n: int,
    tmp: Path,
    cfg: Path,
    smtp: SmtpTestServer,
    *extra: str,
    resend: bool = False,
    wrong_password_first: bool = False,
) -> Week:
    out = f"out/run{n}"
    args = ("audit", "--config", str(cfg), "--as-of", AS_OF[n], "--out", out, *extra)
    week = Week(sitewatch(*args, cwd=tmp, env=ENV))
    if wrong_password_first:
        before = len(smtp.messages)
        wrong = {PASSWORD_ENV: WRONG_PASSWORD}
        week.failed_send = sitewatch("send", "--config", str(cfg), cwd=tmp, env=wrong)
        assert len(smtp.messages) == before, "sent with a wrong password"
    before = len(smtp.messages)
    week.sends.append(sitewatch("send", "--config", str(cfg), cwd=tmp, env=ENV))
    got = smtp.messages[before:]
    for m in got:
        assert len(m.rcpt_tos) == 1, m.rcpt_tos
        assert m.rcpt_tos[0] not in week.messages, f"two messages to {m.rcpt_tos[0]} in week {n}"
        week.messages[m.rcpt_tos[0]] = m.message
    if resend:
        before = len(smtp.messages)
        week.sends.append(sitewatch("send", "--config", str(cfg), cwd=tmp, env=ENV))
        week.resent = len(smtp.messages) - before
    return week


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("weekly")
    main, ext = _site()
    with main, ext, SmtpTestServer(tmp / "certs", tls=True, auth=(USER, PASSWORD)) as smtp:
        cfg = _config(tmp, main, smtp)
        weeks = {1: _week(1, tmp, cfg, smtp, resend=True)}
        # Week 2: the annual report is back, the contact page is gone.
        main.add_route(
            "/site/sv/fixas.html",
            Route(body=page("Årsrapport 2025", "<p>Senast granskad: 2026-11-20</p>")),
        )
        main.add_route("/site/sv/kontakt.html", Route(status=404, body="borta"))
        weeks[2] = _week(2, tmp, cfg, smtp)
        # Week 3: the start page's old report is back, but the run stops after one page.
        main.add_route(
            "/site/gammal.html",
            Route(body=page("Gammal rapport", "<p>Senast granskad: 2026-12-01</p>")),
        )
        weeks[3] = _week(3, tmp, cfg, smtp, "--max-pages", "1")
        weeks[4] = _week(4, tmp, cfg, smtp, wrong_password_first=True)
        history = sitewatch("history", "--config", str(cfg), cwd=tmp, env=ENV)
        raw = [m.content for m in smtp.messages]
        yield Scenario(tmp, cfg, tmp / "var" / "sitewatch.db", main, ext, smtp, weeks, history, raw)


# --- reading emails ------------------------------------------------------------------------

_SECTION = re.compile(r"^== (?P<title>.+) \((?P<count>\d+)\) ==$")


def parts(msg: EmailMessage) -> tuple[str, str]:
    """(text, html) of a message that must be multipart/alternative, plain first."""
    assert msg.get_content_type() == "multipart/alternative"
    body = list(msg.iter_parts())
    assert [p.get_content_type() for p in body] == ["text/plain", "text/html"]
    return body[0].get_content(), body[1].get_content()  # type: ignore[attr-defined]


def sections(text: str) -> dict[str, list[str]]:
    """Section title -> its items (each the block of lines starting at "* ")."""
    out: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line == "-- ":
            break
        m = _SECTION.match(line)
        if m:
            current = out.setdefault(m["title"], [])
            counts[m["title"]] = int(m["count"])
            continue
        if current is None:
            continue
        if line.startswith("* "):
            current.append(line + "\n")
        elif line.startswith("  ") and current:
            current[-1] += line + "\n"
    # Nothing is cut at these sizes: each heading's count is the number of items under it.
    assert {t: len(items) for t, items in out.items()} == counts, text
    return out


def where(text: str, needle: str) -> list[str]:
    """Titles of the sections that list an item containing ``needle``."""
    return [t for t, items in sections(text).items() for it in items if needle in it]


def item(text: str, needle: str) -> str:
    found = [it for items in sections(text).values() for it in items if needle in it]
    assert len(found) == 1, (needle, text)
    return found[0]


def text_of(s: Scenario, week: int, rcpt: str) -> str:
    return parts(s.weeks[week].messages[rcpt])[0]


def html_of(s: Scenario, week: int, rcpt: str) -> str:
    return parts(s.weeks[week].messages[rcpt])[1]


def db_rows(s: Scenario, sql: str, *args: object) -> list[sqlite3.Row]:
    con = sqlite3.connect(f"file:{s.db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def first_seen(s: Scenario, target_or_page: str) -> str:
    rows = db_rows(
        s,
        "SELECT first_seen FROM finding_state WHERE target = ? OR (target = '' AND page = ?)",
        target_or_page,
        target_or_page,
    )
    assert len(rows) == 1, target_or_page
    return str(rows[0][0])


def run_started(s: Scenario, run_id: int) -> str:
    return str(db_rows(s, "SELECT started_at FROM runs WHERE id = ?", run_id)[0][0])


def since_line(s: Scenario, lang: str, key: str, run_id: int) -> str:
    """The "Sedan <date> (<N> dagar)" line an item still open in ``run_id`` must carry:
    the weeks are audited as of days a week apart (``AS_OF``) and dated by them
    (``observed_at``), whatever day the test runs on."""
    since = dt.datetime.fromisoformat(first_seen(s, key))
    week1 = dt.date.fromisoformat(AS_OF[1])
    assert abs(since.date() - week1) <= dt.timedelta(days=1), since  # first seen in week 1
    started = dt.datetime.fromisoformat(run_started(s, run_id))
    now = observed_at(started, dt.date.fromisoformat(AS_OF[run_id]))
    days = max(0, (now - since).days)
    assert abs(days - 7 * (run_id - 1)) <= 2, days  # a week apart, not the real clock's gap
    return M.text(lang, "since", date=M.format_day(lang, since), days=M.plural(lang, "days", days))


def finding(report: dict[str, Any], target: str) -> dict[str, Any]:
    found = [f for f in report["findings"] if f["target"] == target]
    assert len(found) == 1, (target, report["findings"])
    return found[0]


# --- the tests -----------------------------------------------------------------------------


def test_commands_ran_cleanly(scenario: Scenario) -> None:
    for n, w in scenario.weeks.items():
        assert w.audit.code == 1, (n, w.audit.stdout, w.audit.stderr)  # errors were found
        for r in w.sends:
            assert r.code == 0, (n, r.stdout, r.stderr)
        for r in (w.audit, *w.sends):
            assert "Traceback" not in r.stderr, r.stderr
    assert scenario.history.code == 0, scenario.history.stderr
    # AUTH was required by the server, so every accepted message proves the login worked.
    assert sum(len(w.messages) for w in scenario.weeks.values()) == len(scenario.raw_messages)


def test_week1_one_message_per_owner_and_fallback(scenario: Scenario) -> None:
    w = scenario.weeks[1]
    assert set(w.messages) == {SARA, EDWARD, WEBB}
    assert "run 1: 3 sent, 0 already sent, 0 failed, 0 unconfirmed" in w.sends[0].stdout
    ids = set()
    for rcpt, msg in w.messages.items():
        parts(msg)  # multipart/alternative, text/plain first, text/html last
        assert msg["To"].addresses[0].addr_spec == rcpt
        assert msg["X-Sitewatch-Run"] == "1"
        ids.add(msg["Message-ID"])
    assert len(ids) == 3
    assert w.messages[SARA]["Subject"] == f"2 nya fel – {SITE_NAME} v.48"
    assert w.messages[SARA]["Content-Language"] == "sv"
    assert w.messages[EDWARD]["Subject"] == f"3 new problems – {SITE_NAME} week 48"
    assert w.messages[EDWARD]["Content-Language"] == "en"
    assert w.messages[WEBB]["Subject"] == f"2 nya fel – {SITE_NAME} v.48"


def test_week1_each_owner_sees_only_their_pages(scenario: Scenario) -> None:
    s = scenario
    sara, edward, webb = (text_of(s, 1, r) for r in (SARA, EDWARD, WEBB))
    assert sara.startswith("Hej Sara Svensson!")
    assert sorted(sections(sara)) == ["Nya fel"]
    assert where(sara, s.url("/site/sv/saknas.html")) == ["Nya fel"]
    assert where(sara, s.url("/site/sv/fixas.html")) == ["Nya fel"]
    assert "Sidan som länken pekar på finns inte (404)" in item(sara, "/site/sv/saknas.html")
    assert f"Sida: {SV_TITLE}" in item(sara, "/site/sv/saknas.html")
    edit = "Redigera sidan: https://cms.kommun.test/edit?url=http%3A%2F%2F127.0.0.1%3A"
    assert edit in item(sara, "/site/sv/saknas.html")

    assert edward.startswith("Hello Edward Evans,")
    assert sorted(sections(edward)) == ["New problems"]
    for path in ("/skl/eu/", "/nope", "/flaky"):
        assert where(edward, s.ext.url(path)) == ["New problems"]
    assert f"Page: {EN_TITLE}" in item(edward, "/nope")

    assert webb.startswith("Hej!")  # the fallback address has no name
    assert where(webb, s.url("/site/gammal.html")) == ["Nya fel"]
    stale = item(webb, "Sidan behöver granskas")
    assert f"Sida: {INDEX_TITLE}" in stale and "Senast granskad 28 mars 2018" in stale

    foreign = {
        SARA: ["/site/en/", "127.0.0.2", "/site/gammal.html", INDEX_TITLE],
        EDWARD: ["/site/sv/", "/site/gammal.html", INDEX_TITLE],
        WEBB: ["/site/sv/", "/site/en/", "127.0.0.2"],
    }
    for rcpt, needles in foreign.items():
        text, html = parts(s.weeks[1].messages[rcpt])
        for needle in needles:
            assert needle not in text, (rcpt, needle)
            assert needle not in html, (rcpt, needle)


def test_week1_html_part_matches_text(scenario: Scenario) -> None:
    s = scenario
    html = html_of(s, 1, SARA)
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert '<html lang="sv">' in html
    assert "Nya fel (2)</h2>" in html
    assert s.url("/site/sv/saknas.html") in html and "Hej Sara Svensson!" in html
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert 'style="' in html  # CSS inlined
    en = html_of(s, 1, EDWARD)
    assert '<html lang="en">' in en and "New problems (3)</h2>" in en


def test_moved_link_shows_new_address(scenario: Scenario) -> None:
    """Task B: the email names the address a permanently moved link now leads to."""
    s = scenario
    new = s.ext.url(NEW_PATH)
    text = item(text_of(s, 1, EDWARD), "/skl/eu/")
    assert "The link is forwarded to a new address" in text
    assert f"New address: {new}" in text
    assert f'href="{new}"' in html_of(s, 1, EDWARD)
    # Still there a week later, in the "still open" section.
    assert f"New address: {new}" in item(text_of(s, 2, EDWARD), "/skl/eu/")
    report = s.weeks[1].audit.report
    assert finding(report, s.ext.url("/skl/eu/"))["detail"] == "http_301"
    rows = db_rows(s, "SELECT new_url FROM run_findings WHERE target = ?", s.ext.url("/skl/eu/"))
    assert {r[0] for r in rows} == {new}


def test_week2_new_fixed_and_still_open(scenario: Scenario) -> None:
    s = scenario
    w = s.weeks[2]
    assert set(w.messages) == {SARA, EDWARD, WEBB}
    assert w.messages[SARA]["Subject"] == f"1 nytt fel, 1 åtgärdat – {SITE_NAME} v.49"
    assert w.messages[EDWARD]["Subject"] == f"3 open problems – {SITE_NAME} week 49"
    assert w.messages[WEBB]["Subject"] == f"2 kvarstående fel – {SITE_NAME} v.49"

    sara = text_of(s, 2, SARA)
    assert where(sara, s.url("/site/sv/kontakt.html")) == ["Nya fel"]
    assert where(sara, s.url("/site/sv/saknas.html")) == ["Kvarstår"]
    assert where(sara, s.url("/site/sv/fixas.html")) == ["Åtgärdat sedan förra veckan"]
    still = item(sara, "/site/sv/saknas.html")
    assert since_line(s, "sv", s.url("/site/sv/saknas.html"), 2) in still
    assert re.search(r"Sedan \d{1,2} \w+ \d{4} \(\d+ dag(ar)?\)", still), still
    fixed = item(sara, "/site/sv/fixas.html")
    assert "Fanns från " in fixed and "Redigera sidan" not in fixed
    html = html_of(s, 2, SARA)
    for title in ("Nya fel (1)</h2>", "Kvarstår (1)</h2>", "Åtgärdat sedan förra veckan (1)</h2>"):
        assert title in html

    edward = text_of(s, 2, EDWARD)
    assert sorted(sections(edward)) == ["Still open"]
    for path in ("/skl/eu/", "/nope", "/flaky"):
        assert where(edward, s.ext.url(path)) == ["Still open"]
    assert since_line(s, "en", s.ext.url("/nope"), 2) in item(edward, "/nope")

    webb = text_of(s, 2, WEBB)
    assert where(webb, s.url("/site/gammal.html")) == ["Kvarstår"]


def test_second_send_of_a_run_sends_nothing(scenario: Scenario) -> None:
    w = scenario.weeks[1]
    assert len(w.sends) == 2
    again = w.sends[1]
    assert w.resent == 0  # aiosmtpd received nothing new
    assert "run 1: 0 sent, 3 already sent, 0 failed, 0 unconfirmed" in again.stdout
    states = db_rows(scenario, "SELECT state, attempts FROM deliveries WHERE run_id = 1")
    assert [tuple(r) for r in states] == [("sent", 1)] * 3


def test_flaky_link_is_a_warning_first_then_an_error(scenario: Scenario) -> None:
    s = scenario
    flaky, gone = s.ext.url("/flaky"), s.ext.url("/nope")
    r1, r2 = s.weeks[1].audit.report, s.weeks[2].audit.report
    assert (finding(r1, flaky)["detail"], finding(r1, flaky)["severity"]) == ("http_503", "warning")
    assert (finding(r2, flaky)["detail"], finding(r2, flaky)["severity"]) == ("http_503", "error")
    assert (finding(r1, gone)["detail"], finding(r1, gone)["severity"]) == ("http_404", "error")
    assert finding(r2, gone)["severity"] == "error"
    # The emails say the same: a warning with a "may be temporary" note, then an error.
    first = item(text_of(s, 1, EDWARD), "/flaky")
    assert first.startswith("* Warning: The server the link points to has problems (503)")
    assert M.TRANSIENT_NOTE["en"] in first
    second = item(text_of(s, 2, EDWARD), "/flaky")
    assert second.startswith("* Error: The server the link points to has problems (503)")
    assert M.TRANSIENT_NOTE["en"] not in second
    assert item(text_of(s, 1, EDWARD), "/nope").startswith("* Error: ")
    rows = db_rows(
        s, "SELECT consecutive_runs FROM run_findings WHERE run_id = 2 AND target = ?", flaky
    )
    assert [r[0] for r in rows] == [2]


def test_incomplete_run_marks_nothing_fixed(scenario: Scenario) -> None:
    s = scenario
    w = s.weeks[3]
    run = w.audit.report["run"]
    assert run["complete"] is False
    assert run["incomplete_reasons"] == ["max_pages (1) reached"]
    assert "0 fixed (incomplete run: nothing marked fixed)" in w.audit.stdout
    # The start page's broken link works again, yet the incomplete run does not call it fixed.
    assert s.url("/site/gammal.html") not in {f["target"] for f in w.audit.report["findings"]}
    assert set(w.messages) == {WEBB}  # the owners' pages were not checked: nothing to say
    msg = w.messages[WEBB]
    assert msg["Subject"] == f"1 kvarstående fel – {SITE_NAME} v.50 (ofullständig kontroll)"
    text, html = parts(msg)
    assert "Kontrollen blev inte klar (max_pages (1) reached)" in text
    assert "1 tidigare fel kunde inte kontrolleras den här gången." in text
    assert sorted(sections(text)) == ["Kvarstår"]
    assert "gammal.html" not in text and "Åtgärdat" not in text and "Åtgärdat" not in html
    rows = db_rows(s, "SELECT change, COUNT(*) FROM run_findings WHERE run_id = 3 GROUP BY change")
    assert dict((r[0], r[1]) for r in rows) == {"open": 1, "unchecked": 6}
    closed = db_rows(s, "SELECT target, closed_run_id FROM finding_state WHERE open = 0")
    assert 3 not in {r[1] for r in closed}  # run 3 closed nothing


def test_complete_run_after_incomplete_one(scenario: Scenario) -> None:
    s = scenario
    w = s.weeks[4]
    assert w.audit.report["run"]["complete"] is True
    assert set(w.messages) == {SARA, EDWARD, WEBB}
    webb = text_of(s, 4, WEBB)
    assert w.messages[WEBB]["Subject"] == f"1 åtgärdat – {SITE_NAME} v.51"
    assert where(webb, s.url("/site/gammal.html")) == ["Åtgärdat sedan förra veckan"]
    sara = text_of(s, 4, SARA)
    assert where(sara, s.url("/site/sv/saknas.html")) == ["Kvarstår"]
    assert where(sara, s.url("/site/sv/kontakt.html")) == ["Kvarstår"]
    closed = db_rows(s, "SELECT target, closed_run_id FROM finding_state WHERE open = 0")
    assert {r[0]: r[1] for r in closed} == {
        s.url("/site/sv/fixas.html"): 2,
        s.url("/site/gammal.html"): 4,
    }
    # Seen since run 1, across the incomplete run 3.
    first = dt.datetime.fromisoformat(db_rows(s, "SELECT started_at FROM runs WHERE id = 1")[0][0])
    seen = observed_at(first, dt.date.fromisoformat(AS_OF[1]))
    assert dt.datetime.fromisoformat(first_seen(s, s.url("/site/sv/saknas.html"))) == seen
    assert since_line(s, "sv", s.url("/site/sv/saknas.html"), 4) in item(sara, "saknas.html")


def test_history_lists_runs_with_counts_and_deliveries(scenario: Scenario) -> None:
    out = scenario.history.stdout.splitlines()
    assert out[0].split()[:3] == ["run", "started", "(UTC)"]
    rows: dict[int, tuple[str, list[int], str]] = {}
    notes: dict[int, str] = {}
    last = 0
    for line in out[1:]:
        if line.strip().startswith("incomplete:"):
            notes[last] = line.strip()
            continue
        f = line.split()
        last = int(f[0])
        rows[last] = (f[3], [int(x) for x in f[4:11]], " ".join(f[11:]))
    assert list(rows) == [4, 3, 2, 1]  # newest first
    # status, (err, warn, new, open, fixed), deliveries
    expected = {
        1: ("complete", [5, 2, 7, 0, 0], "3 sent"),
        2: ("complete", [6, 1, 1, 6, 1], "3 sent"),
        3: ("incomplete", [1, 0, 0, 1, 0], "1 sent"),
        4: ("complete", [5, 1, 0, 6, 1], "3 sent"),
    }
    for rid, (status, counts, deliveries) in expected.items():
        got_status, nums, got_deliveries = rows[rid]
        assert (got_status, nums[2:], got_deliveries) == (status, counts, deliveries), rid
    assert rows[3][1][0] == 1  # pages crawled in the incomplete run
    assert notes == {3: "incomplete: max_pages (1) reached"}


def test_password_never_leaks(scenario: Scenario) -> None:
    s = scenario
    secrets_ = {
        form
        for pw in (PASSWORD, WRONG_PASSWORD)
        for form in (
            pw,
            base64.b64encode(pw.encode()).decode(),
            base64.b64encode(f"\0{USER}\0{pw}".encode()).decode(),
        )
    }
    for name, text in s.every_output():
        for secret in secrets_:
            assert secret not in text, name
    files = [p for p in s.tmp.rglob("*") if p.is_file()]
    assert s.db in files
    assert any(p.name == "report.json" for p in files)
    for p in files:
        data = p.read_bytes()
        for secret in secrets_:
            assert secret.encode() not in data, p
    for raw in s.raw_messages:
        for secret in secrets_:
            assert secret.encode() not in raw
    assert PASSWORD not in s.config.read_text(encoding="utf-8")


# --- the HTML email in a real browser -------------------------------------------------------


@pytest.mark.browser
def test_html_email_in_chromium(scenario: Scenario, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)")
    from tests.browser import assert_inert, open_in_chromium

    s = scenario
    seen = {}
    for name, week, rcpt in (("email-sv-week2", 2, SARA), ("email-en-week1", 1, EDWARD)):
        html = tmp_path / f"{name}.html"
        html.write_text(html_of(s, week, rcpt), encoding="utf-8")
        seen[name] = open_in_chromium(html, tmp_path / f"{name}.png")
        # No page errors, no dialogs, nothing loaded from anywhere, no scripts, no sideways
        # scrolling: an email client shows the same HTML without a browser's safety net.
        assert_inert(seen[name])
        assert [c for c in seen[name].console if c.startswith("error")] == []
        shot = tmp_path / f"{name}.png"
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size > 5000
        # The content table keeps its 600 px (long URLs wrap instead of widening it).
        assert sorted(seen[name].dom_info["table_widths"])[0] == 600

    sv = seen["email-sv-week2"].dom_info
    visible = sv["text"]  # innerText: only what is rendered
    assert "Hej Sara Svensson!" in visible
    assert SV_TITLE in visible
    for heading in ("Nya fel (1)", "Kvarstår (1)", "Åtgärdat sedan förra veckan (1)"):
        assert heading in visible
    assert sv["title"] == s.weeks[2].messages[SARA]["Subject"]
    en = seen["email-en-week1"].dom_info
    assert "Hello Edward Evans," in en["text"] and EN_TITLE in en["text"]
    assert f"New address: {s.ext.url(NEW_PATH)}" in en["text"]


def test_wrong_password_fails_cleanly_and_next_send_retries(scenario: Scenario) -> None:
    w = scenario.weeks[4]
    bad = w.failed_send
    assert bad is not None and bad.code == 1, bad
    assert "run 4: 0 sent, 0 already sent, 3 failed, 0 unconfirmed" in bad.stdout
    assert "authentication failed: 535" in bad.stderr
    assert "Traceback" not in bad.stderr
    # The next send (right password) delivered every one of them, once.
    assert "run 4: 3 sent, 0 already sent, 0 failed, 0 unconfirmed" in w.sends[0].stdout
    rows = db_rows(scenario, "SELECT state, last_error FROM deliveries WHERE run_id = 4")
    assert [tuple(r) for r in rows] == [("sent", "")] * 3
    log = db_rows(
        scenario, "SELECT state, detail FROM delivery_log WHERE run_id = 4 AND state = 'failed'"
    )
    assert len(log) == 3 and any("authentication failed" in r[1] for r in log)
