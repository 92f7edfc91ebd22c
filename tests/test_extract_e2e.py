"""End to end: link extraction as browsers read pages (issue 16, items 7 and 8).

The real ``sitewatch audit`` against a site on 127.0.0.5 (and an outside one on 127.0.0.6)
with ``<base href>``, srcset with a ``data:`` URI, embedded objects, URLs the WHATWG parser
rejects, an ``--exclude`` that needs the fragment, and stylesheets with ``@import`` and
``url(...)``. One audit per module; each test reads its report back.
"""

from __future__ import annotations

import pytest

from demo.server import Route, SiteServer
from tests.cli_runner import CliResult, sitewatch, write_config
from tests.test_audit_e2e import PDF, page

DATA_URI = "data:image/png;base64," + "iVBORw0KGgo" * 60_000  # ~650 KB, commas-free payload
MALFORMED = ["//////", "http://", "http://exa mple.com/", "http://a:99999/", "http://1.2.3.256/"]


@pytest.fixture(scope="module")
def sites():
    main = SiteServer("127.0.0.5", name="kommun")
    ext = SiteServer("127.0.0.6", name="cdn")
    E = ext.base_url
    malformed = "".join(f'<a href="{h}">trasig {i}</a>' for i, h in enumerate(MALFORMED))
    index = page(
        "Start",
        f"""
<a href="p/a.html">A</a> <a href="p/b.html">B</a>
<img src="img/ok.png" srcset="{DATA_URI} 1x, img/ok.png 2x, img/with,comma.png 3x" alt="">
<object data="files/doc.pdf"></object> <object data="files/real.pdf"></object>
<video poster="img/poster.png"><track src="sub.vtt"><source src="img/clip.webm"></video>
<form><input type="image" src="img/button.png" alt="Sök"></form>
{malformed}
<a href="app.html">App</a> <a href="app.html#/route/1">App-vy</a>
<div style="background:url(img/attr-missing.png)">x</div>""",
        head=(
            '<link rel="stylesheet" href="css/site.css">'
            f'<link rel="stylesheet" href="{E}/cdn/ext.css">'
            '<link rel="icon" href="favicon-missing.ico">'
            '<link rel="dns-prefetch" href="//dns-only.invalid">'
            "<style>@import url(css/block-import.css); "
            ".b{background:url(img/block-missing.png)}</style>"
        ),
    )
    base = '<base href="/s/d/">'
    routes = {
        "/s/index.html": Route(body=index),
        "/s/p/a.html": Route(body=page("A", '<a href="gone.html">Borta</a>', head=base)),
        "/s/p/b.html": Route(
            body=page("B", '<a href="gone.html">Borta</a><a href="here.html">Här</a>', head=base)
        ),
        "/s/d/here.html": Route(body=page("Här", "<p>finns</p>")),
        "/s/img/ok.png": Route(body=b"\x89PNG", content_type="image/png"),
        "/s/img/with,comma.png": Route(body=b"\x89PNG", content_type="image/png"),
        "/s/img/poster.png": Route(body=b"\x89PNG", content_type="image/png"),
        "/s/img/clip.webm": Route(body=b"webm", content_type="video/webm"),
        "/s/files/doc.pdf": Route(body=page("Inte en pdf", "<p>x</p>")),
        "/s/files/real.pdf": Route(body=PDF, content_type="application/pdf"),
        "/s/app.html": Route(body=page("App", "<p>app</p>")),
        "/s/css/site.css": Route(
            body=(
                "@import url(dejavu.css);\n@import 'ok.css';\n"
                "/* url(commented-out.png) */\n"
                "body { background: url(img/bg.png) }\n"
                ".logo { background: url('../img/ok.png') }\n"
                ".d { background: url(data:image/png;base64,AAAA) }\n"
            ),
            content_type="text/css",
        ),
        "/s/css/ok.css": Route(
            body=".x { background: url(../img/deep-missing.png) }", content_type="text/css"
        ),
        "/s/css/block-import.css": Route(body="p{}", content_type="text/css"),
        # Named .css but an HTML page: not read as a stylesheet.
    }
    for path, route in routes.items():
        main.add_route(path, route)
    ext.add_route(
        "/cdn/ext.css",
        Route(body=".e{background:url(ext-missing.png)}", content_type="text/css"),
    )
    for s in (main, ext):
        s.start()
    yield {"main": main, "ext": ext}
    for s in (main, ext):
        s.stop()


