"""Links inside PDFs (issue 16, item 4): read with pypdf in a child process, checked like
page links, found on ``<pdf>#page=N``; corrupt, encrypted, oversized PDFs are noted."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

import pytest
from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

from crawler.pages import pdf_links
from crawler.pages.pdf_links import PdfLink, PdfReader, extract_links, read_pdf
from demo.server import Route, SiteServer
from tests.cli_runner import CliResult, sitewatch, write_config
from tests.pdf_fixtures import corrupt_pdf, pdf_with_links

PDF_TYPE = "application/pdf"
CAP = 60_000


def unsized(body: bytes):
    """A route handler answering ``body`` as a PDF without Content-Length (until close)."""

    def handler(h) -> None:  # type: ignore[no-untyped-def]
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n")
        h.wfile.write(b"Connection: close\r\n\r\n" + body)
        h.wfile.flush()
        h.close_connection = True

    return handler


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="sv"><head><meta charset="utf-8"><title>{title}</title>'
        f"</head><body>{body}<footer>Senast granskad: 2026-10-01</footer></body></html>"
    )


# -- reading (in this process, and in the child) -------------------------------------


def test_extract_links_pages_texts_and_base() -> None:
    data = pdf_with_links(
        [[("Bra sida", "http://a.example/ok")], [], [("Trasig", "gone.html")]],
        base="http://b.example/dir/",
    )
    reading = extract_links(data)
    assert reading.problem == ""
    assert reading.base == "http://b.example/dir/"
    assert reading.links == (
        PdfLink(1, "http://a.example/ok", "Bra sida"),
        PdfLink(3, "gone.html", "Trasig"),
    )


def test_extract_links_problems() -> None:
    assert extract_links(corrupt_pdf()).problem == "corrupt"
    assert extract_links(b"%PDF-1.4\n").problem == "corrupt"
    locked = pdf_with_links([[("x", "http://a.example/")]], password="hemligt")
    assert extract_links(locked).problem == "encrypted"
    # An empty user password (only an owner password): readers open it, and so do we.
    open_one = extract_links(pdf_with_links([[("x", "http://a.example/")]], password=""))
    assert open_one.problem == "" and [x.uri for x in open_one.links] == ["http://a.example/"]


def test_odd_annotations_and_the_link_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Annotations that are not URI links, or whose URI is no string, are left out; past
    ``MAX_LINKS`` links the rest are counted, not kept."""
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    odd = [
        {"/S": NameObject("/URI"), "/URI": NumberObject(5)},  # a number
        {"/S": NameObject("/URI"), "/URI": NameObject("/Foo")},  # a name
        {"/S": NameObject("/Launch"), "/F": TextStringObject("evil.exe")},
        {"/S": NameObject("/GoToR"), "/F": TextStringObject("other.pdf")},
        {"/S": NameObject("/URI"), "/URI": TextStringObject(" https://ok.example/ ")},
    ]
    for action in odd:
        annot = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Annot"),
                NameObject("/Subtype"): NameObject("/Link"),
                NameObject("/Rect"): ArrayObject([NumberObject(0)] * 4),
                NameObject("/A"): DictionaryObject({NameObject(k): v for k, v in action.items()}),
            }
        )
        writer.add_annotation(0, annot)
    out = io.BytesIO()
    writer.write(out)
    assert [x.uri for x in extract_links(out.getvalue()).links] == ["https://ok.example/"]
    monkeypatch.setattr(pdf_links, "MAX_LINKS", 3)
    many = pdf_with_links([[(f"l{i}", f"https://ok.example/{i}") for i in range(5)]])
    reading = extract_links(many)
    assert [x.uri for x in reading.links] == [f"https://ok.example/{i}" for i in range(3)]
    assert reading.dropped == 2


def test_read_pdf_in_child() -> None:
    data = pdf_with_links([[("Länk", "https://example.org/å")]])
    got = asyncio.run(read_pdf(data))
    assert got.links == (PdfLink(1, "https://example.org/å", "Länk"),)
    assert asyncio.run(read_pdf(corrupt_pdf())).problem == "corrupt"


def test_read_pdf_kills_a_child_that_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    hang = "import sys, threading; sys.stdin.buffer.read(); threading.Event().wait()"
    monkeypatch.setattr(pdf_links, "CHILD", [sys.executable, "-c", hang])
    assert asyncio.run(read_pdf(b"%PDF-1.4", timeout=0.5)).problem == "timeout"


