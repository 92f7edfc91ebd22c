"""Tests for the report renderers (reports/) and their documentation (docs/report-*)."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import errno
import io
import json
import os
import re
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from checks.models import (
    BROKEN_DETAILS,
    PDF_DETAILS,
    REDIRECT_DETAILS,
    SKIPPED_DETAILS,
    Check,
    Finding,
    Report,
    Severity,
    Verdict,
)
from checks.policy import DEFAULT_SEVERITIES
from crawler.app import report_writer as writer
from crawler.app.report_writer import write_reports
from reports import junit_report
from reports.csv_report import COLUMNS, iter_csv, render_csv, safe_cell
from reports.html_report import render_html
from reports.jinja_env import display_text, safe_href
from reports.json_report import finding_sort_key, ordered_findings, render_json, report_to_dict
from reports.junit_report import render_junit
from reports.markdown_report import MAX_BYTES, MAX_ROWS, md_cell, render_markdown
from reports.messages import finding_message
from reports.render import CHUNKED, FORMATS, render_bytes

try:
    from tests import report_samples as samples
except ImportError:  # tests/ itself on sys.path (pytest rootdir-less import)
    import report_samples as samples  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "docs" / "report.schema.json"
DOC_PATH = ROOT / "docs" / "report-format.md"


# --------------------------------------------------------------------------------------
# A small validator for the subset of JSON Schema (draft 2020-12) that report.schema.json
# uses. test_schema_uses_only_supported_keywords keeps the schema inside that subset, so
# nothing in the schema is silently ignored.

SUPPORTED_KEYWORDS = {
    "$schema",
    "$id",
    "$defs",
    "$ref",
    "$comment",
    "title",
    "description",
    "type",
    "enum",
    "const",
    "pattern",
    "format",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "minimum",
    "allOf",
    "anyOf",
    "if",
    "then",
    "else",
}
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def _format_ok(fmt: str, value: str) -> bool:
    try:
        if fmt == "date":
            dt.date.fromisoformat(value)
            return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value))
        if fmt == "date-time":
            return dt.datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False
    raise AssertionError(f"unsupported format {fmt}")


def schema_errors(instance, schema, root=None, path="$") -> list[str]:
    root = schema if root is None else root
    errs: list[str] = []
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/"), ref
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        errs += schema_errors(instance, target, root, path)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](instance) for t in types):
            return [*errs, f"{path}: {instance!r:.60} is not of type {types}"]
    if "enum" in schema and instance not in schema["enum"]:
        errs.append(f"{path}: {instance!r:.60} not in {schema['enum']}")
    if "const" in schema and instance != schema["const"]:
        errs.append(f"{path}: {instance!r:.60} != {schema['const']!r}")
    if isinstance(instance, str):
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            errs.append(f"{path}: {instance!r:.60} does not match {schema['pattern']}")
        if "format" in schema and not _format_ok(schema["format"], instance):
            errs.append(f"{path}: {instance!r:.60} is not a {schema['format']}")
    if _TYPES["number"](instance) and "minimum" in schema and instance < schema["minimum"]:
        errs.append(f"{path}: {instance} < {schema['minimum']}")
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in instance:
                errs.append(f"{path}: missing {key!r}")
        for key, value in instance.items():
            if key in props:
                errs += schema_errors(value, props[key], root, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errs.append(f"{path}: unexpected property {key!r}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errs += schema_errors(value, schema["additionalProperties"], root, f"{path}.{key}")
    if isinstance(instance, list):
        prefix = schema.get("prefixItems", [])
        for i, (value, sub) in enumerate(zip(instance, prefix, strict=False)):
            errs += schema_errors(value, sub, root, f"{path}[{i}]")
        if len(instance) < schema.get("minItems", 0):
            errs.append(f"{path}: fewer than {schema['minItems']} items")
        if len(instance) > schema.get("maxItems", len(instance)):
            errs.append(f"{path}: more than {schema['maxItems']} items")
    if isinstance(instance, list) and "items" in schema:
        for i, value in enumerate(instance):
            errs += schema_errors(value, schema["items"], root, f"{path}[{i}]")
    for sub in schema.get("allOf", []):
        errs += schema_errors(instance, sub, root, path)
    if "anyOf" in schema and all(schema_errors(instance, s, root, path) for s in schema["anyOf"]):
        errs.append(f"{path}: {instance!r:.60} matches none of anyOf")
    if "if" in schema:
        branch = "then" if not schema_errors(instance, schema["if"], root, path) else "else"
        if branch in schema:
            errs += schema_errors(instance, schema[branch], root, path)
    return errs


def _subschemas(schema: dict):
    yield schema
    for key in ("properties", "$defs"):
        for sub in schema.get(key, {}).values():
            yield from _subschemas(sub)
    for key in ("items", "if", "then", "else", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _subschemas(schema[key])
    for key in ("allOf", "anyOf", "prefixItems"):
        for sub in schema.get(key, []):
            yield from _subschemas(sub)


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


ALL_SAMPLES = {
    "sample": samples.sample_report,
    "incomplete": samples.incomplete_report,
    "empty": samples.empty_report,
    "hostile": lambda: samples.hostile_report(200_000),
    "many": samples.many_findings_report,
}


# --------------------------------------------------------------------------------------
# JSON


def test_schema_uses_only_supported_keywords(schema):
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    used = {key for sub in _subschemas(schema) for key in sub}
    assert used <= SUPPORTED_KEYWORDS, used - SUPPORTED_KEYWORDS


@pytest.mark.parametrize("name", sorted(ALL_SAMPLES))
def test_json_validates_against_schema(schema, name):
    data = json.loads(render_json(ALL_SAMPLES[name]()))
    assert schema_errors(data, schema) == []


@pytest.mark.parametrize("name", sorted(ALL_SAMPLES))
def test_json_validates_with_jsonschema_when_installed(schema, name):
    jsonschema = pytest.importorskip("jsonschema")
    validator_cls = jsonschema.Draft202012Validator
    validator_cls.check_schema(schema)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    errors = [e.message for e in validator.iter_errors(report_to_dict(ALL_SAMPLES[name]()))]
    assert errors == []


@pytest.mark.parametrize(
    ("mutate", "expect"),
    [
        (lambda d: d["links"][0].update(verdict="fine"), "not in"),
        (lambda d: d["links"][1].update(detail="http_4044"), "does not match"),
        (lambda d: d["links"][5].update(detail="ftp"), "not in"),
        (lambda d: d["links"][0].update(detail="permanent"), "does not match"),
        (lambda d: d["findings"][0].update(detail="moved"), "does not match"),
        (lambda d: d["pages"][0].update(review_date="28/03/2018"), "matches none"),
        (lambda d: d["pages"][0].update(age_days="12"), "not of type"),
        (lambda d: d["run"].update(started_at="2025-03-14T02:00:05"), "is not a date-time"),
        (lambda d: d["run"].pop("complete"), "missing 'complete'"),
        (lambda d: d["findings"][0].update(extra=1), "unexpected property"),
        (lambda d: d["findings"][2].update(detail="pdf_missing"), "does not match"),
        (lambda d: d["summary"]["by_check"].pop("redirect"), "missing 'redirect'"),
        (lambda d: d.update(schema="sitewatch/report@1"), "!="),
        (lambda d: d["links"][0]["found_on"][0].insert(0, 3), "more than 2 items"),
        (lambda d: d["links"][0]["found_on"][0].__setitem__(0, "x"), "not of type"),
        (lambda d: d["groups"][0].update(links=-1), "< 0"),
        (lambda d: d["run"].update(pages_crawled=True), "not of type"),
    ],
)
def test_schema_rejects_bad_documents(schema, mutate, expect):
    data = report_to_dict(samples.sample_report())
    assert schema_errors(data, schema) == []
    mutate(data)
    errors = schema_errors(data, schema)
    assert errors and any(expect in e for e in errors), errors


def test_schema_enums_match_models(schema):
    defs = schema["$defs"]
    assert defs["verdict"]["enum"] == [v.value for v in Verdict]
    assert defs["check"]["enum"] == [c.value for c in Check]
    assert defs["severity"]["enum"] == [s.value for s in Severity]
    assert set(defs["summary"]["properties"]["by_check"]["required"]) == {c.value for c in Check}
    link_rules = {
        r["if"]["properties"]["verdict"]["const"]: r["then"]["properties"]["detail"]
        for r in defs["link"]["allOf"]
    }
    assert set(link_rules["skipped"]["enum"]) == SKIPPED_DETAILS
    broken = re.compile(link_rules["broken"]["pattern"])
    assert all(broken.search(d) for d in [*BROKEN_DETAILS, "http_404", "http_500"])
    assert not broken.search("not_a_pdf")
    assert re.search(link_rules["unverified"]["pattern"], "http_403")
    assert all(re.search(link_rules["redirect"]["pattern"], d) for d in REDIRECT_DETAILS)
    assert re.search(link_rules["redirect"]["pattern"], "http_301")
    assert not re.search(link_rules["redirect"]["pattern"], "permanent")
    finding_rules = {
        r["if"]["properties"]["check"]["const"]: r["then"]["properties"]["detail"]["pattern"]
        for r in defs["finding"]["allOf"]
    }
    pdf = re.compile(finding_rules["missing_pdf"])
    assert all(pdf.search(d) for d in [*PDF_DETAILS, "http_404"])
    assert not pdf.search("dns")
    assert all(re.search(finding_rules["redirect"], d) for d in REDIRECT_DETAILS)


def test_json_round_trips_values():
    report = samples.sample_report()
    text = render_json(report)
    assert "Umeå" in text and "\\u00e5" not in text  # real UTF-8, not ASCII escapes
    data = json.loads(text)
    assert data == report_to_dict(report)
    assert data["schema"] == "sitewatch/report@2"

    run = data["run"]
    assert run["as_of"] == "2025-03-14"
    assert dt.datetime.fromisoformat(run["started_at"]) == samples.STARTED_AT
    assert run["started_at"].endswith("+01:00")
    assert dt.datetime.fromisoformat(run["finished_at"]) == samples.FINISHED_AT
    assert run["complete"] is True and run["incomplete_reasons"] == []
    assert run["start_urls"] == [samples.HOME_URL]
    assert run["stats"]["requests"] == 37

    pages = {p["url"]: p for p in data["pages"]}
    stale = pages[samples.STALE_URL]
    assert stale["review_date"] == "2018-03-28"
    assert dt.date.fromisoformat(stale["review_date"]) == samples.STALE_REVIEW_DATE
    assert stale["age_days"] == (samples.AS_OF - samples.STALE_REVIEW_DATE).days == 2543
    assert stale["stale"] is True
    assert stale["review_date_source"] == "text"
    assert [p["url"] for p in data["pages"] if p["stale"]] == [samples.STALE_URL]
    assert pages[samples.TAXOR_URL]["review_date"] is None
    assert pages[samples.TAXOR_URL]["age_days"] is None
    assert pages[samples.HOSTILE_URL]["title"] == samples.HOSTILE_TITLE

    links = {link["url"]: link for link in data["links"]}
    skl = links[samples.SKL_URL]
    assert skl["verdict"] == "redirect" and skl["watched"] is True
    assert skl["final_url"] == samples.SKR_URL
    assert skl["redirect_chain"] == [{"url": samples.SKL_URL, "status": 301}]
    on = data["found_on_pages"]
    assert [(on[i], text) for i, text in skl["found_on"]] == [
        (samples.POLITIK_URL, "Kommungruppsindelning (SKL)"),
        (samples.EU_URL, "Sveriges Kommuner och Landsting"),
    ]
    assert links[samples.BRUSSELS_URL]["verdict"] == "broken"
    assert links[samples.BRUSSELS_URL]["detail"] == "http_404"
    assert links[samples.FAKE_PDF_URL]["pdf_link"] is True
    assert links[samples.FORBIDDEN_URL]["verdict"] == "unverified"
    assert links[samples.MAILTO_URL] == {
        **links[samples.MAILTO_URL],
        "verdict": "skipped",
        "detail": "mailto",
        "status": None,
    }

    assert data["summary"] == {
        "error": 6,
        "warning": 3,
        "info": 1,
        "by_check": {
            "stale_page": 1,
            "missing_review_date": 2,
            "broken_link": 2,
            "redirect": 2,
            "missing_pdf": 1,
            "unverified_link": 2,
            "unlinked_page": 0,
        },
    }


def test_json_findings_are_ordered():
    data = report_to_dict(samples.sample_report())
    keys = [(not f["watched"], -Severity(f["severity"]).rank, f["page"]) for f in data["findings"]]
    assert keys == sorted(keys)
    assert [f["watched"] for f in data["findings"][:2]] == [True, True]
    assert data["findings"][2]["severity"] == "error"
    assert data["findings"][-1]["severity"] == "info"


def test_ordering_watched_then_severity_then_page():
    a = Finding(Check.REDIRECT, Severity.INFO, "https://z.example/", watched=True)
    b = Finding(Check.BROKEN_LINK, Severity.ERROR, "https://b.example/")
    c = Finding(Check.BROKEN_LINK, Severity.ERROR, "https://a.example/")
    d = Finding(Check.STALE_PAGE, Severity.WARNING, "https://a.example/")
    assert ordered_findings([d, b, c, a]) == [a, c, b, d]
    assert finding_sort_key(a) < finding_sort_key(c)


def test_json_naive_datetimes_are_written_as_utc():
    report = samples.sample_report()
    naive = replace(report.run, started_at=dt.datetime(2025, 3, 14, 1, 0))
    data = report_to_dict(replace(report, run=naive))
    assert data["run"]["started_at"] == "2025-03-14T01:00:00+00:00"


def test_json_hostile_content_is_kept_but_encodable():
    text = render_json(samples.hostile_report(1000))
    text.encode("utf-8")  # no lone surrogates left
    data = json.loads(text)
    titles = [p["title"] for p in data["pages"]]
    assert any(t.startswith("Å" * 1000) and "\ufffd" in t for t in titles)
    assert samples.HOSTILE_TITLE in titles  # data is not escaped or cut in JSON


def test_stats_are_made_json_safe():
    report = samples.sample_report()
    stats = {"when": dt.datetime(2025, 1, 1, tzinfo=dt.UTC), "codes": {404: 3}, "s": {2, 1}}
    data = report_to_dict(replace(report, run=replace(report.run, stats=stats)))
    json.dumps(data, allow_nan=False)
    assert data["run"]["stats"] == {
        "when": "2025-01-01T00:00:00+00:00",
        "codes": {"404": 3},
        "s": [1, 2],
    }


# --------------------------------------------------------------------------------------
# CSV


def _csv_rows(report: Report, out: Path) -> list[list[str]]:
    raw = write_reports(report, out, ["csv"])["csv"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM, for Excel
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def test_csv_has_bom_columns_and_one_row_per_finding(tmp_path):
    report = samples.sample_report()
    rows = _csv_rows(report, tmp_path)
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) == 1 + len(report.findings)
    body = [dict(zip(COLUMNS, r, strict=True)) for r in rows[1:]]
    expected = [f["page"] for f in report_to_dict(report)["findings"]]
    assert [r["page"] for r in body] == expected
    stale = next(r for r in body if r["check"] == "stale_page")
    assert stale["page_title"] == "Bygglov för altan och uteplats – Umeå kommun"
    assert {r["watched"] for r in body} == {"yes", "no"}
    assert body[0]["watched"] == "yes" and body[0]["check"] == "redirect"


def test_csv_neutralises_formulas(tmp_path):
    rows = _csv_rows(samples.hostile_report(100), tmp_path)
    cells = [cell for row in rows[1:] for cell in row]
    assert "'" + samples.FORMULA_TEXT in cells
    assert "'+SUM(1,2)" in cells and "'-1+1" in cells and "'@SUM(1)" in cells
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)
    assert safe_cell("Umeå") == "Umeå"
    assert safe_cell("=1+1") == "'=1+1"
    assert safe_cell("\tx") == "'\tx"


def test_csv_cuts_huge_cells(tmp_path):
    rows = _csv_rows(samples.hostile_report(100_000), tmp_path)
    assert max(len(c) for row in rows for c in row) <= 32_001


# --------------------------------------------------------------------------------------
# JUnit


def test_junit_structure_and_counts():
    report = samples.sample_report()
    root = ET.fromstring(render_junit(report).encode("utf-8"))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [f"sitewatch: {c.value}" for c in Check]
    pages = [p.url for p in report.pages]
    failing = {(f.check.value, f.page) for f in report.findings if f.severity is not Severity.INFO}
    for suite in suites:
        check = suite.get("name").removeprefix("sitewatch: ")
        cases = suite.findall("testcase")
        assert [c.get("classname") for c in cases] == pages
        assert {c.get("name") for c in cases} == {check}
        assert suite.get("tests") == str(len(pages))
        failed = [c for c in cases if c.find("failure") is not None]
        assert suite.get("failures") == str(len(failed))
        assert {(check, c.get("classname")) for c in failed} == {
            k for k in failing if k[0] == check
        }
    assert root.get("tests") == str(len(pages) * len(Check))
    assert root.get("failures") == str(len(failing)) == "9"

    broken = root.find("testsuite[@name='sitewatch: broken_link']")
    case = broken.find(f"testcase[@classname='{samples.EU_URL}']")
    failure = case.find("failure")
    assert failure.get("type") == "http_404"
    assert samples.BRUSSELS_URL in failure.text
    # info findings pass
    unverified = root.find("testsuite[@name='sitewatch: unverified_link']")
    hostile_case = unverified.find(f"testcase[@classname='{samples.HOSTILE_URL}']")
    assert hostile_case.find("failure") is None


def test_junit_groups_several_findings_into_one_failure():
    report = samples.sample_report()
    extra = Finding(Check.BROKEN_LINK, Severity.ERROR, samples.EU_URL, "https://x.example/", "dns")
    root = ET.fromstring(render_junit(replace(report, findings=(*report.findings, extra))))
    case = root.find(
        f"testsuite[@name='sitewatch: broken_link']/testcase[@classname='{samples.EU_URL}']"
    )
    assert len(case.findall("failure")) == 1
    assert case.find("failure").get("message").startswith("2 problems:")
    assert "https://x.example/" in case.find("failure").text


def test_junit_survives_hostile_content():
    text = render_junit(samples.hostile_report(100_000))
    assert "\x00" not in text and "\x0b" not in text
    root = ET.fromstring(text.encode("utf-8"))
    messages = [f.get("message") for f in root.iter("failure")]
    assert all(len(m) <= 1000 for m in messages)
    assert root.get("tests") == str(7 * len(Check))


# --------------------------------------------------------------------------------------
# Markdown


def test_markdown_counts_and_order():
    md = render_markdown(samples.sample_report())
    assert md.startswith("# sitewatch report: https://www.umea.se\n")
    assert "| error | 6 |" in md and "| warning | 3 |" in md and "| info | 1 |" in md
    assert "| broken_link | 2 |" in md
    assert "**2025-03-14**" in md
    top = md[md.index("## Top problems") :].splitlines()
    rows = [line for line in top if line.startswith(("| error", "| warning", "| info"))]
    # 10 findings, 9 problems: the watched SKL redirect is on two pages (one row).
    assert len(rows) == 9
    assert rows[0].startswith(f"| error ★ watched | redirect | {samples.SKL_URL} | http_301 ")
    assert f"| 2 times from 2 pages, e.g. {samples.POLITIK_URL} |" in rows[0]
    assert rows[1].startswith("| error | broken_link |")
    assert rows[3].startswith("| error | missing_pdf |")
    assert rows[-1].startswith("| info | unverified_link |")
    assert "incomplete" not in md
    assert "Umeå kommun på Facebook" in md


def test_markdown_escapes_cells():
    md = render_markdown(samples.many_findings_report(10))
    assert "Gammal länk 0 \\| med \\`backticks\\`" in md
    hostile = render_markdown(samples.hostile_report(1000))
    assert "<img" not in hostile and "<script" not in hostile
    assert "![" not in hostile and "](" not in hostile.replace("\\](", "")
    tables = [line for line in hostile.splitlines() if line.startswith("|")]
    assert tables and all(line.endswith(" |") for line in tables)
    # every row of the problems table has exactly the header's six cells
    header = next(line for line in tables if line.startswith("| Severity | Check"))
    problems = tables[tables.index(header) :]
    assert {_md_cells(line) for line in problems} == {6}
    assert md_cell("a|b\nc`d[e](f)<g>") == "a\\|b c\\`d\\[e\\](f)&lt;g&gt;"


def _md_cells(line: str) -> int:
    """Number of cells in a GFM table row, honouring backslash escapes."""
    pipes, i = 0, 0
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        pipes += line[i] == "|"
        i += 1
    return pipes - 1


def test_markdown_caps_rows_and_size():
    report = samples.many_findings_report(500)
    md = render_markdown(report)
    rows = [line for line in md.splitlines() if line.startswith(("| error", "| warning", "| info"))]
    assert len(rows) - 3 == MAX_ROWS  # minus the three rows of the counts table
    # 510 findings, 509 problems (the watched redirect on two pages is one)
    more = len(report.findings) - 1 - MAX_ROWS
    assert f"and {more} more problems ({more} more findings; see report.html)" in md
    assert len(render_markdown(samples.hostile_report(1_000_000)).encode()) < MAX_BYTES


def test_markdown_incomplete_notice():
    md = render_markdown(samples.incomplete_report())
    assert "This audit is incomplete" in md
    assert "> - max_pages reached (6)" in md


# --------------------------------------------------------------------------------------
# HTML


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.tags: Counter[str] = Counter()
        self.srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        for name, value in attrs:
            if name == "href":
                self.hrefs.append(value or "")
            if name == "src":
                self.srcs.append(value or "")


def _parse(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser


def test_html_escapes_and_never_links_javascript():
    html = render_html(samples.sample_report())
    assert '<meta charset="utf-8">' in html
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Evenemang i Umeå" in html
    assert "&lt;b&gt;not a real link&lt;/b&gt;" in html
    assert not re.search(r"href\s*=\s*[\"']?\s*javascript:", html, re.I)
    assert "javascript:alert(1)" in html  # shown, as text
    parsed = _parse(html)
    assert parsed.tags["script"] == 0 and parsed.srcs == []
    assert parsed.tags["link"] == 0  # no external stylesheets
    assert all(h.startswith(("https://", "http://", "#")) for h in parsed.hrefs), parsed.hrefs
    assert "Bygglov för altan och uteplats – Umeå kommun" in html


def test_html_sections_in_order_and_content():
    html = render_html(samples.sample_report())
    watched, problem, page = (html.index(f'id="{s}"') for s in ("watched", "by-problem", "by-page"))
    assert watched < problem < page
    watched_part = html[watched:problem]
    assert samples.SKL_URL in watched_part and samples.SKR_URL in watched_part
    assert "Kommun och politik – Umeå kommun" in watched_part  # the pages carrying it
    assert samples.BRUSSELS_URL not in watched_part
    # by problem: groups in editor order; redirect shows old → new
    order = [
        html.index(f'id="problem-{c}"')
        for c in (
            "broken_link",
            "missing_pdf",
            "stale_page",
            "redirect",
            "unverified_link",
            "missing_review_date",
        )
    ]
    assert order == sorted(order)
    redirect_part = html[order[3] : order[4]]
    redirect_part = redirect_part[redirect_part.index("<tbody>") :]
    assert (
        redirect_part.index(samples.SKL_URL)
        < redirect_part.index("→")
        < redirect_part.index(samples.SKR_URL)
    )
    # by page: the stale page with review date, source and age
    page_part = html[page:]
    assert "2018-03-28" in page_part and "2543 days ago" in page_part
    assert "source: <bdi>text</bdi>" in page_part
    assert "The address has moved permanently (HTTP 301)." in watched_part
    assert "Broken link (the server answered HTTP 404)." in html  # the checks' message


def test_html_messages_come_from_the_catalog_when_findings_carry_none():
    # The checks give codes only: the words are reports.messages' (one catalog).
    report = samples.sample_report()
    bare = tuple(replace(f, message="") for f in report.findings)
    html = render_html(replace(report, findings=bare))
    assert "Broken link (the server answered HTTP 404)." in html
    assert "Missing PDF: the link promises a PDF but the server sends something else." in html
    assert "Could not verify the link: the site refused the check (http_403)." in html
    assert "Last reviewed 2543 days ago; that is over the limit." in html
    assert "No review date found on the page." in html
    assert f"The link has moved permanently; update it to {samples.SKR_URL}" in html
    # the watched links' cards explain the detail code too
    assert "The address has moved permanently (HTTP 301)." in html
    # counts in the header
    assert '<div class="count error"><b>6</b>' in html


def test_html_incomplete_banner():
    complete = render_html(samples.sample_report())
    assert 'class="banner incomplete"' not in complete
    html = render_html(samples.incomplete_report())
    banner_at = html.index('class="banner incomplete"')
    assert banner_at < html.index('id="watched"')
    assert "This audit is incomplete" in html
    assert "max_pages reached (6)" in html and "timeout on 3 external hosts" in html


def test_html_survives_hostile_content():
    html = render_html(samples.hostile_report(1_000_000))
    assert len(html) < 200_000
    assert "Å" * 300 not in html and "Å" * 150 in html and "Å…" in html
    assert "\u202e" not in html and "\x00" not in html
    assert "<img" not in html and "<script" not in html.lower()
    assert not re.search(r"href\s*=\s*[\"']?\s*javascript:", html, re.I)
    assert all(h.startswith(("https://", "http://", "#")) for h in _parse(html).hrefs)
    assert "umea.se/" + "x" * 500 not in html  # the huge URL is cut in display …
    assert 'href="https://www.umea.se/' + "x" * 100 not in html  # … and not linked


def test_html_empty_report():
    html = render_html(samples.empty_report())
    assert "No problems with watched links." in html
    assert "No page has a problem." in html


def test_display_filters():
    assert display_text("a\u202eb\n\tc") == "ab c"
    assert display_text("x" * 500) == "x" * 199 + "…"
    assert len(display_text("ö" * 1_000_000)) == 200
    assert safe_href("https://www.umea.se/") == "https://www.umea.se/"
    for bad in (
        "javascript:alert(1)",
        " javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>",
        "mailto:a@b.se",
        "//evil.example/",
        "/relative",
        "https://",
        "https://x.se/\u202e",
        "",
    ):
        assert safe_href(bad) is None, bad


# --------------------------------------------------------------------------------------
# write_reports


def test_write_reports_writes_every_format(tmp_path):
    out = tmp_path / "deep" / "out"
    written = write_reports(samples.sample_report(), out, ["html", "json", "csv", "junit", "md"])
    assert {k: p.name for k, p in written.items()} == {
        "html": "report.html",
        "json": "report.json",
        "csv": "report.csv",
        "junit": "junit.xml",
        "md": "summary.md",
    }
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written.values())
    assert json.loads(written["json"].read_text(encoding="utf-8"))["summary"]["error"] == 6
    assert written["csv"].read_bytes().startswith(b"\xef\xbb\xbf")
    assert not written["json"].read_bytes().startswith(b"\xef\xbb\xbf")
    ET.parse(written["junit"])
    assert "Umeå" in written["html"].read_text(encoding="utf-8")


def test_written_files_equal_the_renderers_text(tmp_path):
    """Chunked writing (JSON, HTML, CSV) gives exactly what the string renderers give."""
    for report in (samples.sample_report(), samples.hostile_report(1000)):
        written = write_reports(report, tmp_path, list(FORMATS))
        for name, (_file, render, encoding) in FORMATS.items():
            text = written[name].read_bytes().decode(encoding)
            assert text == render(report), name
        # The streamed JSON still says exactly what the contract's dict says.
        assert json.loads(written["json"].read_text(encoding="utf-8")) == report_to_dict(report)
    assert not list(tmp_path.glob(".*.tmp"))


def test_render_bytes_is_what_the_file_holds(tmp_path):
    """reports.render is pure: a format's bytes in memory equal the file written."""
    report = samples.sample_report()
    written = write_reports(report, tmp_path, list(FORMATS))
    for name in FORMATS:
        assert render_bytes(report, name) == written[name].read_bytes(), name
    assert render_bytes(report, "csv").startswith(b"\xef\xbb\xbf")


