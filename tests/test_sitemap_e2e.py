"""End to end: sitemaps seed in-scope pages; soft-moved outside links (issue 16, 5 and 6).

The real ``sitewatch audit`` against fixture sites: 127.0.0.1 is the section under audit
(``/s/``), 127.0.0.2 and 127.0.0.3 are outside sites whose pages moved.
"""

from __future__ import annotations

import datetime as dt
import gzip
from email.utils import format_datetime
from pathlib import Path

import pytest

from demo.server import Route, SiteServer
from tests.cli_runner import CliResult, sitewatch, write_config


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="sv"><head><meta charset="utf-8"><title>{title}</title>'
        f"</head><body>{body}</body></html>"
    )


def urlset(base: str, *entries: tuple[str, str | None]) -> str:
    items = "".join(
        f"<url><loc>{base}{loc}</loc>"
        + (f"<lastmod>{lastmod}</lastmod>" if lastmod else "")
        + "</url>"
        for loc, lastmod in entries
    )
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{items}</urlset>'


XML = "application/xml"
LAST_MODIFIED = format_datetime(dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC), usegmt=True)


@pytest.fixture(scope="module")
def sites():
    main = SiteServer("127.0.0.1", name="sektion")
    ext = SiteServer("127.0.0.2", name="moved")
    partner = SiteServer("127.0.0.3", name="partner")
    B, E, P = main.base_url, ext.base_url, partner.base_url
    index = page(
        "Sektion",
        f"""<a href="linked.html">Länkad</a>
<a href="sub/index.html">Under</a>
<a href="old/deep/page.html">Intern flytt</a>
<a href="{E}/a/b/c.html">Flyttad till startsidan</a>
<a href="{E}/deep/page.html">Flyttad till /en/</a>
<a href="{E}/old/page">Flyttad till ny sida</a>
<a href="{E}/">Rot till språk</a>
<a href="{E}/kontakt">Kontakt till roten</a>
<a href="{P}/kampanj/x/y.html">Kampanj (undantagen)</a>
<footer>Senast granskad: 2026-10-01</footer>""",
    )
    sitemap = urlset(
        B,
        ("/s/index.html", "2020-01-01"),
        ("/s/sub/", None),  # linked as /s/sub/index.html: the same page, not unlinked
        ("/s/linked.html", "2019-05-05"),  # the page's own date wins
        ("/s/orphan.html", "2026-09-09"),  # only here: audited, unlinked, dated from here
        ("/s/orphan-gone.html", None),  # only here, and 404
        ("/other/outside.html", None),  # out of scope: ignored
        ("/s/excluded/x.html", None),  # excluded by site.exclude
    )
    gz = urlset(B, ("/s/orphan-gz.html", "2015-02-03"))
    index_xml = (
        '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<sitemap><loc>{B}/s/sitemap-pages.xml</loc></sitemap>"
        "<sitemap><loc>/s/sitemap-more.xml.gz</loc></sitemap>"
        "</sitemapindex>"
    )
    routes = {
        "/robots.txt": Route(
            body=f"User-agent: *\nDisallow:\nSitemap: {B}/s/sitemap-index.xml\n",
            content_type="text/plain",
        ),
        "/s/index.html": Route(body=index),
        "/s/linked.html": Route(
            body=page("Länkad", "<p>Senast granskad: 2026-08-01</p><a href='index.html'>t</a>")
        ),
        "/s/orphan.html": Route(
            body=page("Föräldralös", "<p>Ingen länk hit.</p>"),
            headers={"Last-Modified": LAST_MODIFIED},
        ),
        "/s/orphan-gz.html": Route(body=page("Från gz", "<p>x</p>")),
        "/s/sub/": Route(body=page("Under", "<p>Senast granskad: 2026-10-01</p>")),
        "/s/sub/index.html": Route(body=page("Under", "<p>Senast granskad: 2026-10-01</p>")),
        "/s/old/deep/page.html": Route(status=301, redirect_to="/s/"),
        "/s/": Route(body=page("Sektionens rot", "<p>Senast granskad: 2026-10-01</p>")),
        "/other/outside.html": Route(body=page("Utanför", "")),
        "/s/excluded/x.html": Route(body=page("Undantagen", "")),
        "/s/sitemap-index.xml": Route(body=index_xml, content_type=XML),
        "/s/sitemap-pages.xml": Route(body=sitemap, content_type=XML),
        "/s/sitemap-more.xml.gz": Route(
            body=gzip.compress(gz.encode()), content_type="application/gzip"
        ),
        "/s/broken-sitemap.xml": Route(body="<urlset><url><loc>", content_type=XML),
        # Answers after crawl.timeout (2 s in these tests).
        "/s/slow-sitemap.xml": Route(body=sitemap, content_type=XML, delay=4.0),
    }
    for path, route in routes.items():
        main.add_route(path, route)
    ext_routes = {
        "/a/b/c.html": Route(status=301, redirect_to="/"),
        "/deep/page.html": Route(status=302, redirect_to="/en/"),
        "/old/page": Route(status=301, redirect_to="/new/page"),
        "/new/page": Route(body=page("Ny", "")),
        "/": Route(status=302, redirect_to="/sv/"),
        "/sv/": Route(body=page("Start", "")),
        "/en/": Route(body=page("Home", "")),
        "/kontakt": Route(status=301, redirect_to="/"),
    }
    for path, route in ext_routes.items():
        ext.add_route(path, route)
    partner.add_route("/kampanj/x/y.html", Route(status=301, redirect_to="/"))
    partner.add_route("/", Route(body=page("Partner", "")))
    for s in (main, ext, partner):
        s.start()
    yield {"main": main, "ext": ext, "partner": partner}
    for s in (main, ext, partner):
        s.stop()