def test_reader_starts_a_new_child_after_one_that_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    """One child reads every PDF; a child killed for taking too long is replaced."""
    real = list(pdf_links.CHILD)
    hang = "import sys, threading; sys.stdin.buffer.read(); threading.Event().wait()"
    good = pdf_with_links([[("Länk", "https://example.org/")]])

    async def go() -> list[str]:
        reader = PdfReader(timeout=2.0)
        try:
            first = await reader.read(good)
            second = await reader.read(corrupt_pdf())
            monkeypatch.setattr(pdf_links, "CHILD", [sys.executable, "-c", hang])
            reader.timeout = 0.5
            hung = await reader.read(good)  # the running child is not the one that hangs
            await reader._kill()  # as after a timeout: the next read starts a new child
            stuck = await reader.read(good)
            monkeypatch.setattr(pdf_links, "CHILD", real)
            reader.timeout = 10.0
            again = await reader.read(good)
            assert reader.started == 3
            return [
                first.problem or "ok",
                second.problem,
                hung.problem or "ok",
                stuck.problem,
                again.problem or str(len(again.links)),
            ]
        finally:
            reader.close()

    assert asyncio.run(go()) == ["ok", "corrupt", "ok", "timeout", "1"]


def test_read_pdf_child_that_dies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf_links, "CHILD", [sys.executable, "-c", "raise SystemExit(9)"])
    assert asyncio.run(read_pdf(b"%PDF-1.4")).problem == "corrupt"


# -- end to end ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sites():
    main = SiteServer("127.0.0.1", name="kommun")
    ext = SiteServer("127.0.0.2", name="outside")
    M, E = main.base_url, ext.base_url
    flyer = pdf_with_links(
        [
            [("Om oss", "../om.html"), ("Kontakt", f"{M}/site/kontakt.html#saknas")],
            [("EU-kontoret", f"{E}/gone"), ("Skriv till oss", "mailto:info@umea.example")],
            [("Bevakad", f"{E}/watched/x"), ("Extern PDF", f"{E}/ext.pdf")],
        ]
    )
    index = page(
        "Start",
        """<a href="files/flyer.pdf">Flyer (pdf)</a>
<a href="files/old-flyer.pdf">Gammal flyer (pdf)</a>
<a href="files/corrupt.pdf">Trasig (pdf)</a>
<a href="files/locked.pdf">Låst (pdf)</a>
<a href="files/huge.pdf">Stor (pdf)</a>
<a href="files/unsized.pdf">Stor utan längd (pdf)</a>
<a href="download?id=3">Årsbok</a>
<a href="om.html">Om oss</a>
"""
        + f'<a href="{E}/other.pdf">Annan (pdf)</a>',
    )
    routes = {
        "/site/index.html": Route(body=index),
        "/site/om.html": Route(body=page("Om oss", "<p>ok</p>")),
        "/site/kontakt.html": Route(body=page("Kontakt", '<h2 id="finns">x</h2>')),
        "/site/files/flyer.pdf": Route(body=flyer, content_type=PDF_TYPE),
        # Redirects to the flyer: read once, its links found once.
        "/site/files/old-flyer.pdf": Route(status=301, redirect_to="/site/files/flyer.pdf"),
        "/site/files/corrupt.pdf": Route(body=corrupt_pdf(), content_type=PDF_TYPE),
        "/site/files/locked.pdf": Route(
            body=pdf_with_links([[("x", f"{E}/never1")]], password="hemligt"),
            content_type=PDF_TYPE,
        ),
        "/site/files/huge.pdf": Route(
            body=pdf_with_links([[("x", f"{E}/never2")]], padding=2 * CAP),
            content_type=PDF_TYPE,
        ),
        # Too big, and no Content-Length: cut at the cap.
        "/site/files/unsized.pdf": Route(
            handler=unsized(pdf_with_links([[("x", f"{E}/never4")]], padding=2 * CAP))
        ),
        # A crawled link without a PDF sign that answers with a PDF (in scope: read).
        "/site/download?id=3": Route(
            body=pdf_with_links([[("Årsbok", "saknas-i-arsbok.html")]]),
            content_type=PDF_TYPE,
        ),
    }
    for path, route in routes.items():
        main.add_route(path, route)
    ext_routes = {
        "/ok": Route(body=page("ok", "")),
        "/watched/x": Route(status=404, body="nope", content_type="text/plain"),
        # Linked from the flyer, outside: sniffed, not read (a PDF found in a PDF).
        "/ext.pdf": Route(body=pdf_with_links([[("y", f"{E}/never3")]]), content_type=PDF_TYPE),
        # Linked from a page in scope, outside: read.
        "/other.pdf": Route(body=pdf_with_links([[("Ok", f"{E}/ok")]]), content_type=PDF_TYPE),
    }
    for path, route in ext_routes.items():
        ext.add_route(path, route)
    for s in (main, ext):
        s.start()
    yield {"main": main, "ext": ext}
    for s in (main, ext):
        s.stop()


