"""bench/verify_findings.py: findings of a report checked against real files on disk."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOST = "http://127.0.0.1:8123"
SITE = f"{HOST}/site/"


def load_verifier() -> ModuleType:
    path = ROOT / "bench" / "verify_findings.py"
    spec = importlib.util.spec_from_file_location("bench_verify_findings", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


vf = load_verifier()

BYTE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>Byte</title></head><body>
<section id="&lt;init&gt;(byte[])"><h3>Byte</h3></section>
<h2 id="kontakt-och-öppettider">Kontakt</h2>
<p id="a b">space</p><p id="a+b">plus</p><p id="Init">case</p>
<a name="legacy"></a>
</body></html>"""


@pytest.fixture
def www(tmp_path: Path) -> Path:
    """A docroot as realsites.sh builds it: www/site/... with real files and symlinks."""
    site = tmp_path / "www" / "site"
    site.mkdir(parents=True)
    (site / "Byte.html").write_text(BYTE, encoding="utf-8")
    (site / "index.html").write_text("<html><body><a href='Byte.html'>B</a></body></html>")
    (site / "old.html").write_text(
        '<html><head><META HTTP-EQUIV="Refresh" CONTENT="0; URL=\'Byte.html\'"></head></html>'
    )
    (site / "real.html").write_text("<html><body>here</body></html>")
    (site / "öppet.html").write_text("<html><body>open</body></html>", encoding="utf-8")
    (site / "license.html").write_text("<html><body>license</body></html>")
    (site / "changelog.html.gz").write_bytes(b"\x1f\x8b")
    (site / "sub").mkdir()
    os.symlink("../../../nowhere/jquery.js", site / "jquery.js")
    return tmp_path / "www"


def link(url: str, verdict: str, detail: str, pages: list[str]) -> dict[str, Any]:
    broken = verdict == "broken" and detail.startswith("http_")
    status = 404 if broken else (200 if verdict != "skipped" else None)
    moved = verdict == "redirect"
    return {
        "url": url,
        "verdict": verdict,
        "detail": detail,
        "status": status,
        "final_url": url + "/" if moved else url,
        "redirect_chain": [{"url": url, "status": 301}] if moved else [],
        "content_type": "text/html" if status else "",
        "internal": url.startswith(SITE),
        "watched": False,
        "pdf_link": False,
        "found_on": [[PAGES.index(p), "x"] for p in pages],
    }


def finding(page: str, target: str, detail: str, check: str = "broken_link") -> dict[str, Any]:
    return {
        "check": check,
        "severity": "error",
        "page": page,
        "target": target,
        "detail": detail,
        "message": "Broken link.",
        "link_text": "x",
        "watched": False,
    }


# (link URL, verdict, detail) as sitewatch reported them; each is found on two pages.
LINKS = [
    (f"{SITE}Byte.html#%3Cinit%3E(byte%5B%5D)", "broken", "missing_fragment"),
    (f"{SITE}Byte.html#kontakt-och-%C3%B6ppettider", "broken", "missing_fragment"),
    (f"{SITE}Byte.html#a%20b", "broken", "missing_fragment"),
    (f"{SITE}Byte.html#a+b", "broken", "missing_fragment"),
    (f"{SITE}Byte.html#top", "broken", "missing_fragment"),
    (f"{SITE}old.html#legacy", "broken", "missing_fragment"),
    (f"{SITE}Byte.html#gone", "broken", "missing_fragment"),
    (f"{SITE}Byte.html#INIT", "broken", "missing_fragment"),
    (f"{SITE}Byte.html#%FF", "broken", "missing_fragment"),
    (f"{SITE}real.html", "broken", "http_404"),
    (f"{SITE}%C3%B6ppet.html", "broken", "http_404"),
    (f"{SITE}changelog.html#s1", "broken", "http_404"),
    (f"{SITE}changelog.html#s2", "broken", "http_404"),
    (f"{SITE}jquery.js", "broken", "http_404"),
    (f"{SITE}sub/", "broken", "http_404"),
    (f"{SITE}nothere/page.html", "broken", "http_404"),
    (f"{HOST}/license.html", "broken", "http_404"),
    ("http://example.org/x", "skipped", "excluded"),
    (f"{SITE}sub", "redirect", "http_301"),
    (f"{SITE}old.html", "redirect", "http_301"),
    (f"{SITE}real.html#r", "redirect", "http_301"),
    (f"{SITE}Byte.html", "ok", ""),
]
PERCENT_FRAGMENTS = [
    "Byte.html#%3Cinit%3E(byte%5B%5D)",
    "Byte.html#a%20b",
    "Byte.html#kontakt-och-%C3%B6ppettider",
]
PAGES = [f"{SITE}index.html", f"{SITE}real.html"]


