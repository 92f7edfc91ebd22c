"""Hostile page content: crawl a site built to attack the report, then open the HTML report
in headless Chromium and check that nothing runs, nothing is clickable that should not be,
and nothing breaks the layout.

The site carries ``<script>`` in titles, link texts and URLs, ``javascript:`` and ``data:``
URLs (plain, mixed case, with leading blanks and tabs, behind a redirect), event-handler
attributes, CR/LF, right-to-left overrides, a 1 MB link text and a 1 MB title, a 20 kB
URL, and odd encodings (UTF-16 with BOM, undeclared windows-1252, wrong declared charsets).
Every page lacks a review date, so every title reaches the report; every hostile link is
broken, so every link text and URL reaches it too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crawler.app.report_writer import write_reports
from demo.server import Route, SiteServer
from tests.browser import BROWSER, assert_inert, open_in_chromium
from tests.cli_runner import CliResult, sitewatch, write_config
from tests.report_samples import hostile_report

ROOT = Path(__file__).resolve().parent.parent
PWN = "window.__pwned=1;alert(1)"
MB = 1_000_000
TITLE = "Vänorter – Åland “citat”"


def doc(title: str, body: str, head: str = "") -> str:
    return (
        f"<!doctype html><html><head>{head}<title>{title}</title></head><body>{body}</body></html>"
    )


def utf8(title: str, body: str, head: str = '<meta charset="utf-8">') -> bytes:
    return doc(title, body, head).encode("utf-8")


# (link href as written in the page, link text as written in the page)
HOSTILE_LINKS: list[tuple[str, str]] = [
    ("missing-&lt;script&gt;.html", f"&lt;script&gt;{PWN}&lt;/script&gt;"),
    ("q.html?x=%22%3E%3Cscript%3Ewindow.__pwned=1%3C/script%3E", "query med skript"),
    ("&quot;&gt;&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;.html", "citattecken"),
    ("gone.html", '"&gt;&lt;img src=x onerror=alert(1)&gt; &lt;svg onload=alert(1)&gt;'),
    ("crlf%0D%0ASet-Cookie:%20x=1.html", "Rad ett&#13;&#10;Rad två\r\nRad tre"),
    ("rlo-\u202egnp.exe", "Läs mer \u202eFDP.exe"),
    ("huge-text.html", "Å" * MB),
    ("x" * 20_000 + ".html", "lång adress"),
    ("redir-js.html", "omdirigering till javascript:"),
    ("redir-data.html", "omdirigering till data:"),
    ("moved.html", "flyttad till skript-adress"),
    ("https://hostile.invalid/<script>" + PWN + "</script>", "trasig extern med skript"),
    ("javascript:" + PWN, "javascript-länk"),
    ("JaVaScRiPt:" + PWN, "javascript blandade versaler"),
    ("  javascript:" + PWN, "javascript med blanksteg"),
    ("java&#09;script:" + PWN, "javascript med tabb"),
    ("data:text/html,&lt;script&gt;" + PWN + "&lt;/script&gt;", "data-länk"),
    ("vbscript:msgbox(1)", "vbscript-länk"),
]

TITLE_PAGES: dict[str, tuple[bytes, str]] = {
    # name -> (body, Content-Type)
    "title-script.html": (
        utf8(f"&lt;/title&gt;&lt;script&gt;{PWN}&lt;/script&gt;", "<p>x</p>"),
        "text/html; charset=utf-8",
    ),
    "title-img.html": (
        utf8('<img src=x onerror="window.__pwned=1">', "<p>x</p>"),
        "text/html; charset=utf-8",
    ),
    "title-rlo.html": (utf8("Avtal \u202efdp.exe", "<p>x</p>"), "text/html; charset=utf-8"),
    "title-crlf.html": (utf8("Rad ett\r\nRad två&#13;&#10;tre", "<p>x</p>"), "text/html"),
    "title-huge.html": (utf8("Ä" * MB, "<p>x</p>"), "text/html; charset=utf-8"),
    "utf16.html": (doc(TITLE, "<p>utf-16</p>").encode("utf-16"), "text/html"),
    "cp1252.html": (doc(TITLE, "<p>cp1252</p>").encode("cp1252"), "text/html"),
    "header-wrong.html": (doc(TITLE, "<p>x</p>").encode("cp1252"), "text/html; charset=utf-8"),
    "meta-wrong.html": (
        doc(TITLE, "<p>x</p>", '<meta charset="iso-8859-1">').encode("utf-8"),
        "text/html",
    ),
    "unknown-charset.html": (
        doc(TITLE, "<p>x</p>").encode("utf-8"),
        "text/html; charset=x-klingon",
    ),
    "scripts.html": (
        utf8(
            "Skript på sidan",
            f'<script>{PWN}</script><iframe src="javascript:{PWN}"></iframe>'
            f'<img src="x" onerror="{PWN}"><a href="gone.html" onclick="{PWN}" '
            f'onmouseover="{PWN}">Borta</a><body onload="{PWN}">',
        ),
        "text/html; charset=utf-8",
    ),
}


def index_page() -> bytes:
    links = "\n".join(f'<a href="{href}">{text}</a>' for href, text in HOSTILE_LINKS)
    titles = "\n".join(f'<a href="{name}">sida {name}</a>' for name in TITLE_PAGES)
    return utf8(f"Start &lt;script&gt;{PWN}&lt;/script&gt;", links + titles)


@pytest.fixture(scope="module")
def site():
    s = SiteServer("127.0.0.1", name="hostile")
    s.add_route("/h/index.html", Route(body=index_page()))
    for name, (body, ctype) in TITLE_PAGES.items():
        s.add_route(f"/h/{name}", Route(body=body, content_type=ctype))
    s.add_route("/h/redir-js.html", Route(status=302, redirect_to=f"javascript:{PWN}"))
    s.add_route(
        "/h/redir-data.html",
        Route(status=302, redirect_to="data:text/html,<script>alert(1)</script>"),
    )
    s.add_route(
        "/h/moved.html",
        Route(status=301, redirect_to='/h/new-"><script>window.__pwned=1</script>.html'),
    )
    s.add_route(
        '/h/new-"><script>window.__pwned=1</script>.html',
        Route(body=utf8("Ny plats", "<p>Senast granskad: 2026-10-01</p>")),
    )
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def audit(site: SiteServer, tmp_path_factory: pytest.TempPathFactory) -> CliResult:
    tmp = tmp_path_factory.mktemp("hostile")
    cfg = write_config(
        tmp / "site.toml",
        f"""
