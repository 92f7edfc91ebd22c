"""checks/ gives codes, reports/messages.py the words (issue 17).

* No user-facing prose in ``checks/``: see :func:`prose_in` for the rule.
* Every (check, detail) the checks can produce has a message in Swedish and English.
* Detail codes and review-date sources are closed StrEnums whose values are report.json's.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
import string
from pathlib import Path

import lxml.html
import pytest

from checks.evaluate import evaluate
from checks.freshness import SOURCES, find_review_date
from checks.models import (
    BROKEN_DETAILS,
    PDF_DETAILS,
    REDIRECT_DETAILS,
    SKIPPED_DETAILS,
    Check,
    DateSource,
    Detail,
    Finding,
    LinkRef,
    LinkResult,
    Page,
    RedirectHop,
    Report,
    Severity,
    Verdict,
    http_detail,
    http_status,
    stale_age,
    stale_detail,
)
from checks.policy import Policy
from checks.sitemap_checks import SITEMAP_LASTMOD, with_lastmod
from checks.verdicts import Probe, judge, pdf_problem
from reports import messages
from reports.json_report import render_json

try:
    from tests import report_samples as samples
except ImportError:  # run from tests/
    import report_samples as samples  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
CHECKS = sorted((ROOT / "checks").glob("*.py"))

#: Two words of letters separated by one space: the mark of a sentence for people.
_WORDS = re.compile(r"[^\W\d_]{2,} [^\W\d_]{2,}")


def _docstrings(tree: ast.AST) -> set[int]:
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, kinds) and node.body and isinstance(node.body[0], ast.Expr):
            value = node.body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                out.add(id(value))
    return out


def _exempt(tree: ast.AST) -> set[int]:
    """Strings that are not for report readers: docstrings, the text of an exception raised
    for a programmer or for the operator's config (the crawler shows it as a clear
    message), and regular expressions (page words the checks look for)."""
    out = _docstrings(tree)
    for node in ast.walk(tree):
        regex = (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "re"
        )
        if isinstance(node, ast.Raise) or regex:
            out |= {id(n) for n in ast.walk(node) if isinstance(n, ast.Constant)}
    return out


def prose_in(path: Path) -> list[str]:
    """String constants (f-string parts included) in ``path`` that read as a sentence:
    two words of letters separated by a space, outside the exemptions of :func:`_exempt`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    exempt = _exempt(tree)
    return [
        f"{path.name}:{node.lineno}: {node.value[:60]!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in exempt
        and _WORDS.search(node.value)
    ]


def test_checks_hold_no_prose():
    assert CHECKS, "checks/ not found"
    found = [hit for path in CHECKS for hit in prose_in(path)]
    assert found == []


def test_the_prose_rule_catches_a_message(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        '"""Docstrings are fine."""\n'
        "import re\n"
        "WORDS = re.compile('next review due')\n"
        "def f(x):\n"
        "    if x:\n"
        "        raise ValueError(f'owner {x}: invalid email address')\n"
        "    return f'Broken link ({x}).'\n",
        encoding="utf-8",
    )
    assert prose_in(bad) == ["bad.py:7: 'Broken link ('"]


# --------------------------------------------------------------------------- the codes

A = "https://www.umea.se/a.html"
T = "https://x.example/t"
AS_OF = dt.date(2026, 12, 5)


def _link(verdict: Verdict, detail: str, **kw: object) -> LinkResult:
    url = f"{T}?{detail}{kw.get('pdf_problem', '')}"
    return LinkResult(url, verdict, detail, found_on=(LinkRef(A, "text"),), final_url=T, **kw)


def produced_findings() -> tuple[Finding, ...]:
    """The findings the checks give for every verdict and detail they can produce."""
    statuses = (301, 308, 400, 403, 404, 410, 429, 500, 503, 599)
    links = [_link(Verdict.BROKEN, d) for d in BROKEN_DETAILS]
    links += [_link(Verdict.BROKEN, http_detail(s)) for s in statuses if s >= 400]
    links += [_link(Verdict.REDIRECT, d) for d in REDIRECT_DETAILS]
    links += [_link(Verdict.REDIRECT, http_detail(s)) for s in (301, 308)]
    links += [_link(Verdict.UNVERIFIED, http_detail(s)) for s in (403, 429, 999)]
    pdf = [*PDF_DETAILS, *(http_detail(s) for s in statuses if s >= 400)]
    links += [_link(Verdict.OK, "", pdf_link=True, pdf_problem=d) for d in pdf]
    links += [_link(Verdict.SKIPPED, d) for d in SKIPPED_DETAILS]  # no finding
    today = AS_OF - dt.timedelta(days=1)
    pages = [
        Page(A, 200),
        Page(f"{A}?old", 200, review_date=dt.date(2018, 3, 28)),
        Page(f"{A}?fresh", 200, review_date=today),
    ]
    unlinked = [Page(f"{A}?u{s}", s) for s in (200, 404, 500)]
    unlinked += [Page(f"{A}?e{d}", None, error=d) for d in BROKEN_DETAILS]
    pages += unlinked
    return evaluate(pages, links, Policy(), AS_OF, unlinked=[p.url for p in unlinked])


def _key(lang: str, f: Finding) -> tuple[str, str]:
    status = http_status(f.detail)
    code = "" if status is None else str(status)
    table = messages.MESSAGES[lang]
    return next(k for k in messages._candidates(f.check.value, f.detail, code) if k in table)


