"""One problem per missing resource (checks/groups.py) and how every format shows it:
report.html (one row, a capped <details> list), summary.md, the weekly email, report.json
(every link kept, a groups view, schema-valid), report.csv (one row per finding)."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from html.parser import HTMLParser

from checks.changes import compute_changes
from checks.evaluate import link_findings
from checks.groups import group_findings, group_key, target_key
from checks.models import Check, Finding, LinkRef, LinkResult, Page, Report, Severity, Verdict
from checks.policy import Policy
from reports import html_report
from reports.csv_report import render_csv
from reports.email_build import ReportMeta, build_message
from reports.html_report import EXAMPLE_PLACES, render_html
from reports.json_report import render_json
from reports.markdown_report import render_markdown
from tests import report_samples as samples
from tests.test_email import ANNA, META, NOW, parts
from tests.test_reports import SCHEMA_PATH, schema_errors

SITE = "https://www.umea.se"
GONE = f"{SITE}/docs/changelog.html"


def broken(page: str, target: str, detail: str = "http_404", text: str = "Ändringar") -> Finding:
    return Finding(Check.BROKEN_LINK, Severity.ERROR, page, target, detail, link_text=text)


# --- the grouping ------------------------------------------------------------------------


def test_target_key_drops_only_the_fragment() -> None:
    assert target_key(f"{GONE}#v1.2") == GONE
    assert target_key(f"{GONE}?a=1#x#y") == f"{GONE}?a=1"
    assert target_key(GONE) == GONE
    assert target_key("") == ""


def test_a_missing_page_linked_through_many_fragments_is_one_group() -> None:
    findings = [broken(f"{SITE}/p{p}.html", f"{GONE}#v{v}") for p in range(3) for v in range(470)]
    findings.append(broken(f"{SITE}/p0.html", f"{SITE}/other.html"))
    groups = group_findings(findings)
    assert [(g.key, g.links, g.pages, g.targets) for g in groups] == [
        (GONE, 1410, 3, 470),  # "linked 1,410 times from 3 pages", most-linked first
        (f"{SITE}/other.html", 1, 1, 1),
    ]
    assert groups[0].first == findings[0]  # the order given is kept inside a group
    assert groups[0].findings == tuple(findings[:-1])


def test_missing_fragment_stays_one_group_per_fragment() -> None:
    findings = [
        broken(f"{SITE}/a.html", f"{SITE}/faq.html#x", "missing_fragment"),
        broken(f"{SITE}/b.html", f"{SITE}/faq.html#x", "missing_fragment"),
        broken(f"{SITE}/a.html", f"{SITE}/faq.html#y", "missing_fragment"),
    ]
    groups = group_findings(findings)
    assert sorted((g.key, g.links) for g in groups) == [
        (f"{SITE}/faq.html#x", 2),
        (f"{SITE}/faq.html#y", 1),
    ]


def test_checks_details_and_page_checks_are_not_mixed() -> None:
    stale_a = Finding(Check.STALE_PAGE, Severity.ERROR, f"{SITE}/a.html", detail="400_days")
    stale_b = Finding(Check.STALE_PAGE, Severity.ERROR, f"{SITE}/b.html", detail="400_days")
    pdf = Finding(Check.MISSING_PDF, Severity.ERROR, f"{SITE}/a.html", f"{GONE}#page=2", "http_404")
    moved = Finding(Check.REDIRECT, Severity.WARNING, f"{SITE}/a.html", f"{GONE}#a", "http_301")
    findings = [stale_a, stale_b, pdf, moved, broken(f"{SITE}/a.html", f"{GONE}#b", "timeout")]
    keys = {group_key(f) for f in findings}
    assert len(keys) == len(findings)  # five problems
    assert group_key(stale_a) == ("stale_page", f"{SITE}/a.html", "400_days")
    assert group_key(pdf) == ("missing_pdf", GONE, "http_404")


def test_a_group_is_watched_and_as_severe_as_its_worst_finding() -> None:
    a = broken(f"{SITE}/a.html", f"{GONE}#1")
    b = replace(broken(f"{SITE}/b.html", f"{GONE}#2"), severity=Severity.WARNING, watched=True)
    other = broken(f"{SITE}/c.html", f"{SITE}/x.html")
    groups = group_findings([other, b, a])
    assert groups[0].key == GONE and groups[0].watched
    assert groups[0].severity is Severity.ERROR


# --- a report with 5,000 findings of one missing page ------------------------------------

PAGES_N = 1000
FRAGMENTS = 5


def big_report() -> Report:
    """1,000 pages, each linking the missing changelog through 5 different #fragments
    (5,000 findings, 5 link results of 1,000 places each), from the real checks."""
    base = samples.sample_report()
    pages = [Page(f"{SITE}/sida/{i}.html", 200, f"Sida <{i}>", depth=1) for i in range(PAGES_N)]
    links = [
        LinkResult(
            f"{GONE}#v{v}",
            Verdict.BROKEN,
            "http_404",
            404,
            internal=True,
            found_on=tuple(LinkRef(p.url, f"Version <b>{v}</b>") for p in pages),
        )
        for v in range(FRAGMENTS)
    ]
    findings = tuple(link_findings(links, Policy()))
    assert len(findings) == PAGES_N * FRAGMENTS
    return replace(
        base,
        pages=base.pages + tuple(pages),
        links=tuple(base.links) + tuple(links),
        findings=base.findings + findings,
    )


class _Rows(HTMLParser):
    """The rows of one by-problem table and the <li> items inside <details>."""

    def __init__(self) -> None:
        super().__init__()
        self.details = 0
        self.items_in_details = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "details":
            self.details += 1
        if tag == "li" and self.details:
            self.items_in_details += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "details":
            self.details -= 1


def _section(html: str, check: str) -> str:
    start = html.index(f'id="problem-{check}"')
    end = html.index("<h3", start + 10) if "<h3" in html[start + 10 :] else len(html)
    return html[start:end]


def test_html_shows_one_row_with_counts_and_a_capped_list() -> None:
    report = big_report()
    html = render_html(report)
    section = _section(html, "broken_link")
    body = section[section.index("<tbody>") : section.index("</tbody>")]
    rows = body.count("<tr>")
    assert rows == 3  # the changelog, plus the sample's two broken links
    assert "linked 5,000 times from 1,000 pages" in section
    assert "through 5 different addresses (#anchors)" in section
    changelog_row = next(r for r in body.split("<tr>") if "5,000 times" in r)
    parser = _Rows()
    parser.feed(changelog_row)
    # EXAMPLE_PLACES places and the "… and N more" line, never 5,000
    assert parser.items_in_details == EXAMPLE_PLACES + 1
    assert f"… and {5000 - EXAMPLE_PLACES:,} more" in changelog_row
    assert "<details><summary>" in changelog_row
    # Page-derived text stays escaped.
    assert "Version &lt;b&gt;0&lt;/b&gt;" in changelog_row and "<b>0</b>" not in html
    assert "Sida &lt;0&gt;" in html
    # the summary table counts problems and findings
    assert re.search(r"Broken links</a></td><td class=\"num\">3</td><td class=\"num\">5002<", html)
    # The whole file stays small although the report has 5,000 more findings.
    assert len(html.encode()) < 1_500_000


def test_html_by_page_makes_one_row_per_problem_and_caps_pages(monkeypatch) -> None:
    monkeypatch.setattr(html_report, "PROBLEM_PAGES_LIMIT", 50)
    html = render_html(big_report())
    by_page = html[html.index('id="by-page"') :]
    assert by_page.count('<article class="card page">') == 50
    assert "5 links to this address (different #anchors)" in by_page
    assert "… and 956 more pages with problems" in by_page  # 1,006 pages in all


def test_html_section_is_capped(monkeypatch) -> None:
    monkeypatch.setattr(html_report, "SECTION_LIMIT", 1)
    html = render_html(big_report())
    section = _section(html, "broken_link")
    assert section.count('<tr><td class="sev">') == 1
    assert "… and 2 more problems of this kind" in section


def test_markdown_has_one_row_for_the_missing_page() -> None:
    md = render_markdown(big_report())
    rows = [line for line in md.splitlines() if GONE in line]
    assert len(rows) == 1
    assert (
        f"| error | broken_link | {GONE} | http_404 | 5000 times from 1000 pages, e.g. " in rows[0]
    )
    assert "Version &lt;b&gt;0&lt;/b&gt;" in rows[0]


def test_json_keeps_every_link_and_groups_them() -> None:
    report = big_report()
    data = json.loads(render_json(report))
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema_errors(data, schema) == []
    on = data["found_on_pages"]
    changelog = [link for link in data["links"] if link["url"].startswith(GONE)]
    assert len(changelog) == FRAGMENTS
    for link in changelog:
        assert [on[i] for i, _ in link["found_on"]] == [
            f"{SITE}/sida/{i}.html" for i in range(PAGES_N)
        ]
    mine = [f for f in data["findings"] if f["target"].startswith(GONE)]
    assert len(mine) == PAGES_N * FRAGMENTS
    (index,) = {f["group"] for f in mine}
    assert data["groups"][index] == {
        "check": "broken_link",
        "severity": "error",
        "target": GONE,
        "detail": "http_404",
        "watched": False,
        "links": 5000,
        "pages": 1000,
        "targets": 5,
    }
    assert all(f["group"] is None for f in data["findings"] if f["check"] == "stale_page")
    # A page's URL is in pages[], found_on_pages and its own findings; the links on it
    # refer to it by number (in @1 it was written once more per link on it).
    text = render_json(report)
    assert text.count(f'"{SITE}/sida/7.html"') == 1 + 1 + FRAGMENTS


def test_csv_keeps_one_row_per_finding() -> None:
    report = big_report()
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert len(rows) == len(report.findings)
    assert sum(r["target"].startswith(GONE) for r in rows) == PAGES_N * FRAGMENTS


# --- the weekly email --------------------------------------------------------------------


def test_email_lists_a_missing_page_once_with_its_places() -> None:
    prefix = f"{SITE}/internationellt/"
    findings = [
        broken(f"{prefix}p{p}", f"{GONE}#v{v}", text=f"Läs {p}") for p in range(8) for v in range(2)
    ]
    findings.append(broken(f"{prefix}p0", "https://ext.se/borta"))
    changes = compute_changes(findings, {}, now=NOW)
    pages = {f"{prefix}p{p}": Page(f"{prefix}p{p}", 200, f"Sida {p}") for p in range(8)}
    msg = build_message(ANNA, changes, META, from_addr="s@umea.se", pages=pages, now=NOW)
    assert msg["Subject"] == "2 nya fel – umea.se/internationellt v.48"  # 2 problems, 17 links
    plain, html = parts(msg)
    assert "== Nya fel (2) ==" in plain
    assert plain.count(f"Länken går till: {GONE}\n") == 1  # once, without a #fragment
    assert "Länkas 16 gånger från 8 sidor. Även på:" in plain
    assert f'    - Sida 0: {prefix}p0 "Läs 0"' in plain  # the same page, the other anchor
    assert plain.count("    - Sida ") == 5  # EMAIL_PLACES
    assert "    … och 10 till" in plain
    assert "Länkas 16 gånger från 8 sidor" in html and "… och 10 till" in html
    assert html.count("Sida 7") == 0  # past the cap: counted, not listed


def test_email_in_english() -> None:
    prefix = f"{SITE}/internationellt/"
    findings = [broken(f"{prefix}p{p}", f"{GONE}#v{p}") for p in range(3)]
    msg = build_message(
        replace(ANNA, language="en"),
        compute_changes(findings, {}, now=NOW),
        ReportMeta(run_id=1, site="umea.se", as_of=NOW.date(), started_at=NOW),
        from_addr="s@umea.se",
        now=NOW,
    )
    plain, _ = parts(msg)
    assert msg["Subject"] == "1 new problem – umea.se week 48"
    assert "Linked 3 times from 3 pages. Also on:" in plain


# --- the demo: a missing page linked through several #anchors from several pages ---------


def test_demo_shows_the_missing_page_as_one_problem(tmp_path) -> None:
    from demo.routes import AS_OF, start_demo_servers
    from tests.cli_runner import sitewatch

    with start_demo_servers() as demo:
        config = demo.write_config(tmp_path / "demo.toml")
        r = sitewatch("audit", "--config", str(config), "--as-of", AS_OF.isoformat(), cwd=tmp_path)
        planted = demo.planted()
        gone = demo.main.url("/internationellt/vanortsavtal.html")
    assert r.code == 1, r.stderr
    found = {(f["check"], f["page"], f["target"], f["detail"]) for f in r.report["findings"]}
    expected = {(p.check, p.page, p.target, p.detail) for p in planted}
    assert expected <= found, expected - found
    mine = [p for p in planted if p.target.startswith(gone)]
    assert len(mine) == 5 and len({p.page for p in mine}) == 3
    (group,) = [g for g in r.report["groups"] if g["target"] == gone]
    assert (group["links"], group["pages"], group["targets"]) == (5, 3, 5)
    html = (r.out_dir / "report.html").read_text(encoding="utf-8")
    section = _section(html, "broken_link")
    assert "linked 5 times from 3 pages" in section
    assert section.count(f'href="{gone}"') == 1  # one row in "By problem", not five
    md = (r.out_dir / "summary.md").read_text(encoding="utf-8")
    (row,) = [line for line in md.splitlines() if gone in line]
    assert "| 5 times from 3 pages, e.g. " in row
