"""End to end: the real ``sitewatch audit`` against fixture sites on 127.0.0.1-127.0.0.4.

127.0.0.1 is the municipality's site; 127.0.0.2 and 127.0.0.3 stand in for outside sites
(the region's EU office, SKL/SKR, twin towns). One audit runs per module; each test reads
its report back.
"""

from __future__ import annotations

import datetime as dt
import socket
import struct
from email.utils import format_datetime
from pathlib import Path

import pytest

from demo.server import Route, SiteServer
from tests.cli_runner import CliResult, sitewatch, write_config

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def page(title: str, body: str, head: str = "", charset: str = "utf-8") -> str:
    return (
        f'<!doctype html><html lang="sv"><head><meta charset="{charset}">'
        f"<title>{title}</title>{head}</head><body>{body}</body></html>"
    )


def closed_port(host: str) -> int:
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def reset_connection(h: object) -> None:
    conn = h.connection  # type: ignore[attr-defined]
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    h.close_connection = True  # type: ignore[attr-defined]


# (file name, HTML snippet, expected date, expected source, extra response headers)
DATE_PAGES: list[tuple[str, str, str, str, str, dict[str, str]]] = [
    ("d01", "", "<p>Sidan har granskats 2018-03-28</p>", "2018-03-28", "text", {}),
    ("d02", "", "<footer>Senast granskad: 2026-02-03</footer>", "2026-02-03", "text", {}),
    ("d03", "", "<p>Granskad: 13.12.2013</p>", "2013-12-13", "text", {}),
    ("d04", "", "<p>Senast uppdaterad: 12 mars 2024</p>", "2024-03-12", "text", {}),
    ("d05", "", "<p>Uppdaterad 24/10 2023</p>", "2023-10-24", "text", {}),
    ("d06", "", "<p>Publicerad 20 oktober 2021</p>", "2021-10-20", "text", {}),
    ("d07", "", "<p>Denna sida publicerades: 2015-11-16</p>", "2015-11-16", "text", {}),
    ("d08", "", "<p>Publicerad den 13 december 2013</p>", "2013-12-13", "text", {}),
    (
        "d09",
        "",
        "<p>Page last reviewed: 15 March 2021</p><p>Next review due: 15 March 2024</p>",
        "2021-03-15",
        "text",
        {},
    ),
    ("d10", "", "<p>Last reviewed 2 May 2025</p>", "2025-05-02", "text", {}),
    ("d11", "", "<p>Last updated on Nov 26, 2026</p>", "2026-11-26", "text", {}),
    ("d12", "", "<p>Last updated 10 September 2015</p>", "2015-09-10", "text", {}),
    (
        "d13",
        "",
        '<footer><time datetime="2025-06-01">1 juni</time></footer>',
        "2025-06-01",
        "time",
        {},
    ),
    (
        "d14",
        '<script type="application/ld+json">'
        '{"@type":"WebPage","dateModified":"2025-04-02T10:00:00+02:00"}</script>',
        "<p>Ingen rad här.</p>",
        "2025-04-02",
        "json-ld",
        {},
    ),
    (
        "d15",
        '<meta property="article:modified_time" content="2024-12-24T08:00:00Z">',
        "<p>x</p>",
        "2024-12-24",
        "meta:article:modified_time",
        {},
    ),
    (
        "d16",
        '<meta name="DC.date.modified" content="2023-01-31">',
        "<p>x</p>",
        "2023-01-31",
        "meta:dcterms.modified",
        {},
    ),
    (
        "d17",
        '<meta name="dcterms.modified" content="2022-02-02">',
        "<p>x</p>",
        "2022-02-02",
        "meta:dcterms.modified",
        {},
    ),
    (
        "d18",
        "",
        "<p>I februari 1997 antog kommunfullmäktige mål, avtal tecknat 2019-05-01.</p>",
        "2020-07-01",
        "http:last-modified",
        {"Last-Modified": format_datetime(dt.datetime(2020, 7, 1, 12, tzinfo=dt.UTC), usegmt=True)},
    ),
]