def make_report(start: str = f"{SITE}index.html", pages_crawled: int = 2) -> dict[str, Any]:
    links = [link(u, v, d, PAGES) for u, v, d in LINKS]
    findings = [finding(p, u, d) for u, v, d in LINKS if v == "broken" for p in PAGES]
    findings += [finding(PAGES[0], u, d, "redirect") for u, v, d in LINKS if v == "redirect"]
    return {
        "schema": "sitewatch/report@2",
        "found_on_pages": PAGES,
        "run": {
            "site": "",
            "started_at": "2026-12-01T02:00:05+00:00",
            "finished_at": "2026-12-01T02:00:06+00:00",
            "as_of": "2026-12-01",
            "start_urls": [start],
            "scopes": [SITE],
            "complete": True,
            "incomplete_reasons": [],
            "pages_crawled": pages_crawled,
            "links_checked": len(links),
            "stats": {},
        },
        "pages": [
            {
                "url": p,
                "status": 200,
                "title": "t",
                "final_url": p,
                "review_date": None,
                "review_date_source": None,
                "age_days": None,
                "stale": False,
                "depth": 0,
            }
            for p in PAGES[:pages_crawled]
        ],
        "links": links,
        "findings": findings,
        "summary": {
            "error": len(findings),
            "warning": 0,
            "info": 0,
            "by_check": {
                "stale_page": 0,
                "missing_review_date": 0,
                "broken_link": len(findings) - 3,
                "redirect": 3,
                "missing_pdf": 0,
                "unverified_link": 0,
            },
        },
    }