def run(sites, tmp: Path, extra: str = "", *args: str) -> CliResult:
    main, partner = sites["main"], sites["partner"]
    cfg = write_config(
        tmp / "site.toml",
        f"""
[site]
start_urls = ["{main.url("/s/index.html")}"]
exclude = ["/excluded/"]

[crawl]
timeout = 2
retries = 0
{extra}

[links]
redirect_to_home_ok = ["{partner.base_url}/kampanj/"]
""",
    )
    return sitewatch("audit", "--config", str(cfg), "--as-of", "2026-11-26", *args, cwd=tmp)


@pytest.fixture(scope="module")
def audit(sites, tmp_path_factory) -> CliResult:
    return run(sites, tmp_path_factory.mktemp("sitemap"), "robots_sitemaps = true")


def findings(result: CliResult, check: str) -> dict[str, dict]:
    return {f["page"]: f for f in result.report["findings"] if f["check"] == check}


def test_sitemap_only_pages_are_audited_and_flagged(audit: CliResult, sites) -> None:
    main = sites["main"]
    assert audit.code == 1, audit.stderr  # the soft-moved links are errors
    pages = audit.pages()
    orphan, gz = main.url("/s/orphan.html"), main.url("/s/orphan-gz.html")
    assert orphan in pages and gz in pages
    unlinked = findings(audit, "unlinked_page")
    assert set(unlinked) == {orphan, gz, main.url("/s/orphan-gone.html")}
    assert {f["severity"] for f in unlinked.values()} == {"info"}
    assert unlinked[main.url("/s/orphan-gone.html")]["detail"] == "http_404"
    assert unlinked[orphan]["detail"] == ""
    # Linked pages are not flagged, though they are in the sitemap too.
    assert main.url("/s/linked.html") not in unlinked
    assert main.url("/s/index.html") not in unlinked


def test_out_of_scope_and_excluded_sitemap_urls_are_ignored(audit: CliResult, sites) -> None:
    main = sites["main"]
    assert main.hits("/other/outside.html") == 0
    assert main.hits("/s/excluded/x.html") == 0
    stats = audit.report["run"]["stats"]["sitemap"]
    assert stats["sitemaps_read"] == 3  # the index, the plain and the gzip sitemap
    assert stats["listed"] == 8
    assert main.hits("/s/sub/") == 0  # reached as /s/sub/index.html
    assert stats["out_of_scope"] == 1
    assert stats["excluded"] == 1
    assert stats["unlinked"] == 3
    assert stats["notes"] == []


