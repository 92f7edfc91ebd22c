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
from reports.messages import finding_message

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
    message = finding_message(f)
    if message:
        parts.append(f"– {message}")
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


#: What ElementTree's serializer writes for these characters in element text, and in an
#: attribute value (``&`` first).
_TEXT_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))
_ATTR_ESCAPES = (*_TEXT_ESCAPES, ('"', "&quot;"), ("\r", "&#13;"), ("\n", "&#10;"), ("\t", "&#09;"))


def _escape(text: str, escapes: tuple[tuple[str, str], ...]) -> str:
    """``text`` with ``escapes`` applied by ``str.replace`` in turn (``str.translate`` with a
    table took 4 times as long on a URL, 38 times on a 150-character message;
    microbenchmark)."""
    for char, entity in escapes:
        if char in text:
            text = text.replace(char, entity)
    return text


def _text(text: str) -> str:
    """``text`` escaped as ElementTree's serializer writes element text."""
    return _escape(text, _TEXT_ESCAPES)


def _attr(text: str) -> str:
    """``text`` escaped as ElementTree's serializer writes an attribute value."""
    return _escape(text, _ATTR_ESCAPES)


def _case(classname: str, check: Check, found: list[Finding] | None) -> str:
    """One test case as ElementTree would write it, indented at level 2 (``classname``
    cleaned and escaped already). Written directly: building, indenting and serializing
    an element per page and check took most of the file's rendering time; a test
    compares the document with one built as a tree."""
    name = check.value
    if not found:
        return f'<testcase classname="{classname}" name="{name}" />'
    first = found[0]
    message = finding_message(first) or _describe(first)
    if len(found) > 1:
        message = f"{len(found)} problems: {message}"
    attrs = (
        f'message="{_attr(xml_text(message, MAX_ATTR))}" '
        f'type="{_attr(xml_text(first.detail or name, MAX_ATTR))}"'
    )
    body = _text(xml_text("\n".join(_describe(f) for f in found), MAX_BODY))
    failure = f"<failure {attrs}>{body}</failure>" if body else f"<failure {attrs} />"
    return f'<testcase classname="{classname}" name="{name}">\n      {failure}\n    </testcase>'


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
    classnames = {url: _attr(xml_text(url, MAX_ATTR)) for url in page_urls}
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
            yield "\n    "
            yield _case(classnames[url], check, failing.get((check, url)))
        yield "\n  </testsuite>"
    yield "\n</testsuites>\n"


def render_junit(report: Report) -> str:
    """The ``junit.xml`` document (UTF-8, with XML declaration)."""
    return "".join(iter_junit(report))