@pytest.fixture(scope="module")
def sites():
    main = SiteServer("127.0.0.1", name="kommun")
    ext = SiteServer("127.0.0.2", name="eu-office")
    partner = SiteServer("127.0.0.3", name="partner")
    refused_port = closed_port("127.0.0.4")
    E, P = ext.base_url, partner.base_url
    tls_url = f"https://127.0.0.3:{partner.port}/"

    date_links = "".join(f'<a href="dates/{n}.html">datum {n}</a> ' for n, *_ in DATE_PAGES)
    index = page(
        "Internationellt arbete",
        f"""
<h1>Internationellt arbete</h1>
<a href="fresh.html">Färsk sida</a>
<a href="nodate.html">Utan datum</a>
<a href="missing.html">Saknad sida</a>
<a href="soft.html">Mjuk 404</a>
<a href="fresh.html#kontakt">Kontakt (finns)</a>
<a href="fresh.html#saknas">Kontakt (saknas)</a>
<a href="latin1.html">Latin-1</a>
<a href="%C3%A5terv%C3%A4xt.html">Återväxt (kodad)</a>
<a href="vänorter lista.html">Vänorter (okodad)</a>
<a href="loop1.html">Slinga</a>
<a href="chain0.html">Lång kedja</a>
<a href="temp.html">Tillfällig omdirigering</a>
<a href="http://[bad">Trasig adress</a>
<a href="mailto:info@umea.example">E-post</a>
<a href="tel:+46901610000">Ring</a>
<a href="javascript:void(0)">Skript</a>
<a href="excluded/page.html">Undantagen</a>
<a href="/outside/page.html">Utanför</a>
<a href="private/page.html">Privat</a>
<a href="files/flyer.pdf">Flyer (pdf)</a>
<a href="files/rollup.pdf">Rollup (pdf)</a>
<a href="files/gone.pdf">Broschyr (pdf)</a>
<a href="files/login.pdf">Intern rapport (pdf)</a>
<a href="download?id=7">Årsrapport (pdf)</a>
<a href="getfile?id=8">Bilaga</a>
<a href="error500.html">Serverfel</a>
<a href="reset.html">Återställd anslutning</a>
<img src="logo.png" alt="Logotyp"><img srcset="logo.png 1x, missing-2x.png 2x" alt="">
<link rel="stylesheet" href="style.css">
<a href="{E}/skl/eu/">Sveriges kommuner och Landsting (SKL) och EU</a>
<a href="{E}/northsweden/">North Sweden - EU-kontor i Bryssel</a>
<a href="{E}/head405">HEAD 405</a>
<a href="{E}/head403">HEAD 403</a>
<a href="{E}/ratelimited">Begränsad</a>
<a href="{E}/forbidden">Förbjuden</a>
<a href="{E}/linkedin">LinkedIn</a>
<a href="{E}/slow">Långsam</a>
<a href="{E}/gone">Borta</a>
<a href="{E}/page.html#del2">Del 2</a>
<a href="{E}/page.html#del9">Del 9</a>
<a href="{P}/index.html">Vänort</a>
<a href="{tls_url}">TLS</a>
<a href="http://127.0.0.4:{refused_port}/">Stängd port</a>
<a href="http://vanort-saskatoon.invalid/">Saskatoon</a>
{date_links}
<footer>Sidan har granskats 2018-03-28</footer>""",
    )
    routes: dict[str, Route] = {
        "/site/index.html": Route(body=index),
        "/site/fresh.html": Route(
            body=page(
                "Färsk",
                '<h2 id="kontakt">Kontakt</h2><a href="index.html">Tillbaka</a>'
                "<footer>Senast granskad: 2026-10-01</footer>",
            )
        ),
        "/site/nodate.html": Route(body=page("Utan datum", "<p>Ingen granskning.</p>")),
        "/site/soft.html": Route(
            body=page("Umeå kommun", "<h1>Sidan kunde inte hittas</h1><p>Sök igen.</p>")
        ),
        "/site/latin1.html": Route(
            body=page(
                "Vänorter på Åland",
                "<p>Sidan har granskats 2026-09-01. Välkommen!</p>",
                charset="iso-8859-1",
            ).encode("iso-8859-1"),
            content_type="text/html; charset=iso-8859-1",
        ),
        "/site/återväxt.html": Route(body=page("Återväxt", "<p>Senast granskad: 2026-11-01</p>")),
        "/site/vänorter lista.html": Route(
            body=page("Vänorter", "<p>Senast granskad: 2026-11-02</p>")
        ),
        "/site/loop1.html": Route(status=302, redirect_to="/site/loop2.html"),
        "/site/loop2.html": Route(status=302, redirect_to="/site/loop1.html"),
        "/site/temp.html": Route(status=302, redirect_to="/site/temp2.html"),
        "/site/temp2.html": Route(status=307, redirect_to="/site/temp3.html"),
        "/site/temp3.html": Route(body=page("Tillfällig", "<p>Senast granskad: 2026-11-01</p>")),
        "/site/excluded/page.html": Route(body=page("Undantagen", "")),
        "/outside/page.html": Route(
            body=page("Utanför", '<a href="/outside/secret.html">hemlig</a>')
        ),
        "/site/private/page.html": Route(body=page("Privat", '<a href="inner.html">inre</a>')),
        "/robots.txt": Route(
            body="User-agent: *\nDisallow: /site/private/\n", content_type="text/plain"
        ),
        "/site/files/flyer.pdf": Route(body=PDF, content_type="application/pdf"),
        "/site/files/rollup.pdf": Route(body=page("Rollup", "<p>Inte en pdf</p>")),
        "/site/files/gone.pdf": Route(status=404, body="Not found", content_type="text/plain"),
        "/site/files/login.pdf": Route(status=302, redirect_to="/site/login.html"),
        "/site/login.html": Route(body=page("Logga in", "<form>...</form>")),
        "/site/download?id=7": Route(body=PDF, content_type="application/octet-stream"),
        "/site/getfile?id=8": Route(body=PDF, content_type="application/pdf"),
        "/site/error500.html": Route(status=500, body="boom", content_type="text/plain"),
        "/site/reset.html": Route(handler=reset_connection),
        "/site/logo.png": Route(body=b"\x89PNG\r\n\x1a\n", content_type="image/png"),
        "/site/style.css": Route(body="body{}", content_type="text/css"),
    }
    for i in range(13):
        routes[f"/site/chain{i}.html"] = Route(status=301, redirect_to=f"/site/chain{i + 1}.html")
    for name, head, body, _d, _s, headers in DATE_PAGES:
        routes[f"/site/dates/{name}.html"] = Route(
            body=page(f"Datum {name}", body, head), headers=headers
        )
    for path, route in routes.items():
        main.add_route(path, route)

    ext_routes = {
        "/skl/eu/": Route(status=301, redirect_to="/skr/eu/"),
        "/skr/eu/": Route(body=page("SKR och EU", "<p>ok</p>")),
        "/northsweden/": Route(status=404, body="nope", content_type="text/plain"),
        "/head405": Route(body=page("ok", ""), head_status=405),
        "/head403": Route(body=page("ok", ""), head_status=403),
        "/ratelimited": Route(
            body=page("ok", ""), fail_first=1, fail_status=429, headers={"Retry-After": "1"}
        ),
        "/forbidden": Route(status=403, body="no", content_type="text/plain"),
        "/linkedin": Route(status=999, body="no", content_type="text/plain"),
        "/slow": Route(body=page("slow", ""), delay=4.0),
        "/gone": Route(status=410, body="gone", content_type="text/plain"),
        "/page.html": Route(body=page("Extern", '<h2 id="del2">Del 2</h2>')),
    }
    for path, route in ext_routes.items():
        ext.add_route(path, route)
    partner.add_route("/index.html", Route(body=page("Würzburg", "<p>Partnerstadt</p>")))

    for s in (main, ext, partner):
        s.start()
    yield {
        "main": main,
        "ext": ext,
        "partner": partner,
        "refused_port": refused_port,
        "tls": tls_url,
    }
    for s in (main, ext, partner):
        s.stop()