def test_lastmod_is_a_weak_review_date(audit: CliResult, sites) -> None:
    main = sites["main"]
    pages = audit.pages()

    def date(path: str) -> tuple[str, str]:
        p = pages[main.url(path)]
        return p["review_date"], p["review_date_source"]

    # No date on the page, an HTTP Last-Modified: the sitemap's lastmod wins over it.
    assert date("/s/orphan.html") == ("2026-09-09", "sitemap:lastmod")
    assert date("/s/orphan-gz.html") == ("2015-02-03", "sitemap:lastmod")
    # A visible date wins over the sitemap's.
    assert date("/s/linked.html")[0] == "2026-08-01"
    assert date("/s/index.html")[0] == "2026-10-01"
    stale = findings(audit, "stale_page")
    assert main.url("/s/orphan-gz.html") in stale
    assert main.url("/s/orphan.html") not in stale


def verdict(result: CliResult, url: str) -> tuple[str, str]:
    link = result.links()[url]
    return link["verdict"], link["detail"]


def test_soft_moved_outside_links(audit: CliResult, sites) -> None:
    E, P = sites["ext"].base_url, sites["partner"].base_url
    assert verdict(audit, f"{E}/a/b/c.html") == ("broken", "redirect_to_home")
    assert verdict(audit, f"{E}/deep/page.html") == ("broken", "redirect_to_home")
    assert verdict(audit, f"{E}/kontakt") == ("broken", "redirect_to_home")
    # Same depth: a plain (permanent) redirect. "/" -> "/sv/": ok (temporary, shallow).
    assert verdict(audit, f"{E}/old/page") == ("redirect", "http_301")
    assert verdict(audit, f"{E}/") == ("ok", "")
    # Exempted by links.redirect_to_home_ok.
    assert verdict(audit, f"{P}/kampanj/x/y.html") == ("redirect", "http_301")
    broken = [f for f in audit.report["findings"] if f["detail"] == "redirect_to_home"]
    assert {(f["check"], f["severity"]) for f in broken} == {("broken_link", "error")}
    assert len(broken) == 3


def test_internal_redirect_to_section_root_is_not_soft_moved(audit: CliResult, sites) -> None:
    main = sites["main"]
    assert verdict(audit, main.url("/s/old/deep/page.html")) == ("redirect", "http_301")


def test_soft_moved_switched_off(sites, tmp_path: Path) -> None:
    E = sites["ext"].base_url
    cfg_extra = ""
    result = run(sites, tmp_path, cfg_extra, "--no-history")
    # Without sitemaps nothing is seeded and nothing is flagged unlinked.
    assert findings(result, "unlinked_page") == {}
    assert "sitemap" not in result.report["run"]["stats"]
    assert sites["main"].url("/s/orphan.html") not in result.pages()
    assert verdict(result, f"{E}/a/b/c.html") == ("broken", "redirect_to_home")
    off = tmp_path / "off"
    off.mkdir()
    (off / "site.toml").write_text(
        (tmp_path / "site.toml").read_text().replace("[links]", "[links]\nredirect_to_home = false")
    )
    result = sitewatch(
        "audit",
        "--config",
        str(off / "site.toml"),
        "--as-of",
        "2026-11-26",
        "--no-history",
        cwd=off,
    )
    assert verdict(result, f"{E}/a/b/c.html") == ("redirect", "http_301")
    assert verdict(result, f"{E}/deep/page.html") == ("ok", "")


def test_sitemap_option_and_broken_sitemaps(sites, tmp_path: Path) -> None:
    main = sites["main"]
    result = run(
        sites,
        tmp_path,
        "",
        "--no-history",
        "--sitemap",
        main.url("/s/broken-sitemap.xml"),
        "--sitemap",
        main.url("/s/no-such-sitemap.xml"),
        "--sitemap",
        main.url("/s/sitemap-more.xml.gz"),
        "--sitemap",
        main.url("/s/slow-sitemap.xml"),
    )
    assert result.code == 1, result.stderr  # findings, not a crash (exit 2)
    assert "Traceback" not in result.stderr
    notes = result.report["run"]["stats"]["sitemap"]["notes"]
    assert any("broken-sitemap.xml: not well-formed XML" in n for n in notes), notes
    assert any("no-such-sitemap.xml: HTTP 404" in n for n in notes), notes
    assert any("slow-sitemap.xml: " in n and "timed out" in n for n in notes), notes
    for n in notes:
        assert f"sitewatch: note: {n}" in result.stderr
    # The good sitemap still seeds its page.
    assert set(findings(result, "unlinked_page")) == {main.url("/s/orphan-gz.html")}