def run_audit(sites, tmp: Path, cap: int = CAP) -> CliResult:
    main, ext = sites["main"], sites["ext"]
    cfg = write_config(
        tmp / "site.toml",
        f"""
[site]
name = "pdf kommun"
start_urls = ["{main.url("/site/index.html")}"]

[crawl]
timeout = 5
retries = 0

[links]
watched = ["{ext.base_url}/watched/"]
pdf_max_bytes = {cap}
""",
    )
    return sitewatch("audit", "--config", str(cfg), "--as-of", "2026-11-26", cwd=tmp)


@pytest.fixture(scope="module")
def audit(sites, tmp_path_factory) -> CliResult:
    return run_audit(sites, tmp_path_factory.mktemp("pdfaudit"))


def refs(link: dict) -> list[tuple[str, str]]:
    return [(r["page"], r["text"]) for r in link["found_on"]]


def test_links_inside_pdf_are_checked(audit: CliResult, sites) -> None:
    assert audit.code == 1, audit.stderr
    M, E = sites["main"].base_url, sites["ext"].base_url
    flyer = f"{M}/site/files/flyer.pdf"
    links = audit.links()
    assert links[f"{E}/gone"]["verdict"] == "broken"
    assert links[f"{E}/gone"]["detail"] == "http_404"
    # Once, although two links lead to the flyer (one through a redirect).
    assert refs(links[f"{E}/gone"]) == [(f"{flyer}#page=2", "EU-kontoret")]
    # Relative to the PDF; in scope: checked (the page is crawled from the index anyway).
    assert links[f"{M}/site/om.html"]["verdict"] == "ok"
    assert (f"{flyer}#page=1", "Om oss") in refs(links[f"{M}/site/om.html"])
    # A fragment from a PDF is checked against the page's ids.
    frag = links[f"{M}/site/kontakt.html#saknas"]
    assert (frag["verdict"], frag["detail"]) == ("broken", "missing_fragment")
    assert links["mailto:info@umea.example"]["verdict"] == "skipped"
    # A watched target linked only from the PDF is an error, listed first.
    watched = [f for f in audit.report["findings"] if f["target"] == f"{E}/watched/x"]
    assert [(f["severity"], f["watched"], f["page"]) for f in watched] == [
        ("error", True, f"{flyer}#page=3")
    ]


def test_findings_name_the_pdf_page(audit: CliResult, sites) -> None:
    E = sites["ext"].base_url
    flyer = sites["main"].url("/site/files/flyer.pdf")
    (finding,) = [f for f in audit.report["findings"] if f["target"] == f"{E}/gone"]
    assert finding["check"] == "broken_link"
    assert finding["page"] == f"{flyer}#page=2"
    assert finding["link_text"] == "EU-kontoret"
    html = (audit.out_dir / "report.html").read_text(encoding="utf-8")
    assert "flyer.pdf#page=2" in html and "EU-kontoret" in html


def test_pdf_targets_are_checked_not_crawled(audit: CliResult, sites) -> None:
    M, E = sites["main"].base_url, sites["ext"].base_url
    links = audit.links()
    # An outside PDF linked from the flyer is sniffed, not read; its links never show.
    assert links[f"{E}/ext.pdf"]["verdict"] == "ok"
    assert f"{E}/never3" not in links
    # An outside PDF linked from a page in scope is read.
    assert refs(links[f"{E}/ok"]) == [(f"{E}/other.pdf#page=1", "Ok")]
    # A crawled URL answering with a PDF is read; its broken link is found.
    year = links[f"{M}/site/saknas-i-arsbok.html"]
    assert (year["verdict"], year["detail"]) == ("broken", "http_404")
    assert refs(year) == [(f"{M}/site/download?id=3#page=1", "Årsbok")]
    pages = audit.pages()
    assert f"{M}/site/files/flyer.pdf" not in pages
    # The PDF is no page: the links it holds are never crawled as pages.
    main = sites["main"]
    gets = [p for m, p, _ in main.requests if m == "GET" and p == "/site/kontakt.html"]
    assert len(gets) == 1


def test_unreadable_pdfs_are_noted(audit: CliResult, sites) -> None:
    M, E = sites["main"].base_url, sites["ext"].base_url
    stats = audit.report["run"]["stats"]
    assert stats["pdf_unreadable"] == {
        f"{M}/site/files/corrupt.pdf": "corrupt",
        f"{M}/site/files/locked.pdf": "encrypted",
        f"{M}/site/files/huge.pdf": "too_big",
        f"{M}/site/files/unsized.pdf": "too_big",
    }
    assert stats["pdf_unreadable_total"] == 4
    assert stats["pdfs_read"] == 3  # flyer, download?id=3, other.pdf
    links = audit.links()
    for url in ("never1", "never2", "never4"):
        assert f"{E}/{url}" not in links
    # Unreadable PDFs are still real PDFs: no missing_pdf finding for them.
    checks = {(f["check"], f["target"]) for f in audit.report["findings"]}
    assert not any(
        target.endswith(("corrupt.pdf", "locked.pdf", "huge.pdf")) for _, target in checks
    )
    assert audit.report["run"]["complete"] is True
    assert "Traceback" not in audit.stderr