@pytest.fixture(scope="module")
def audit(sites, tmp_path_factory) -> CliResult:
    tmp = tmp_path_factory.mktemp("audit")
    main, ext = sites["main"], sites["ext"]
    cfg = write_config(
        tmp / "site.toml",
        f"""
[site]
name = "test kommun"
start_urls = ["{main.url("/site/index.html")}"]
exclude = ["/excluded/"]

[crawl]
timeout = 1.5
retries = 1
max_retry_after = 5
concurrency = 16

[links]
watched = ["{ext.base_url}/northsweden/"]
""",
    )
    return sitewatch("audit", "--config", str(cfg), "--as-of", "2026-11-26", cwd=tmp)


def verdict(audit: CliResult, url: str) -> tuple[str, str]:
    links = audit.links()
    assert url in links, f"{url} not in report links: {sorted(links)[:80]}"
    return links[url]["verdict"], links[url]["detail"]


def test_exit_code_and_outputs(audit: CliResult) -> None:
    assert audit.code == 1, audit.stderr
    for name in ("report.html", "report.json", "report.csv", "junit.xml", "summary.md"):
        assert (audit.out_dir / name).stat().st_size > 0
    assert "Traceback" not in audit.stderr
    run = audit.report["run"]
    assert run["complete"] is True, run["incomplete_reasons"]
    assert run["scopes"] == [audit.report["run"]["start_urls"][0].rsplit("/", 1)[0] + "/"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/site/fresh.html", ("ok", "")),
        ("/site/fresh.html#kontakt", ("ok", "")),
        ("/site/fresh.html#saknas", ("broken", "missing_fragment")),
        ("/site/missing.html", ("broken", "http_404")),
        ("/site/soft.html", ("broken", "soft_404")),
        ("/site/latin1.html", ("ok", "")),
        ("/site/%C3%A5terv%C3%A4xt.html", ("ok", "")),
        ("/site/v%C3%A4norter%20lista.html", ("ok", "")),
        ("/site/loop1.html", ("broken", "redirect_loop")),
        ("/site/chain0.html", ("broken", "too_many_redirects")),
        ("/site/temp.html", ("ok", "")),
        ("/site/excluded/page.html", ("skipped", "excluded")),
        ("/outside/page.html", ("ok", "")),
        ("/site/private/page.html", ("ok", "")),
        ("/site/files/flyer.pdf", ("ok", "")),
        ("/site/error500.html", ("broken", "http_500")),
        ("/site/reset.html", ("broken", "connection")),
        ("/site/logo.png", ("ok", "")),
        ("/site/missing-2x.png", ("broken", "http_404")),
        ("/site/style.css", ("ok", "")),
    ],
)
def test_internal_verdicts(audit: CliResult, sites, path: str, expected: tuple[str, str]) -> None:
    assert verdict(audit, sites["main"].base_url + path) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/skl/eu/", ("redirect", "http_301")),
        ("/northsweden/", ("broken", "http_404")),
        ("/head405", ("ok", "")),
        ("/head403", ("ok", "")),
        ("/ratelimited", ("ok", "")),
        ("/forbidden", ("unverified", "http_403")),
        ("/linkedin", ("unverified", "http_999")),
        ("/slow", ("broken", "timeout")),
        ("/gone", ("broken", "http_410")),
        ("/page.html#del2", ("ok", "")),
        ("/page.html#del9", ("broken", "missing_fragment")),
    ],
)
def test_external_verdicts(audit: CliResult, sites, path: str, expected: tuple[str, str]) -> None:
    assert verdict(audit, sites["ext"].base_url + path) == expected