def test_rerun_with_history_keeps_sitemap_findings(sites, tmp_path: Path) -> None:
    """A re-run (history and its re-run cache) finds the same unlinked pages and sitemap
    dates; it is never replayed as a whole from the previous run."""
    first = run(sites, tmp_path, "robots_sitemaps = true")
    main = sites["main"]
    hits = main.hits("/s/orphan.html")
    second = run(sites, tmp_path, "robots_sitemaps = true")
    assert second.code == first.code == 1, second.stderr
    assert "replayed_from_run" not in second.report["run"]["stats"]
    assert main.hits("/s/orphan.html") > hits  # asked again
    for check in ("unlinked_page", "stale_page", "broken_link"):
        assert set(findings(second, check)) == set(findings(first, check)), check
    keys = ("review_date", "review_date_source", "status")
    assert {u: [p[k] for k in keys] for u, p in second.pages().items()} == {
        u: [p[k] for k in keys] for u, p in first.pages().items()
    }


def test_rerun_replays_unchanged_sitemap_pages(tmp_path: Path) -> None:
    """Static files with validators: the second run gets 304s and replays the stored pages
    (the seeded sitemap page included) with the same findings and dates."""
    root = tmp_path / "www"
    (root / "s").mkdir(parents=True)
    (root / "s" / "index.html").write_text(
        page("Start", '<a href="a.html">A</a><p>Senast granskad: 2026-10-01</p>')
    )
    (root / "s" / "a.html").write_text(page("A", "<p>Senast granskad: 2026-10-02</p>"))
    (root / "s" / "orphan.html").write_text(page("Ensam", "<p>Inget datum.</p>"))
    with SiteServer("127.0.0.1", root=root, validators=True) as site:
        (root / "s" / "sitemap.xml").write_text(
            urlset(site.base_url, ("/s/a.html", None), ("/s/orphan.html", "2024-04-04"))
        )
        cfg = write_config(
            tmp_path / "site.toml",
            f"""
[site]
start_urls = ["{site.url("/s/index.html")}"]

[crawl]
sitemaps = ["{site.url("/s/sitemap.xml")}"]
""",
        )

        def audit() -> CliResult:
            return sitewatch("audit", "--config", str(cfg), "--as-of", "2026-11-26", cwd=tmp_path)

        first = audit()
        second = audit()
    orphan = site.url("/s/orphan.html")
    for result in (first, second):
        assert result.code == 1, result.stderr  # the orphan is stale by its sitemap date
        assert set(findings(result, "stale_page")) == {orphan}
        assert set(findings(result, "unlinked_page")) == {orphan}
        p = result.pages()[orphan]
        assert (p["review_date"], p["review_date_source"]) == ("2024-04-04", "sitemap:lastmod")
    stats = second.report["run"]["stats"]
    assert stats.get("pages_not_modified", 0) >= 3, stats
    assert "replayed_from_run" not in stats


def test_unchanged_site_with_a_soft_moved_link_is_replayed(tmp_path: Path) -> None:
    """A soft-moved verdict rests on the redirect chain alone: an unchanged site whose
    outside link still lands on the front page is replayed from the previous run."""
    root = tmp_path / "www"
    (root / "s").mkdir(parents=True)
    with SiteServer("127.0.0.2", name="moved") as ext:
        ext.add_route("/a/b/c.html", Route(status=301, redirect_to="/"))
        ext.add_route("/", Route(body=page("Start", "")))
        (root / "s" / "index.html").write_text(
            page(
                "Start", f'<a href="{ext.url("/a/b/c.html")}">Flyttad</a><p>Granskad 2026-11-01</p>'
            )
        )
        with SiteServer("127.0.0.1", root=root, validators=True) as site:
            cfg = write_config(
                tmp_path / "site.toml", f'[site]\nstart_urls = ["{site.url("/s/index.html")}"]\n'
            )
            runs = [
                sitewatch("audit", "--config", str(cfg), "--as-of", "2026-11-26", cwd=tmp_path)
                for _ in range(2)
            ]
    for result in runs:
        assert result.code == 1, result.stderr
        assert verdict(result, ext.url("/a/b/c.html")) == ("broken", "redirect_to_home")
    assert "replayed_from_run" in runs[1].report["run"]["stats"], runs[1].report["run"]["stats"]