@pytest.fixture(scope="module")
def audit(sites, tmp_path_factory) -> CliResult:
    tmp = tmp_path_factory.mktemp("extract")
    main = sites["main"]
    cfg = write_config(
        tmp / "site.toml",
        f"""
[site]
name = "extraktion"
start_urls = ["{main.url("/s/index.html")}"]
exclude = ["#/"]

[crawl]
timeout = 5
""",
    )
    return sitewatch("audit", "--config", str(cfg), "--as-of", "2026-11-26", cwd=tmp)


def _link(audit: CliResult, url: str) -> dict:
    links = audit.links()
    assert url in links, f"{url} not in {sorted(links)}"
    return links[url]


def _findings(audit: CliResult, target: str) -> list[dict]:
    return [f for f in audit.report["findings"] if f["target"] == target]


def test_audit_runs(audit: CliResult) -> None:
    assert audit.code in (0, 1), audit.stderr
    assert "Traceback" not in audit.stderr, audit.stderr


def test_findings_name_the_page_not_its_base(audit: CliResult, sites) -> None:
    main = sites["main"]
    gone = main.url("/s/d/gone.html")
    pages = sorted(f["page"] for f in _findings(audit, gone) if f["check"] == "broken_link")
    assert pages == [main.url("/s/p/a.html"), main.url("/s/p/b.html")]
    found_on = sorted(r["page"] for r in _link(audit, gone)["found_on"])
    assert found_on == pages
    assert _link(audit, main.url("/s/d/here.html"))["verdict"] == "ok"
    assert not any(f["page"] == main.url("/s/d/") for f in audit.report["findings"])


def test_srcset_data_uri_is_one_skipped_candidate(audit: CliResult, sites) -> None:
    main = sites["main"]
    data = [link for link in audit.links().values() if link["url"].startswith("data:")]
    assert data and all((d["verdict"], d["detail"]) == ("skipped", "data") for d in data)
    assert all(len(d["url"]) <= 300 for d in data)
    assert _link(audit, main.url("/s/img/ok.png"))["verdict"] == "ok"
    assert _link(audit, main.url("/s/img/with,comma.png"))["verdict"] == "ok"
    assert not any(link["detail"] == "http_414" for link in audit.links().values())
    assert not any("iVBORw0KGgo" in path for _, path, _ in main.requests)


def test_embedded_elements_are_checked(audit: CliResult, sites) -> None:
    main = sites["main"]
    assert _link(audit, main.url("/s/sub.vtt"))["verdict"] == "broken"
    assert _link(audit, main.url("/s/img/button.png"))["verdict"] == "broken"
    assert _link(audit, main.url("/s/favicon-missing.ico"))["verdict"] == "broken"
    assert _link(audit, main.url("/s/img/poster.png"))["verdict"] == "ok"
    assert _link(audit, main.url("/s/img/clip.webm"))["verdict"] == "ok"
    assert not any("dns-only" in url for url in audit.links())


def test_object_pdf_gets_the_pdf_check(audit: CliResult, sites) -> None:
    main = sites["main"]
    doc = _link(audit, main.url("/s/files/doc.pdf"))
    assert doc["pdf_link"]
    missing = _findings(audit, main.url("/s/files/doc.pdf"))
    assert [(f["check"], f["detail"]) for f in missing] == [("missing_pdf", "not_a_pdf")]
    real = _link(audit, main.url("/s/files/real.pdf"))
    assert real["pdf_link"] and not _findings(audit, main.url("/s/files/real.pdf"))