[site]
name = "<script>{PWN}</script> \u202eevil"
start_urls = ["{site.url("/h/index.html")}"]

[crawl]
timeout = 5
retries = 0
""",
    )
    return sitewatch("audit", "--config", str(cfg), "--as-of", "2026-11-26", cwd=tmp)


def test_audit_completes(audit: CliResult) -> None:
    assert audit.code == 1, audit.stderr
    assert "Traceback" not in audit.stderr, audit.stderr
    for name in ("report.html", "report.json", "report.csv", "junit.xml", "summary.md"):
        assert (audit.out_dir / name).stat().st_size > 0


def test_report_matches_schema(audit: CliResult) -> None:
    """Hostile input never yields a verdict or detail outside the documented sets."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "docs" / "report.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(audit.report, schema)


def test_script_urls_are_skipped_never_fetched(audit: CliResult, site: SiteServer) -> None:
    links = audit.links()
    skipped = {u: link["detail"] for u, link in links.items() if link["verdict"] == "skipped"}
    scripts = [u for u in skipped if u.strip().lower().replace("\t", "").startswith("javascript:")]
    assert len(scripts) >= 3, skipped
    assert all(skipped[u] == "javascript" for u in scripts), skipped
    assert any(d == "data" for d in skipped.values()), skipped
    assert any(d == "scheme" for d in skipped.values()), skipped  # vbscript:
    # Redirects to script or data URLs are broken links, not followed.
    for name in ("redir-js.html", "redir-data.html"):
        link = links[site.url(f"/h/{name}")]
        assert (link["verdict"], link["detail"]) == ("broken", "malformed_url"), link
    fetched = {path for _, path, _ in site.requests}
    assert not any("javascript" in p.lower() or p.startswith("data:") for p in fetched)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("utf16.html", TITLE),  # BOM wins
        ("cp1252.html", TITLE),  # undeclared: windows-1252 detected
        ("unknown-charset.html", TITLE),  # unknown label: UTF-8
        ("meta-wrong.html", "VÃ¤norter â€“ Ã…land â€œcitatâ€"),  # the <meta> wins, as in browsers
    ],
)
def test_odd_encodings(audit: CliResult, site: SiteServer, name: str, expected: str) -> None:
    assert audit.pages()[site.url(f"/h/{name}")]["title"] == expected


def test_wrong_declared_charset_keeps_what_it_can(audit: CliResult, site: SiteServer) -> None:
    title = audit.pages()[site.url("/h/header-wrong.html")]["title"]
    assert title.startswith("V\ufffdnorter") and "land" in title, title


def test_control_characters_and_huge_titles(audit: CliResult, site: SiteServer) -> None:
    pages = audit.pages()
    assert "\r" not in pages[site.url("/h/title-crlf.html")]["title"]
    assert len(pages[site.url("/h/title-huge.html")]["title"]) <= 300
    huge = [link for link in audit.links().values() if link["url"].endswith("/huge-text.html")]
    assert len(huge[0]["found_on"][0]["text"]) <= 300


class TestInChromium:
    pytestmark = BROWSER

    def test_crawled_report_is_inert(self, audit: CliResult, tmp_path: Path) -> None:
        shot = tmp_path / "hostile-report.png"
        result = open_in_chromium(audit.out_dir / "report.html", shot)
        assert_inert(result)
        assert shot.stat().st_size > 0
        text = result.dom_info["text"]
        # The hostile strings are shown as text, not hidden and not run.
        assert "<script>window.__pwned=1;alert(1)</script>" in text
        assert "Läs mer FDP.exe" in text  # the override is removed, the text kept
        assert "\u202e" not in text

    def test_sample_hostile_report_is_inert(self, tmp_path: Path) -> None:
        """The renderer alone, fed worse than a crawl can produce (javascript: targets)."""
        written = write_reports(hostile_report(), tmp_path / "out", ["html"])
        result = open_in_chromium(written["html"], tmp_path / "sample-hostile.png")
        assert_inert(result)
        assert "JavaScript:alert(2)" in result.dom_info["text"]
