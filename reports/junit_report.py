"""``junit.xml``: the audit as JUnit test results for CI dashboards.

``testsuites > testsuite name="sitewatch: <check>" > testcase classname=<page> name=<check>``:
one testcase per page and check.  A testcase fails when the page has findings of that check
at error or warning severity; info findings pass.  Built with ElementTree; characters that
XML 1.0 forbids are removed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from checks.models import Check, Finding, Report, Severity
from reports.json_report import aware, ordered_findings

_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: Attribute values (failure messages) are cut to this many characters.
MAX_ATTR = 1000
#: Failure bodies are cut to this many characters.
MAX_BODY = 20_000
FAILING = (Severity.ERROR, Severity.WARNING)


def xml_text(value: str, limit: int | None = None) -> str:
    """``value`` without XML-illegal characters, optionally cut with an ellipsis."""
    text = value[: limit * 2] if limit is not None else value
    text = _XML_ILLEGAL.sub("", text)
    if limit is not None and (len(text) > limit or len(value) > limit * 2):
        text = text[: limit - 1] + "…"
    return text


def _describe(f: Finding) -> str:
    parts = [f"[{f.severity.value}]"]
    if f.watched:
        parts.append("[watched]")
    if f.target:
        parts.append(f.target)
    if f.detail:
        parts.append(f"({f.detail})")
    if f.message:
        parts.append(f"– {f.message}")
    if f.link_text:
        parts.append(f"– link text: {f.link_text}")
    return " ".join(parts)


def _collect(report: Report) -> tuple[list[str], dict[tuple[Check, str], list[Finding]]]:
    page_urls: list[str] = list(dict.fromkeys(p.url for p in report.pages))
    listed = set(page_urls)  # membership in O(1): a list made this quadratic
    failing: dict[tuple[Check, str], list[Finding]] = {}
    for f in ordered_findings(report.findings):
        if f.page not in listed:
            listed.add(f.page)
            page_urls.append(f.page)  # a finding on a page that was not listed still counts
        if f.severity in FAILING:
            failing.setdefault((f.check, f.page), []).append(f)
    return page_urls, failing


def _case(check: Check, url: str, found: list[Finding] | None) -> ET.Element:
    case = ET.Element("testcase", classname=xml_text(url, MAX_ATTR), name=check.value)
    if found:
        first = found[0]
        if len(found) == 1:
            message = first.message or _describe(first)
        else:
            message = f"{len(found)} problems: {first.message or _describe(first)}"
        failure = ET.SubElement(
            case,
            "failure",
            message=xml_text(message, MAX_ATTR),
            type=xml_text(first.detail or check.value, MAX_ATTR),
        )
        failure.text = xml_text("\n".join(_describe(f) for f in found), MAX_BODY)
    return case


def _suite_head(check: Check, tests: int, failures: int) -> ET.Element:
    suite = ET.Element("testsuite", name=f"sitewatch: {check.value}")
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", "0")
    return suite


def _open_tag(elem: ET.Element) -> str:
    ET.SubElement(elem, "x")
    text = ET.tostring(elem, encoding="unicode")
    return text[: text.index("<x />")]


def _root(report: Report, tests: int, failures: int) -> ET.Element:
    root = ET.Element("testsuites", name="sitewatch")
    root.set("tests", str(tests))
    root.set("failures", str(failures))
    root.set("errors", "0")
    started, finished = aware(report.run.started_at), aware(report.run.finished_at)
    root.set("timestamp", started.isoformat())
    duration = (finished - started).total_seconds()
    root.set("time", f"{max(duration, 0.0):.3f}")
    return root


def iter_junit(report: Report) -> Iterator[str]:
    """``junit.xml`` in chunks, one test case at a time (a tree of every page times every
    check is ~150 MB at 20,000 pages); tests compare it with a whole-tree rendering."""
    page_urls, failing = _collect(report)
    root = _root(report, len(page_urls) * len(Check), len(failing))
    yield '<?xml version="1.0" encoding="utf-8"?>\n'
    yield _open_tag(root)
    for check in Check:
        failures = sum(1 for url in page_urls if (check, url) in failing)
        suite = _suite_head(check, len(page_urls), failures)
        yield "\n  "
        if not page_urls:
            yield ET.tostring(suite, encoding="unicode")
            continue
        yield _open_tag(suite)
        for url in page_urls:
            case = _case(check, url, failing.get((check, url)))
            ET.indent(case, level=2)
            yield "\n    "
            yield ET.tostring(case, encoding="unicode")
        yield "\n  </testsuite>"
    yield "\n</testsuites>\n"


def render_junit(report: Report) -> str:
    """The ``junit.xml`` document (UTF-8, with XML declaration)."""
    return "".join(iter_junit(report))