def test_network_failures(audit: CliResult, sites) -> None:
    assert verdict(audit, f"http://127.0.0.4:{sites['refused_port']}/") == ("broken", "refused")
    assert verdict(audit, "http://vanort-saskatoon.invalid/") == ("broken", "dns")
    assert verdict(audit, sites["tls"]) == ("broken", "tls")
    assert verdict(audit, sites["partner"].url("/index.html")) == ("ok", "")


def test_skipped_and_malformed(audit: CliResult) -> None:
    assert verdict(audit, "mailto:info@umea.example") == ("skipped", "mailto")
    assert verdict(audit, "tel:+46901610000") == ("skipped", "tel")
    assert verdict(audit, "javascript:void(0)") == ("skipped", "javascript")
    assert verdict(audit, "http://[bad") == ("broken", "malformed_url")


def test_redirect_tells_new_url(audit: CliResult, sites) -> None:
    link = audit.links()[sites["ext"].base_url + "/skl/eu/"]
    assert link["final_url"] == sites["ext"].base_url + "/skr/eu/"
    assert link["redirect_chain"] == [{"url": sites["ext"].base_url + "/skl/eu/", "status": 301}]
    temp = audit.links()[sites["main"].url("/site/temp.html")]
    assert [h["status"] for h in temp["redirect_chain"]] == [302, 307]


def test_pdf_findings(audit: CliResult, sites) -> None:
    base = sites["main"].base_url
    pdf = {
        f["target"]: f["detail"] for f in audit.report["findings"] if f["check"] == "missing_pdf"
    }
    assert pdf == {
        base + "/site/files/rollup.pdf": "not_a_pdf",
        base + "/site/files/gone.pdf": "http_404",
        base + "/site/files/login.pdf": "redirected_to_html",
    }
    links = audit.links()
    assert links[base + "/site/download?id=7"]["pdf_link"] is True  # by link text
    assert links[base + "/site/getfile?id=8"]["pdf_link"] is True  # by served type
    assert links[base + "/site/files/flyer.pdf"]["pdf_link"] is True


def test_watched_target_is_error_and_first(audit: CliResult, sites) -> None:
    findings = audit.report["findings"]
    first = findings[0]
    assert first["target"] == sites["ext"].base_url + "/northsweden/"
    assert first["watched"] is True and first["severity"] == "error"