def _without_required(schema: Any) -> Any:
    """The schema minus its required lists: checks names and types, tolerates new fields."""
    if isinstance(schema, dict):
        return {k: _without_required(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [_without_required(v) for v in schema]
    return schema


def test_hand_made_report_is_in_the_real_format() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "docs" / "report.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(make_report(), _without_required(schema))


def test_fragments_are_checked_as_a_browser_reads_them(www: Path) -> None:
    pages = vf.Pages()

    def verdict(fragment_url: str) -> tuple[str, str]:
        v = vf.classify_fragment(SITE + fragment_url, www, pages)
        return v.status, v.reason

    assert verdict("Byte.html#%3Cinit%3E(byte%5B%5D)") == ("contradicted", "percent-encoding")
    assert verdict("Byte.html#kontakt-och-%C3%B6ppettider") == ("contradicted", "percent-encoding")
    assert verdict("Byte.html#a%20b") == ("contradicted", "percent-encoding")
    assert verdict("Byte.html#a+b") == ("contradicted", "other")  # + is not a space here
    assert verdict("Byte.html#top") == ("contradicted", "other")
    assert verdict("Byte.html#legacy") == ("contradicted", "other")  # <a name>
    assert verdict("old.html#legacy") == ("contradicted", "meta-refresh")
    assert verdict("Byte.html#gone") == ("confirmed", "")
    assert verdict("Byte.html#%FF") == ("confirmed", "")  # not UTF-8: no decoded match
    assert vf.classify_fragment(SITE + "Byte.html#INIT", www, pages).note == (
        "an id differs only in letter case"
    )
    assert vf.classify_fragment(SITE + "gone.html#x", www, pages).note == (
        "target page missing on disk"
    )


def test_broken_targets_are_checked_on_disk(www: Path) -> None:
    def verdict(url: str) -> tuple[str, str, str]:
        v = vf.classify_target(url, www, [SITE])
        return v.status, v.reason, v.note

    assert verdict(SITE + "real.html") == ("contradicted", "other", "file exists")
    assert verdict(SITE + "%C3%B6ppet.html")[:2] == ("contradicted", "percent-encoding")
    assert verdict(SITE + "changelog.html") == (
        "confirmed",
        "",
        "only a compressed copy (.gz) on disk",
    )
    status, _, note = verdict(SITE + "jquery.js")
    assert status == "confirmed" and note == "dangling symlink -> ../../../nowhere/jquery.js"
    assert verdict(SITE + "sub/")[2] == "directory without index.html"
    assert verdict(SITE + "nothere/page.html")[2] == "absent (its directory is not on disk either)"
    status, _, note = verdict(HOST + "/license.html")
    assert status == "confirmed" and "the file is at /site/license.html" in note
    # A missing_pdf whose address answered: the file is read for its PDF signature.
    (www / "site" / "doc.pdf").write_bytes(b"%PDF-1.7\n")
    assert vf.classify_pdf(SITE + "flyer.pdf", www).status == "confirmed"
    assert vf.classify_pdf(SITE + "real.html", www).note == "the file on disk is not a PDF"
    assert vf.classify_pdf(SITE + "doc.pdf", www).status == "contradicted"
    # Dot segments never climb above the docroot (as URL parsing and nginx resolve them).
    assert vf.url_to_path(SITE + "../../etc/passwd", www) == www / "etc" / "passwd"


def test_main_writes_the_summary(www: Path, tmp_path: Path, capsys) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps(make_report()), encoding="utf-8")
    root = tmp_path / "root.json"
    root.write_text(json.dumps(make_report(f"{SITE}old.html", 1)), encoding="utf-8")
    summary = tmp_path / "summary.json"
    rc = vf.main(
        ["--www", str(www), "--summary", str(summary), "--details", f"s={report}", f"r={root}"]
    )
    assert rc == 0
    result = json.loads(summary.read_text())
    s = result["s"]
    # Broken targets are URLs without fragment: changelog.html#s1 and #s2 are one target.
    assert s["broken_targets"] == {
        "total": 7,
        "confirmed": 5,
        "contradicted": 2,
        "link_urls": 8,
        "contradicted_by_reason": {"other": 1, "percent-encoding": 1},
    }
    assert s["broken_target_findings"]["total"] == 16
    assert s["fragment_targets"] == {
        "total": 9,
        "confirmed": 3,
        "contradicted": 6,
        "contradicted_by_reason": {"meta-refresh": 1, "other": 2, "percent-encoding": 3},
    }
    assert s["fragment_findings"]["confirmed"] == 6
    assert s["outside_links"] == {"skipped/excluded": 1}
    # Redirects nginx makes (a directory without its slash) or a meta refresh explain
    # themselves; a redirect to a plain file is unexplained.
    assert s["other_link_findings"] == {
        "total": 3,
        "confirmed": 2,
        "contradicted": 1,
        "contradicted_by_reason": {"other": 1},
    }
    assert [i["url"] for i in s["contradicted_examples"]["percent-encoding"]] == sorted(
        [SITE + "%C3%B6ppet.html"] + [SITE + u for u in PERCENT_FRAGMENTS]
    )
    assert s["start_meta_refresh_not_followed"] is False
    assert result["r"]["start_meta_refresh_not_followed"] is True
    rows = json.loads((tmp_path / "verified.json").read_text())
    assert len(rows) == len(make_report()["findings"])
    out = capsys.readouterr().out
    assert "DEAD END" in out and "only a compressed copy (.gz) on disk" in out


def test_bad_report_is_a_clear_message(www: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "nope"}')
    assert vf.main(["--www", str(www), f"x={bad}"]) == 2
    assert "not a sitewatch report.json" in capsys.readouterr().err
    assert vf.main(["--www", str(www), f"x={tmp_path / 'missing.json'}"]) == 2