@pytest.mark.parametrize("href", MALFORMED)
def test_urls_the_standard_rejects_are_malformed(audit: CliResult, href: str) -> None:
    link = _link(audit, href)
    assert (link["verdict"], link["detail"]) == ("broken", "malformed_url")


def test_exclude_sees_the_fragment(audit: CliResult, sites) -> None:
    main = sites["main"]
    route = _link(audit, main.url("/s/app.html#/route/1"))
    assert (route["verdict"], route["detail"]) == ("skipped", "excluded")
    assert _link(audit, main.url("/s/app.html"))["verdict"] == "ok"


def test_stylesheet_references_are_checked_on_the_stylesheet(audit: CliResult, sites) -> None:
    main = sites["main"]
    site_css = main.url("/s/css/site.css")
    for target, on in [
        ("/s/css/dejavu.css", site_css),
        ("/s/css/img/bg.png", site_css),
        ("/s/img/deep-missing.png", main.url("/s/css/ok.css")),  # via a nested @import
    ]:
        link = _link(audit, main.url(target))
        assert link["verdict"] == "broken", link
        assert [r["page"] for r in link["found_on"]] == [on]
        assert [f["page"] for f in _findings(audit, main.url(target))] == [on]
    # The stylesheet itself is attributed to the pages that use it.
    assert [r["page"] for r in _link(audit, site_css)["found_on"]] == [main.url("/s/index.html")]
    assert _link(audit, main.url("/s/img/ok.png"))["verdict"] == "ok"
    assert not any("commented-out" in url for url in audit.links())


def test_style_block_and_attribute_references_are_on_the_page(audit: CliResult, sites) -> None:
    main = sites["main"]
    index = main.url("/s/index.html")
    for target in ("/s/img/block-missing.png", "/s/img/attr-missing.png"):
        link = _link(audit, main.url(target))
        assert link["verdict"] == "broken"
        assert [r["page"] for r in link["found_on"]] == [index]
    assert _link(audit, main.url("/s/css/block-import.css"))["verdict"] == "ok"


def test_out_of_scope_stylesheets_are_only_checked(audit: CliResult, sites) -> None:
    ext = sites["ext"]
    assert _link(audit, ext.url("/cdn/ext.css"))["verdict"] == "ok"
    assert not any("ext-missing" in url for url in audit.links())
    assert {m for m, path, _ in ext.requests if path == "/cdn/ext.css"} == {"HEAD"}


def test_stylesheet_references_survive_re_runs(tmp_path) -> None:
    """With the re-run cache (validators, 304s): the stylesheet's references are found in
    the first run, in a replayed run and in a crawl whose pages are all answered 304."""
    from crawler.replay import REPLAY_ENV

    www = tmp_path / "www"
    (www / "css").mkdir(parents=True)
    (www / "index.html").write_text(
        page("Start", "<p>x</p>", head='<link rel="stylesheet" href="css/site.css">'),
        encoding="utf-8",
    )
    (www / "css" / "site.css").write_text(
        "@import url(dejavu.css);\nbody{background:url(img/bg.png)}\n", encoding="utf-8"
    )
    site = SiteServer("127.0.0.5", root=www, validators=True)
    cfg = write_config(
        tmp_path / "site.toml",
        f"""
[site]
name = "css"
start_urls = ["{site.url("/index.html")}"]
[crawl]
obey_robots = false
[history]
db = "{tmp_path / "history.db"}"
""",
    )
    want = {site.url("/css/dejavu.css"), site.url("/css/img/bg.png")}
    with site:
        for n, env in enumerate([None, None, {REPLAY_ENV: "0"}]):
            r = sitewatch(
                "audit", "--config", str(cfg), "--out", str(tmp_path / f"out{n}"),
                "--as-of", "2026-11-27", "-q", "--format", "json",
                cwd=tmp_path, env=env,
            )  # fmt: skip
            assert r.code == 1, r.stderr
            broken = {u for u, link in r.links().items() if link["verdict"] == "broken"}
            assert broken == want, (n, broken)
            css = site.url("/css/site.css")
            assert {f["page"] for f in r.report["findings"] if f["target"] in want} == {css}