def test_json_is_one_item_per_line():
    report = samples.sample_report()
    lines = render_json(report).splitlines()
    data = report_to_dict(report)
    for key in ("pages", "links", "findings"):
        start = lines.index(f'  "{key}": [')
        items = lines[start + 1 : start + 1 + len(data[key])]
        assert [json.loads(line.rstrip(",")) for line in items] == data[key]
    empty = replace(report, pages=(), links=(), findings=())
    assert json.loads(render_json(empty))["pages"] == []


def whole_tree_junit(report):
    """The JUnit document built as one ElementTree, then indented (how junit.xml was
    written before it was streamed one test case at a time)."""
    j = junit_report
    page_urls = list(dict.fromkeys(p.url for p in report.pages))
    listed = set(page_urls)
    failing = {}
    for f in ordered_findings(report.findings):
        if f.page not in listed:
            listed.add(f.page)
            page_urls.append(f.page)
        if f.severity in j.FAILING:
            failing.setdefault((f.check, f.page), []).append(f)
    root = ET.Element("testsuites", name="sitewatch")
    total_failures = 0
    for check in Check:
        suite = ET.SubElement(root, "testsuite", name=f"sitewatch: {check.value}")
        failures = 0
        for url in page_urls:
            case = ET.SubElement(
                suite, "testcase", classname=j.xml_text(url, j.MAX_ATTR), name=check.value
            )
            found = failing.get((check, url))
            if not found:
                continue
            failures += 1
            first = found[0]
            message = finding_message(first) or j._describe(first)
            if len(found) > 1:
                message = f"{len(found)} problems: {message}"
            failure = ET.SubElement(
                case,
                "failure",
                message=j.xml_text(message, j.MAX_ATTR),
                type=j.xml_text(first.detail or check.value, j.MAX_ATTR),
            )
            failure.text = j.xml_text("\n".join(j._describe(f) for f in found), j.MAX_BODY)
        for key, value in (("tests", len(page_urls)), ("failures", failures)):
            suite.set(key, str(value))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        total_failures += failures
    root.set("tests", str(len(page_urls) * len(Check)))
    root.set("failures", str(total_failures))
    root.set("errors", "0")
    started = j.aware(report.run.started_at)
    finished = j.aware(report.run.finished_at)
    root.set("timestamp", started.isoformat())
    root.set("time", f"{max((finished - started).total_seconds(), 0.0):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def test_streamed_junit_equals_the_whole_tree_document():
    report = samples.sample_report()
    for r in (report, samples.hostile_report(1000), replace(report, pages=(), findings=())):
        assert render_junit(r) == whole_tree_junit(r)


def test_csv_chunks_join_to_the_same_text():
    report = samples.sample_report()
    assert "".join(iter_csv(report, rows_per_chunk=2)) == render_csv(report)


def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    def boom(report):
        yield "{"
        raise RuntimeError("disk full")

    monkeypatch.setitem(CHUNKED, "json", boom)
    with pytest.raises(RuntimeError):
        write_reports(samples.sample_report(), tmp_path, ["json"])
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(params=[True, False], ids=["parallel", "serial"])
def parallel(request, monkeypatch):
    """Both ways of writing: shared with a forked child, or all in this process."""
    monkeypatch.setattr(writer, "PARALLEL", request.param)
    forks = []
    real_fork = os.fork

    def counting_fork():
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(writer.os, "fork", counting_fork)
    yield request.param
    assert len(forks) == (1 if request.param else 0)


def test_forked_and_in_process_writing_give_the_same_files(tmp_path, monkeypatch):
    for i, report in enumerate((samples.sample_report(), samples.hostile_report(1000))):
        files = {}
        for mode in (True, False):
            monkeypatch.setattr(writer, "PARALLEL", mode)
            out = tmp_path / f"{i}-{mode}"
            written = write_reports(report, out, list(FORMATS))
            assert list(written) == list(FORMATS)
            assert sorted(p.name for p in out.iterdir()) == sorted(FORMATS[n][0] for n in FORMATS)
            files[mode] = {name: path.read_bytes() for name, path in written.items()}
        assert files[True] == files[False]


def _zombie(pid: int) -> bool:
    """Whether process ``pid`` has exited (not yet reaped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.parametrize("split", ["race", "child-all", "child-stopped"])
def test_how_the_formats_are_shared_changes_no_file(tmp_path, monkeypatch, split):
    """The child takes formats from the front of ORDER, this process from the back: the
    same bytes however they end up shared, as rendering everything in this process."""
    report = samples.hostile_report(300)

    def files(written):
        return {n: p.read_bytes() for n, p in written.items()}

    monkeypatch.setattr(writer, "PARALLEL", False)
    in_process = files(write_reports(report, tmp_path / "in-process", list(FORMATS)))
    monkeypatch.setattr(writer, "PARALLEL", True)
    pending = writer.start_reports(report, tmp_path / split, list(FORMATS))
    child = pending._child
    assert child is not None
    if split == "child-all":  # this process comes late: the child has written everything
        deadline = time.monotonic() + 60
        while not _zombie(child.pid):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    elif split == "child-stopped":  # the child is stopped: this process takes the rest
        os.kill(child.pid, signal.SIGSTOP)
    try:
        got = files(
            pending.finish() if split != "child-stopped" else _finish_then_cont(pending, child)
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGCONT)
    assert got == in_process
    here = pending.rendered_here
    if split == "child-all":
        assert here == []
    elif split == "child-stopped":  # all but the Jinja2 formats, left to the child
        assert set(here) == set(writer.ORDER) - writer.JINJA_FORMATS
    assert here == [n for n in reversed(writer.ORDER) if n in here]  # from the back
    assert not list((tmp_path / split).glob(".*.tmp"))


def _finish_then_cont(pending, child):
    """finish() with the child stopped: it renders what the child has not claimed, then
    (waiting for the child) lets it go on, so that it finds nothing left and ends."""
    real_wait = child.wait

    def wait():
        os.kill(child.pid, signal.SIGCONT)
        return real_wait()

    child.wait = wait
    return pending.finish()


def test_a_child_that_stops_before_it_takes_a_format_is_no_error(tmp_path, monkeypatch):
    """Everything nobody took is rendered here after the child is gone."""
    monkeypatch.setattr(writer, "PARALLEL", True)
    monkeypatch.setattr(writer, "_child_share", lambda *a: os._exit(3))
    pending = writer.start_reports(samples.sample_report(), tmp_path, list(FORMATS))
    written = pending.finish()
    assert list(written) == list(FORMATS)
    assert sorted(pending.rendered_here) == sorted(FORMATS)
    assert not list(tmp_path.glob(".*.tmp"))


def _dead_pid() -> int:
    """A pid no process has now."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_temporary_files_of_processes_gone_are_swept_others_kept(tmp_path, parallel):
    """Killed runs leave .report.json.<pid>.tmp (or, from older versions, .report.json.tmp)
    behind: the next one removes them and writes report.json. A file of a process that
    still runs (another audit writing to the same directory) is left alone."""
    (tmp_path / ".report.json.tmp").write_text("half", encoding="utf-8")
    (tmp_path / f".report.html.{_dead_pid()}.tmp").write_text("half", encoding="utf-8")
    live = tmp_path / ".report.json.1.tmp"  # pid 1 runs as long as the machine does
    live.write_text("another audit's", encoding="utf-8")
    written = write_reports(samples.sample_report(), tmp_path, ["html", "json"])
    assert json.loads(written["json"].read_text(encoding="utf-8"))["schema"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".report.json.1.tmp",
        "report.html",
        "report.json",
    ]
    assert live.read_text(encoding="utf-8") == "another audit's"


def test_order_names_every_format():
    assert sorted(writer.ORDER) == sorted(FORMATS)
    assert set(writer.ORDER[:2]) >= writer.JINJA_FORMATS


def test_a_file_that_cannot_be_created_is_that_formats_failure(tmp_path, monkeypatch, parallel):
    """Creating json's temporary file fails (here EACCES): the formats asked for before it
    are written, it and those after it are not, and its error is raised."""
    real_claim = writer._Files.claim

    def claim(self, name, exclusive=True):
        if name == "json":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_claim(self, name, exclusive)

    monkeypatch.setattr(writer._Files, "claim", claim)
    with pytest.raises(PermissionError):
        write_reports(samples.sample_report(), tmp_path, ["csv", "html", "json", "md"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.csv", "report.html"]


class _Unpicklable(Exception):
    """Pickles, but cannot be made again from its pickle (a required argument)."""

    def __init__(self, what, where):
        super().__init__(f"{what} at {where}")


def test_an_exception_that_cannot_be_unpickled_still_fails_its_format(tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "PARALLEL", True)
    monkeypatch.setitem(CHUNKED, "html", _failing(_Unpicklable("template bug", "line 3")))
    with pytest.raises(RuntimeError, match="_Unpicklable: template bug at line 3"):
        write_reports(samples.sample_report(), tmp_path, ["json", "html", "csv"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_no_signal_for_a_child_already_reaped(tmp_path, monkeypatch):
    """Ctrl-C while this process renders what a child that stopped early left: the child
    is reaped already, so its pid (maybe another process's now) gets no SIGKILL."""
    monkeypatch.setattr(writer, "PARALLEL", True)
    monkeypatch.setattr(writer, "_child_share", lambda *a: os._exit(0))

    def interrupted(report):
        yield "<html>"
        raise KeyboardInterrupt

    monkeypatch.setitem(CHUNKED, "html", interrupted)
    pending = writer.start_reports(samples.sample_report(), tmp_path, ["html", "json"])
    pid = pending._child.pid
    kills = []
    real_kill = os.kill
    monkeypatch.setattr(writer.os, "kill", lambda p, sig: kills.append((p, sig)))
    try:
        with pytest.raises(KeyboardInterrupt):
            pending.finish()
    finally:
        monkeypatch.setattr(writer.os, "kill", real_kill)
    assert (pid, signal.SIGKILL) not in kills
    assert list(tmp_path.iterdir()) == []


def test_start_reports_lets_work_happen_between(tmp_path, parallel):
    """What run.py does: start, store the history meanwhile, then finish."""
    pending = writer.start_reports(samples.sample_report(), tmp_path, ["md", "json"])
    (tmp_path / "meanwhile").write_text("x", encoding="utf-8")
    written = pending.finish()
    assert list(written) == ["md", "json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meanwhile", "report.json", "summary.md"]


def _failing(exc):
    def boom(report):
        yield "<html>"
        raise exc

    return boom


@pytest.mark.parametrize(
    "exc",
    [RuntimeError("template bug"), OSError(errno.ENOSPC, "No space left on device")],
    ids=["bug", "disk-full"],
)
def test_a_failed_render_raises_the_same_error_either_way(tmp_path, monkeypatch, parallel, exc):
    """HTML fails (in the child when forked): the formats before it are written, its
    temporary file and those after it are gone, and the same exception is raised."""
    monkeypatch.setitem(CHUNKED, "html", _failing(exc))
    with pytest.raises(type(exc)) as info:
        write_reports(samples.sample_report(), tmp_path, ["json", "html", "csv", "md"])
    assert str(info.value) == str(exc)
    if isinstance(exc, OSError):
        assert (info.value.errno, info.value.strerror) == (exc.errno, exc.strerror)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_failed_format_waits_for_the_other_process(tmp_path, monkeypatch, parallel):
    monkeypatch.setitem(CHUNKED, "json", _failing(RuntimeError("json bug")))
    with pytest.raises(RuntimeError, match="json bug"):
        write_reports(samples.sample_report(), tmp_path, ["csv", "html", "json", "md"])
    # csv and html came before json in the asked-for order; md after it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.csv", "report.html"]


def test_a_killed_child_is_a_write_error(tmp_path, monkeypatch):
    """The child dies without a word (here SIGKILL, e.g. the OOM killer): an OSError that
    names the file and says how, and no temporary file left behind."""
    monkeypatch.setattr(writer, "PARALLEL", True)

    def killed(report):
        yield "<html>"
        os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setitem(CHUNKED, "html", killed)
    with pytest.raises(OSError, match=r"report\.html.*killed by signal 9"):
        write_reports(samples.sample_report(), tmp_path, ["json", "html", "csv"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_write_reports_subset_and_unknown(tmp_path):
    written = write_reports(samples.sample_report(), tmp_path, ["md"])
    assert list(written) == ["md"] and [p.name for p in tmp_path.iterdir()] == ["summary.md"]
    with pytest.raises(ValueError, match="pdf"):
        write_reports(samples.sample_report(), tmp_path / "x", ["json", "pdf"])
    assert not (tmp_path / "x").exists()
    assert set(FORMATS) == {"html", "json", "csv", "junit", "md"}


# --------------------------------------------------------------------------------------
# Documentation


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC_PATH.read_text(encoding="utf-8")


def test_doc_names_every_value(doc):
    values = [
        *(v.value for v in Verdict),
        *(c.value for c in Check),
        *(s.value for s in Severity),
        *BROKEN_DETAILS,
        *SKIPPED_DETAILS,
        *PDF_DETAILS,
        *REDIRECT_DETAILS,
        "http_<status>",
    ]
    missing = [v for v in values if f"`{v}`" not in doc]
    assert missing == []


def test_doc_default_severities_match_policy(doc):
    table = dict(re.findall(r"^\| `(\w+)` +\| (error|warning|info) +\|", doc, re.M))
    assert table == {c.value: s.value for c, s in DEFAULT_SEVERITIES.items()}


def test_doc_exit_codes(doc):
    for code in ("0", "1", "2"):
        assert re.search(rf"^\| `{code}` +\| ", doc, re.M), code
    assert "--fail-on" in doc


def test_doc_names_every_json_field(doc):
    data = report_to_dict(samples.sample_report())
    fields = set(data) | set(data["run"]) | set(data["summary"])
    for key in ("pages", "links", "findings", "groups"):
        fields |= set(data[key][0])
    missing = sorted(f for f in fields if f"`{f}`" not in doc)
    assert missing == []
    for column in COLUMNS:
        assert column in doc


def test_findings_from_the_real_checks_fit_the_schema(schema):
    """The schema's detail rules match what checks/evaluate.py actually produces."""
    from checks.evaluate import evaluate
    from checks.policy import Policy

    base = samples.sample_report()
    # The last page as if reached only through a sitemap (checks.sitemap_checks).
    unlinked = (base.pages[-1].url,)
    policy = Policy(watched=("skl.se",))
    findings = evaluate(base.pages, base.links, policy, samples.AS_OF, unlinked)
    report = replace(base, findings=findings)
    data = report_to_dict(report)
    assert schema_errors(data, schema) == []
    assert {f["check"] for f in data["findings"]} == {c.value for c in Check}
    assert data["findings"][0]["watched"] is True
    stale = [p["url"] for p in data["pages"] if p["stale"]]
    assert stale == [samples.STALE_URL]
    for render in (render_html, render_markdown, render_csv, render_junit):
        assert render(report)