def test_pdf_reading_off(sites, tmp_path: Path) -> None:
    """``links.pdf_max_bytes = 0``: PDFs are sniffed as before, their links not read."""
    out = run_audit(sites, tmp_path, cap=0)
    stats = out.report["run"]["stats"]
    assert "pdfs_read" not in stats and "pdf_unreadable" not in stats
    links = out.links()
    assert f"{sites['ext'].base_url}/gone" not in links
    assert links[sites["main"].url("/site/files/flyer.pdf")]["verdict"] == "ok"


# -- the re-run cache ------------------------------------------------------------------


def test_pdf_answered_304_keeps_its_links(tmp_path: Path) -> None:
    """A PDF in scope served with validators: the next runs ask conditionally; a 304 (and
    the revalidation pass before the crawl) replays the links the first run read."""
    www = tmp_path / "www"
    (www / "files").mkdir(parents=True)
    (www / "index.html").write_text(
        page("Start", '<a href="files/flyer.pdf">Flyer (pdf)</a>'), encoding="utf-8"
    )
    (www / "files" / "flyer.pdf").write_bytes(
        pdf_with_links([[("Borta", "../gone.html")], [("Start", "../index.html")]])
    )
    main = SiteServer("127.0.0.1", root=www, name="kommun", validators=True)
    cfg = write_config(
        tmp_path / "site.toml",
        f"""
[site]
name = "rerun pdf"
start_urls = ["{main.url("/index.html")}"]
[crawl]
obey_robots = false
[history]
db = "{tmp_path / "history.db"}"
""",
    )

    text = cfg.read_text(encoding="utf-8")

    no_replay = write_config(
        tmp_path / "no-replay.toml", text.replace("[history]\n", "[history]\nreplay = false\n")
    )

    def audit(n: int, config: Path = cfg) -> CliResult:
        out = tmp_path / f"out{n}"
        args = ("--out", str(out), "--as-of", "2026-11-27", "-q", "--format", "json")
        r = sitewatch("audit", "--config", str(config), *args, cwd=tmp_path)
        assert r.code == 1, r.stderr
        return r

    with main:
        first = audit(1)
        before = main.not_modified
        second = audit(2, no_replay)  # crawled, every answer 304
        after_second = main.not_modified
        replayed = audit(3)  # nothing changed: the whole run replayed
    flyer = main.url("/files/flyer.pdf")
    gone = main.url("/gone.html")
    for run in (first, second, replayed):
        link = run.links()[gone]
        assert (link["verdict"], link["detail"]) == ("broken", "http_404")
        assert refs(link) == [(f"{flyer}#page=1", "Borta")]
    assert first.report["run"]["stats"]["pdfs_read"] == 1
    s2 = second.report["run"]["stats"]
    assert "pdfs_read" not in s2 and s2["pdfs_not_modified"] == 1
    assert after_second - before >= 2  # the page and the PDF answered 304
    assert replayed.report["run"]["stats"]["replayed_from_run"] == 2  # run 2's id


# -- the demo ------------------------------------------------------------------------------


def test_demo_audit_finds_the_broken_link_inside_the_flyer(tmp_path: Path) -> None:
    """``make demo``'s audit: the findings are exactly the planted table's, the flyer's
    broken link among them, found on the PDF's page 2 with the text drawn over it."""
    from demo.make_flyer import BROKEN_LINK, GOOD_LINK
    from demo.routes import AS_OF, FLYER, start_demo_servers

    with start_demo_servers() as demo:
        config = demo.write_config(tmp_path / "demo.toml")
        r = sitewatch("audit", "--config", str(config), "--as-of", AS_OF.isoformat(), cwd=tmp_path)
        planted = {(p.check, p.page, p.target) for p in demo.planted()}
        flyer = demo.url("{MAIN}" + FLYER)
        broken, good = demo.url(BROKEN_LINK[1]), demo.url(GOOD_LINK[1])
    assert r.code == 1, r.stderr
    findings = r.report["findings"]
    assert {(f["check"], f["page"], f["target"]) for f in findings} == planted
    (inside,) = [f for f in findings if f["page"].startswith(flyer)]
    assert (inside["page"], inside["target"], inside["link_text"]) == (
        f"{flyer}#page=2",
        broken,
        BROKEN_LINK[0],
    )
    links = r.links()
    assert (f"{flyer}#page=1", GOOD_LINK[0]) in refs(links[good])
    assert links[good]["verdict"] == "ok"
    md = (r.out_dir / "summary.md").read_text(encoding="utf-8")
    assert f"{flyer}#page=2" in md and BROKEN_LINK[0] in md