def test_every_produced_code_has_a_message_in_both_languages():
    found = produced_findings()
    assert {f.check for f in found} == set(Check)  # every check is exercised
    assert all(f.message == "" for f in found)  # codes only
    for f in found:
        for lang in messages.LANGUAGES:
            text = messages.catalog_message(lang, f)
            assert text, (lang, f.check, f.detail)
            assert "{" not in text and "?" not in text, (lang, text)
            _, detail = _key(lang, f)
            # Details of their own get words of their own, not a catch-all.
            if f.check in (Check.BROKEN_LINK, Check.MISSING_PDF) and f.detail:
                assert detail not in ("", "*"), (lang, f.detail)
    sv = {messages.catalog_message("sv", f) for f in found}
    en = {messages.catalog_message("en", f) for f in found}
    assert not sv & en  # really two languages


def test_both_languages_have_the_same_keys_and_placeholders():
    sv, en = messages.MESSAGES["sv"], messages.MESSAGES["en"]
    assert sv.keys() == en.keys()
    fields = string.Formatter()
    for key in sv:
        names = [{n for _, n, _, _ in fields.parse(t[key]) if n} for t in (sv, en)]
        assert names[0] == names[1], key
    assert {Check(c) for c, _ in sv} == set(Check)


def test_report_json_message_comes_from_the_catalog():
    found = produced_findings()
    doc = json.loads(render_json(Report(samples.sample_report().run, (), (), found)))
    assert len(doc["findings"]) == len(found)
    by_key = {(f.check.value, f.page, f.target): f for f in found}
    for row in doc["findings"]:
        f = by_key[(row["check"], row["page"], row["target"])]
        assert row["message"] == messages.catalog_message("en", f)
        assert row["detail"] == f.detail
    stale = next(r for r in doc["findings"] if r["check"] == "stale_page")
    days = (AS_OF - dt.date(2018, 3, 28)).days
    assert stale["detail"] == f"{days}_days"
    assert stale["message"] == f"Last reviewed {days} days ago; that is over the limit."


def test_a_message_read_back_from_history_wins():
    f = Finding(Check.BROKEN_LINK, Severity.ERROR, A, target=T, detail="dns", message="old")
    assert messages.finding_message(f) == "old"
    bare = Finding(Check.BROKEN_LINK, Severity.ERROR, A, target=T, detail="http_404")
    assert messages.finding_message(bare) == "Broken link (the server answered HTTP 404)."
    assert messages.finding_message(bare, "sv") == "Trasig länk (servern svarade HTTP 404)."


# --------------------------------------------------------------------------- the enums


def test_detail_sets_are_enum_members_with_the_schema_values():
    for group in (BROKEN_DETAILS, SKIPPED_DETAILS, REDIRECT_DETAILS, PDF_DETAILS):
        assert all(isinstance(d, Detail) for d in group)
    assert set(Detail) == BROKEN_DETAILS | SKIPPED_DETAILS | REDIRECT_DETAILS | PDF_DETAILS
    assert json.dumps([Detail.MISSING_FRAGMENT]) == '["missing_fragment"]'


@pytest.mark.parametrize("status", [100, 200, 301, 404, 599, 999])
def test_http_detail_round_trip(status):
    assert http_detail(status) == f"http_{status}"
    assert http_status(http_detail(status)) == status


@pytest.mark.parametrize(
    "detail", ["", "dns", "http_", "http_40", "http_4044", "http_abc", "x_404"]
)
def test_http_status_of_other_details(detail):
    assert http_status(detail) is None


def test_stale_detail_round_trip():
    assert stale_detail(400) == "400_days"
    assert stale_age("400_days") == 400
    assert stale_age("http_404") is None and stale_age("_days") is None


def test_judged_details_are_enum_members_or_http():
    probes = [
        Probe(T, error="dns"),
        Probe(T),
        Probe(T, status=404),
        Probe(T, status=200, soft_404=True),
        Probe(T, status=200, refresh_to=f"{T}/2"),
        Probe(T, status=200, content_type="text/html", ids=frozenset()),
    ]
    details = [judge(p, "gone", Policy())[1] for p in probes]
    details += [pdf_problem(Probe(T, status=200, head_bytes=b"<html>")) or ""]
    hop = (RedirectHop(T, 301),)
    details += [pdf_problem(Probe(T, status=200, content_type="text/html", chain=hop)) or ""]
    assert details[:2] == [Detail.DNS, Detail.CONNECTION]
    for d in details:
        assert d in set(Detail) or http_status(d) is not None, d


def test_date_sources_are_the_enum():
    assert set(SOURCES) | {SITEMAP_LASTMOD} == set(DateSource)
    assert all(isinstance(s, DateSource) for s in SOURCES)
    page = lxml.html.fromstring(
        '<html><head><meta name="dcterms.modified" content="2024-01-02"></head>'
        "<body><p>x</p></body></html>"
    )
    found = find_review_date(page, "Tue, 03 Jan 2023 10:00:00 GMT")
    assert found is not None and found.source is DateSource.META_DCTERMS_MODIFIED
    assert json.dumps(found.source) == '"meta:dcterms.modified"'
    weak = find_review_date(None, "Tue, 03 Jan 2023 10:00:00 GMT")
    assert weak is not None and weak.source is DateSource.HTTP_LAST_MODIFIED
    sitemap = with_lastmod(weak, dt.date(2024, 5, 1))
    assert sitemap is not None and sitemap.source is DateSource.SITEMAP_LASTMOD
    assert sitemap.source == "sitemap:lastmod"