def test_scope_and_robots(audit: CliResult, sites) -> None:
    pages = audit.pages()
    base = sites["main"].base_url
    assert base + "/outside/page.html" not in pages  # checked, never crawled
    assert base + "/site/private/page.html" not in pages  # robots: checked, never crawled
    links = audit.links()
    assert base + "/outside/secret.html" not in links
    assert base + "/site/private/inner.html" not in links
    assert sites["main"].hits("/site/private/page.html", "GET") == 0
    assert sites["main"].hits("/outside/page.html", "GET") == 0


def test_each_target_checked_once(audit: CliResult, sites) -> None:
    main = sites["main"]
    # fresh.html is linked three times (plain, #kontakt, #saknas) and fetched once.
    assert main.hits("/site/fresh.html", "GET") == 1
    assert main.hits("/site/fresh.html", "HEAD") == 0
    links = audit.links()
    assert len(links[main.url("/site/fresh.html")]["found_on"]) == 1


@pytest.mark.parametrize(("name", "head", "body", "date", "source", "headers"), DATE_PAGES)
def test_review_dates(audit: CliResult, sites, name, head, body, date, source, headers) -> None:
    p = audit.pages()[sites["main"].url(f"/site/dates/{name}.html")]
    assert (p["review_date"], p["review_date_source"]) == (date, source)


def test_freshness_findings(audit: CliResult, sites) -> None:
    base = sites["main"].base_url
    checks = {(f["check"], f["page"]) for f in audit.report["findings"]}
    assert ("stale_page", base + "/site/index.html") in checks
    assert ("missing_review_date", base + "/site/nodate.html") in checks
    assert ("stale_page", base + "/site/fresh.html") not in checks
    latin = audit.pages()[base + "/site/latin1.html"]
    assert latin["title"] == "Vänorter på Åland"
    assert latin["review_date"] == "2026-09-01"


def test_no_false_positives(audit: CliResult, sites) -> None:
    """Everything built to look odd but work is ok: no finding names it."""
    e, m = sites["ext"].base_url, sites["main"].base_url
    fine = {
        e + "/head405",
        e + "/head403",
        e + "/ratelimited",
        m + "/site/temp.html",
        m + "/site/latin1.html",
        m + "/site/%C3%A5terv%C3%A4xt.html",
        m + "/site/v%C3%A4norter%20lista.html",
        "mailto:info@umea.example",
        "tel:+46901610000",
        m + "/site/files/flyer.pdf",
    }
    named = {f["target"] for f in audit.report["findings"]}
    assert not fine & named


def test_every_link_accounted_for(audit: CliResult) -> None:
    stats = audit.report["run"]["stats"]
    assert stats["requests"] == stats["responses"]
    for link in audit.report["links"]:
        assert link["verdict"] in {"ok", "broken", "redirect", "unverified", "skipped"}
        if link["verdict"] == "skipped":
            assert link["detail"] in {"mailto", "tel", "javascript", "excluded"}


def test_csv_and_junit_agree_with_json(audit: CliResult) -> None:
    import csv
    import xml.etree.ElementTree as ET

    rows = list(csv.DictReader((audit.out_dir / "report.csv").open(encoding="utf-8-sig")))
    assert len(rows) == len(audit.report["findings"])
    tree = ET.parse(audit.out_dir / "junit.xml")
    failures = sum(int(s.get("failures", 0)) for s in tree.getroot().iter("testsuite"))
    graded = [f for f in audit.report["findings"] if f["severity"] in ("error", "warning")]
    assert failures == len({(f["page"], f["check"]) for f in graded}) or failures == len(graded)


def test_fail_on_check_names(sites, tmp_path: Path) -> None:
    """A CI job can fail on stale content alone; quiet runs print nothing."""
    url = sites["main"].url("/site/fresh.html")
    args = ("audit", url, "--scope", url, "--fail-on", "stale_page", "-q")
    r = sitewatch(*args, "--as-of", "2026-11-26", cwd=tmp_path)
    assert r.code == 0, r.stderr  # fresh page; its links are fine (index.html is not crawled)
    r = sitewatch(*args, "--as-of", "2030-01-01", cwd=tmp_path)
    assert (r.code, r.stdout) == (1, "")
    assert [f["check"] for f in r.report["findings"]] == ["stale_page"]


@pytest.mark.parametrize(
    ("text", "promised"),
    [
        ("Flyer (pdf)", True),
        ("Rapport [PDF, 2 MB]", True),
        ("flyer.pdf", True),
        ("Ladda ner PDF", True),
        ("Building the PDF documentation", False),
        ("Om pdf-filer och tillgänglighet", False),
    ],
)
def test_link_text_that_promises_a_pdf(text: str, promised: bool) -> None:
    from crawler.engine.modes import says_pdf

    assert says_pdf(text) is promised
