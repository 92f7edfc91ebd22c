"""The workspace app through Flask's test client: tokens, CSRF, headers, decisions, 403s,
escaping, the admin view and the run view. (Browser tests: tests/test_web_browser.py.)"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from pathlib import Path
from typing import Any

import lxml.etree
import lxml.html
import pytest
from werkzeug.security import generate_password_hash

from checks.models import Check, Finding, Severity
from checks.suppress import Kind, Suppression, in_force, validate
from crawler.history.store import Store
from crawler.web.app import create_app
from reports.workspace_view import finding_id
from tests.workspace_data import (
    BASE,
    EXT_403,
    HARSTAD,
    HOSTILE_TITLE,
    SECRET,
    SITE,
    WEEK1,
    WEEK2,
    config,
    findings,
    record,
)

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class Clock:
    def __init__(self, t: dt.datetime) -> None:
        self.t = t.timestamp()

    def __call__(self) -> float:
        return self.t

    def advance(self, **kw: float) -> None:
        self.t += dt.timedelta(**kw).total_seconds()


@pytest.fixture
def env(tmp_path: Path) -> Any:
    cfg = config(tmp_path, admin_password_hash=generate_password_hash("correct horse battery"))
    record(cfg, WEEK1, findings())
    clock = Clock(WEEK1 + dt.timedelta(hours=2))
    app = create_app(cfg, secret=SECRET, clock=clock)
    st = app.extensions["sitewatch"]
    yield app, st, clock, cfg
    st.close()


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def assert_inert_html(html: str) -> None:
    """No script, image, SVG, frame or event handler in the document: text stayed text."""
    doc = lxml.html.document_fromstring(html)
    assert doc.xpath("//script|//img|//iframe|//object|//embed") == []
    assert doc.xpath("//body//svg") == [] or all(
        "trend" in e.get("class", "") for e in doc.xpath("//body//svg")
    )
    assert [
        a for e in doc.iter() if isinstance(e.tag, str) for a in e.attrib if a.startswith("on")
    ] == []


def fid_of(f: Finding) -> str:
    return finding_id(f.key)


def test_every_response_has_the_strict_headers(env: Any) -> None:
    app, _st, _clock, _cfg = env
    c = app.test_client()
    for url in ("/", "/o/bad-token", "/admin", "/admin/login", "/nowhere", "/static/web.css"):
        r = c.get(url)
        assert r.headers["Content-Security-Policy"] == CSP, url
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
    assert c.get("/o/bad-token").status_code == 403
    assert c.get("/static/web.css").status_code == 200


def test_editor_dismisses_with_a_reason_and_undoes(env: Any) -> None:
    app, st, _clock, _cfg = env
    token = st.signing.owner_token("Karin Nyström", SITE)
    c = app.test_client()
    r = c.get(f"/o/{token}")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "Harstad, Norge – 2 problem" in html
    assert "Sidan som länken pekar på finns inte (404)" in html
    assert "https://cms.umea.example/edit?url=" in html
    target = findings()[1]
    form = {"csrf": csrf_of(html), "fid": fid_of(target), "kind": "dismiss", "reason": ""}
    r = c.post(f"/o/{token}/decide", data=form)
    assert r.status_code == 200 and "Skriv en kort motivering." in r.get_data(as_text=True)
    form["reason"] = "Partnern blockerar robotar; länken fungerar i webbläsaren"
    r = c.post(f"/o/{token}/decide", data=form)
    assert r.status_code == 303
    with Store.for_config(env[3]) as store:
        (decision,) = store.decisions_for(SITE)
        assert (decision.kind, decision.by, decision.detail) == (
            Kind.DISMISS,
            "Karin Nyström",
            "http_403",
        )
        log = store.decision_log(SITE)
    assert [e.action for e in log] == ["dismiss"]
    html = c.get(f"/o/{token}").get_data(as_text=True)
    assert "Inget problem enligt Karin Nyström" in html
    r = c.post(f"/o/{token}/undo", data={"csrf": csrf_of(html), "decision": decision.id})
    assert r.status_code == 303
    with Store.for_config(env[3]) as store:
        assert store.decisions_for(SITE) == []
        assert [e.action for e in store.decision_log(SITE)] == ["undo", "dismiss"]


def test_another_owners_token_gets_403(env: Any) -> None:
    app, st, _clock, _cfg = env
    emma = st.signing.owner_token("Emma Lind", SITE)
    c = app.test_client()
    html = c.get(f"/o/{emma}").get_data(as_text=True)
    assert "Harstad" not in html and "In English" in html
    karins = fid_of(findings()[1])
    assert c.get(f"/o/{emma}/f/{karins}").status_code == 403
    form = {"csrf": csrf_of(html), "fid": karins, "kind": "acknowledge"}
    assert c.post(f"/o/{emma}/decide", data=form).status_code == 403
    with Store.for_config(env[3]) as store:
        assert store.decisions_for(SITE) == []


def test_expired_altered_and_foreign_site_tokens_are_refused(env: Any) -> None:
    app, st, clock, cfg = env
    token = st.signing.owner_token("Karin Nyström", SITE)
    c = app.test_client()
    assert c.get(f"/o/{token}").status_code == 200
    altered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert c.get(f"/o/{altered}").status_code == 403
    assert c.get(f"/o/{st.signing.owner_token('Karin Nyström', 'other.site')}").status_code == 403
    assert c.get(f"/o/{st.signing.owner_token('Nobody', SITE)}").status_code == 403
    clock.advance(days=cfg.web.token_days, seconds=1)
    assert c.get(f"/o/{token}").status_code == 403


def test_post_without_or_with_a_wrong_csrf_token_is_refused(env: Any) -> None:
    app, st, _clock, _cfg = env
    token = st.signing.owner_token("Karin Nyström", SITE)
    emma = st.signing.owner_token("Emma Lind", SITE)
    c = app.test_client()
    html = c.get(f"/o/{token}").get_data(as_text=True)
    form = {"fid": fid_of(findings()[0]), "kind": "acknowledge"}
    assert c.post(f"/o/{token}/decide", data=form).status_code == 403
    # Emma's form token does not work on Karin's page, nor a token without the cookie.
    emma_csrf = csrf_of(c.get(f"/o/{emma}").get_data(as_text=True))
    assert c.post(f"/o/{token}/decide", data={**form, "csrf": emma_csrf}).status_code == 403
    fresh = app.test_client()
    assert fresh.post(f"/o/{token}/decide", data={**form, "csrf": csrf_of(html)}).status_code == 403
    with Store.for_config(env[3]) as store:
        assert store.decisions_for(SITE) == []
    assert c.post(f"/o/{token}/decide", data={**form, "csrf": csrf_of(html)}).status_code == 303


def test_hostile_titles_and_link_texts_are_escaped(env: Any) -> None:
    app, st, _clock, _cfg = env
    token = st.signing.owner_token("Karin Nyström", SITE)
    html = app.test_client().get(f"/o/{token}").get_data(as_text=True)
    assert_inert_html(html)
    assert "&lt;/title&gt;&lt;script&gt;" in html  # shown as text
    assert "\u202e" not in html


def test_admin_needs_the_password_then_sees_trend_and_runs(env: Any, tmp_path: Path) -> None:
    app, _st, _clock, cfg = env
    record(cfg, WEEK2, findings()[:3])
    c = app.test_client()
    assert c.get("/admin").status_code == 303
    assert c.get("/admin/run/1").status_code == 403
    page = c.get("/admin/login").get_data(as_text=True)
    bad = c.post("/admin/login", data={"csrf": csrf_of(page), "password": "wrong"})
    assert bad.status_code == 403
    ok = c.post("/admin/login", data={"csrf": csrf_of(page), "password": "correct horse battery"})
    assert ok.status_code == 303
    html = c.get("/admin").get_data(as_text=True)
    assert html.count('class="pt pt-errors"') == 2  # two runs: two points
    assert "Open findings by check and owner (3)" in html
    assert_inert_html(html)
    run = c.get("/admin/run/1")
    assert run.status_code == 200
    body = run.get_data(as_text=True)
    assert "harstad.html" in body and HOSTILE_TITLE not in body
    assert_inert_html(body)
    assert "'sha256-" in run.headers["Content-Security-Policy"]
    assert c.get("/admin/run/99").status_code == 404


def test_admin_open_and_no_password_configured(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    record(cfg, WEEK1, findings())
    closed = create_app(cfg, secret=SECRET)
    assert closed.test_client().get("/admin").status_code == 303
    assert "No admin password is configured" in closed.test_client().get("/admin/login").get_data(
        as_text=True
    )
    opened = create_app(cfg, secret=SECRET, admin_open=True)
    assert opened.test_client().get("/admin").status_code == 200
    for app in (closed, opened):
        app.extensions["sitewatch"].close()


def test_the_suppression_rule_lapses_when_the_verdict_changes() -> None:
    now = WEEK2
    f403 = Finding(Check.BROKEN_LINK, Severity.ERROR, HARSTAD, EXT_403, "http_403")
    s = Suppression(Kind.DISMISS, *f403.key, "http_403", Severity.ERROR, "Karin", WEEK1, "ok")
    assert in_force(s, f403, now)
    f404 = Finding(Check.BROKEN_LINK, Severity.ERROR, HARSTAD, EXT_403, "http_404")
    assert not in_force(s, f404, now)
    snooze = Suppression(Kind.SNOOZE, *f403.key, "http_403", Severity.ERROR, "K", WEEK1, until=now)
    assert not in_force(snooze, f403, now)
    assert in_force(snooze, f403, now - dt.timedelta(seconds=1))
    stale = Finding(Check.STALE_PAGE, Severity.ERROR, HARSTAD, detail="400_days")
    ack = Suppression(
        Kind.ACKNOWLEDGE, *stale.key, "393_days", Severity.WARNING, "K", WEEK1, until=now
    )
    assert not in_force(ack, stale, WEEK1)  # worse severity than when acknowledged
    assert validate(Kind.DISMISS, " ", None, now) == "reason_required"
    assert validate(Kind.SNOOZE, "", now - dt.timedelta(days=1), now) == "until_past"
    assert validate(Kind.SNOOZE, "", now + dt.timedelta(days=400), now) == "until_too_far"
    assert validate(Kind.ACKNOWLEDGE, "", now + dt.timedelta(days=28), now) == ""


def test_trend_svg_has_a_point_per_run_and_escapes_labels() -> None:
    from reports.trend_svg import Point, trend_svg

    pts = [Point(f"<v{i}>", e, w) for i, (e, w) in enumerate([(12, 3), (9, 4), (9, 1)])]
    svg = trend_svg(pts, title="a <b> & c", legend=("errors", "warnings"))
    doc = lxml.etree.fromstring(svg.encode())
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert len(doc.xpath("//s:circle[contains(@class, 'pt-errors')]", namespaces=ns)) == 3
    assert len(doc.xpath("//s:polyline", namespaces=ns)) == 2
    assert "<v0>" not in svg and "&lt;v0&gt;" in svg and "a &lt;b&gt; &amp; c" in svg
    # Higher counts are drawn higher (smaller y).
    ys = [
        float(c.get("cy"))
        for c in doc.xpath("//s:circle[contains(@class,'pt-errors')]", namespaces=ns)
    ]
    assert ys[0] < ys[1] == ys[2]
    one = trend_svg([Point("x", 0, 0)], title="t", legend=("e", "w"))
    assert one.count("<circle") == 2 and "<polyline" not in one
    none = trend_svg([], title="t", legend=("e", "w"))  # a site with no finished run yet
    assert none.startswith("<svg") and "<circle" not in none and "<polyline" not in none


@pytest.mark.parametrize("runs", [2, 5, 9, 26, 53])
def test_trend_axis_labels_stay_inside_the_chart_and_apart(runs: int) -> None:
    from reports.trend_svg import WIDTH, Point, trend_svg

    pts = [Point(f"v.{i:02d} 2026", i % 7, i % 3) for i in range(runs)]
    svg = trend_svg(pts, title="t", legend=("errors", "warnings"))
    doc = lxml.etree.fromstring(svg.encode())
    ns = {"s": "http://www.w3.org/2000/svg"}
    labels = [t for t in doc.xpath("//s:text", namespaces=ns) if t.text and t.text.startswith("v.")]
    assert labels[-1].text == pts[-1].label[:12]  # the newest run is always labelled
    assert 2 <= len(labels) <= 9
    spans = []
    for t in labels:  # 11 px type: a character is at most ~7 px wide
        x, w = float(t.get("x")), 7 * len(t.text)
        left = {"start": x, "middle": x - w / 2, "end": x - w}[t.get("text-anchor")]
        assert left >= 0 and left + w <= WIDTH, (t.text, left, w)
        spans.append((left, left + w))
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans


def test_the_web_command_refuses_a_bad_setup(tmp_path: Path) -> None:
    from tests.cli_runner import sitewatch, write_config

    cfg = write_config(tmp_path / "c.toml", '[site]\nname = "x"\n')
    no_key = sitewatch("web", "--config", str(cfg), cwd=tmp_path, env={"SITEWATCH_WEB_SECRET": ""})
    assert no_key.code == 2 and "SITEWATCH_WEB_SECRET" in no_key.stderr
    assert "Traceback" not in no_key.stderr
    env = {"SITEWATCH_WEB_SECRET": SECRET}
    wide = sitewatch(
        "web", "--config", str(cfg), "--host", "0.0.0.0", "--admin-open", cwd=tmp_path, env=env
    )
    assert wide.code == 2 and "--admin-open is only allowed on a loopback address" in wide.stderr
    assert SECRET not in wide.stderr + wide.stdout
    bad = write_config(tmp_path / "b.toml", '[web]\nadmin_password_hash = "hunter2"\n')
    shown = sitewatch("web", "--config", str(bad), cwd=tmp_path, env=env)
    assert shown.code == 2 and "web.admin_password_hash" in shown.stderr
    assert "hunter2" not in shown.stderr


def test_the_fallback_recipient_sees_the_unowned_pages(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    outside = Finding(
        Check.BROKEN_LINK, Severity.ERROR, "https://www.umea.se/other.html", "x", "dns"
    )
    record(cfg, WEEK1, (*findings(), outside))
    app = create_app(cfg, secret=SECRET)
    st = app.extensions["sitewatch"]
    c = app.test_client()
    html = c.get(f"/o/{st.signing.owner_token('*', SITE)}").get_data(as_text=True)
    assert "other.html" in html and "harstad" not in html
    assert "Dina sidor: webb@umea.example" in html
    st.close()


def test_report_html_shows_decided_findings_as_such() -> None:
    from dataclasses import replace

    from crawler.history.runs import with_decisions
    from reports.html_report import render_html
    from tests.workspace_data import report

    f = findings()[1]
    s = Suppression(Kind.DISMISS, *f.key, f.detail, f.severity, "Karin", WEEK1, "Blockerar <b>")
    rep = with_decisions(report(WEEK2, findings()), {f.key: s}, WEEK2)
    assert rep.run.stats["decisions"] == [[*f.key, "dismiss", "Karin", "Blockerar <b>", ""]]
    html = render_html(rep)
    assert html.count("Not a problem (Karin): Blockerar &lt;b&gt;") == 2  # by problem, by page
    assert_inert_html(html)
    lapsed = with_decisions(report(WEEK2, findings("http_404")), {f.key: s}, WEEK2)
    assert "decisions" not in lapsed.run.stats
    assert replace(rep, findings=()).run.stats["decisions"]  # recorded on the run


def test_snooze_until_a_date_and_acknowledge_for_the_configured_weeks(env: Any) -> None:
    app, st, clock, cfg = env
    token = st.signing.owner_token("Karin Nyström", SITE)
    c = app.test_client()
    html = c.get(f"/o/{token}").get_data(as_text=True)
    form = {"csrf": csrf_of(html), "fid": fid_of(findings()[0]), "kind": "snooze"}
    bad = c.post(f"/o/{token}/decide", data={**form, "until": "2026-11-01"})
    assert "Datumet måste ligga i framtiden." in bad.get_data(as_text=True)
    assert c.post(f"/o/{token}/decide", data={**form, "until": "2027-01-15"}).status_code == 303
    ack = {**form, "fid": fid_of(findings()[1]), "kind": "acknowledge"}
    assert c.post(f"/o/{token}/decide", data=ack).status_code == 303
    with Store.for_config(cfg) as store:
        by_kind = {d.kind: d for d in store.decisions_for(SITE)}
    assert by_kind[Kind.SNOOZE].until == dt.datetime(2027, 1, 15, tzinfo=dt.UTC)
    weeks = dt.timedelta(weeks=cfg.web.acknowledge_weeks)
    assert by_kind[Kind.ACKNOWLEDGE].until == st.now() + weeks
    assert "Pausat av Karin Nyström" in c.get(f"/o/{token}").get_data(as_text=True)
    clock.advance(days=60)  # both have ended: the findings are listed for action again
    fresh = st.signing.owner_token("Karin Nyström", SITE)  # the old link has expired
    later = c.get(f"/o/{fresh}")
    assert later.status_code == 200
    text = later.get_data(as_text=True)
    assert "Harstad, Norge – 2 problem" in text
    assert "Pausat av" not in text and "Kvitterat av" not in text


def test_a_decision_covers_every_place_of_the_problem_on_the_owners_pages(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    again = Finding(Check.BROKEN_LINK, Severity.ERROR, BASE, EXT_403 + "#top", "http_403")
    record(cfg, WEEK1, (*findings(), again))  # the same blocked resource on a second page
    app = create_app(cfg, secret=SECRET, clock=Clock(WEEK1 + dt.timedelta(hours=1)))
    st = app.extensions["sitewatch"]
    token = st.signing.owner_token("Karin Nyström", SITE)
    c = app.test_client()
    html = c.get(f"/o/{token}").get_data(as_text=True)
    form = {"csrf": csrf_of(html), "fid": fid_of(findings()[1]), "kind": "dismiss", "reason": "ok"}
    assert c.post(f"/o/{token}/decide", data=form).status_code == 303
    with Store.for_config(cfg) as store:
        decided = store.decisions_for(SITE)
    assert sorted(d.target for d in decided) == [EXT_403, EXT_403 + "#top"]
    html = c.get(f"/o/{token}").get_data(as_text=True)
    assert html.count("Inget problem enligt Karin Nyström") == 2
    undo = {"csrf": csrf_of(html), "decision": decided[0].id}
    assert c.post(f"/o/{token}/undo", data=undo).status_code == 303
    with Store.for_config(cfg) as store:
        assert store.decisions_for(SITE) == []
    st.close()
