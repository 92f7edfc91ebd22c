"""The demo: Umeå kommun's "Internationellt arbete" section plus two stand-in outside sites.

``start_demo_servers()`` starts three ``SiteServer``s on loopback:

- main (127.0.0.1): the static site in ``demo/site`` plus the special routes below;
- ext1 (127.0.0.2): the region's EU office (North Sweden, Brussels) and SKL/SKR;
- ext2 (127.0.0.3): the twin towns' and partner regions' own web sites.

Ports are picked at start, so the static HTML writes outside links as ``{{EXT1}}/...`` and
``{{EXT2}}/...``; every server replaces those placeholders (and ``{{MAIN}}``) in HTML
bodies and redirect Locations with the real base URLs.

Every planted problem is listed in ``PLANTED`` (and explained in ``demo/PLANTED.md``);
``REVIEW_DATES`` holds the review date each in-scope page carries.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from demo.make_flyer import BROKEN_LINK, GOOD_LINK, flyer_pdf
from demo.server import Route, SiteServer

__all__ = [
    "AS_OF",
    "CONFIG_TEMPLATE",
    "DOWNLOAD",
    "OK_LINKS",
    "PLANTED",
    "REVIEW_DATES",
    "SITE_ROOT",
    "START_PATH",
    "DemoServers",
    "Planted",
    "ext1_routes",
    "ext2_routes",
    "main_routes",
    "start_demo_servers",
]

DEMO_DIR = Path(__file__).resolve().parent
SITE_ROOT = DEMO_DIR / "site"
CONFIG_TEMPLATE = DEMO_DIR / "config.toml.in"
#: The date the demo audit pins with ``--as-of`` (fresh/stale below are relative to it).
AS_OF = dt.date(2026, 11, 26)
START_PATH = "/internationellt/"
#: Where the CMS keeps uploaded documents (outside the section: checked, never crawled).
DOWNLOAD = "/download/18.3a1f5c2e162a4b1e6d81b4e/1522226400000/"
#: "Flyer (pdf)": made with its links when the servers start (``demo.make_flyer``).
FLYER = DOWNLOAD + "flyer-internationellt.pdf"
AATERBESOK = "/internationellt/återbesök-vänorter.html"
SOFT_404_PATH = "/internationellt/vanortsveckan-2017.html"

MAIN_HOST, EXT1_HOST, EXT2_HOST = "127.0.0.1", "127.0.0.2", "127.0.0.3"

#: Review date each in-scope page carries (None: none at all), with the text on the page
#: it comes from (a footer phrase, a <meta> tag or the JSON-LD property).
REVIEW_DATES: dict[str, tuple[dt.date | None, str]] = {
    "/internationellt/": (dt.date(2018, 3, 28), "Sidan har granskats 2018-03-28"),
    "/internationellt/vasa.html": (dt.date(2026, 9, 14), "Senast granskad: 2026-09-14"),
    "/internationellt/harstad.html": (dt.date(2026, 5, 20), "Sidan har granskats 2026-05-20"),
    "/internationellt/helsingor.html": (dt.date(2024, 3, 12), "Senast uppdaterad: 12 mars 2024"),
    "/internationellt/wurzburg.html": (
        dt.date(2026, 6, 2),
        '<meta property="article:modified_time" content="2026-06-02T09:15:00+02:00">',
    ),
    "/internationellt/petrozavodsk.html": (dt.date(2021, 10, 20), "Publicerad 20 oktober 2021"),
    "/internationellt/saskatoon.html": (dt.date(2026, 2, 3), "Sidan har granskats 2026-02-03"),
    "/internationellt/seychellerna.html": (
        dt.date(2026, 10, 5),
        '"dateModified": "2026-10-05T10:12:00+02:00"',  # JSON-LD; datePublished is 2019
    ),
    "/internationellt/xian.html": (dt.date(2025, 6, 30), "Senast granskad: 2025-06-30"),
    "/internationellt/qufu.html": (None, ""),  # no date at all
    "/internationellt/lanzhou.html": (dt.date(2026, 8, 11), "Sidan har granskats 2026-08-11"),
    "/internationellt/guanajuato.html": (dt.date(2025, 12, 1), "Senast granskad: 2025-12-01"),
    "/internationellt/honorara-konsuler.html": (
        dt.date(2026, 10, 19),
        "Sidan har granskats 2026-10-19",
    ),
    "/internationellt/mal-och-strategier.html": (
        dt.date(2019, 2, 11),
        "Sidan har granskats 2019-02-11",
    ),
    "/internationellt/eu-samarbete.html": (dt.date(2026, 11, 2), "Senast granskad: 2026-11-02"),
    "/internationellt/projektavtal.html": (dt.date(2026, 3, 17), "Sidan har granskats 2026-03-17"),
    "/internationellt/varldskarta.html": (dt.date(2026, 7, 1), "Sidan har granskats 2026-07-01"),
    "/internationellt/natverk.html": (dt.date(2026, 4, 22), "Senast granskad: 2026-04-22"),
    "/internationellt/kontakt.html": (dt.date(2026, 9, 30), "Sidan har granskats 2026-09-30"),
    "/internationellt/in-english.html": (dt.date(2021, 3, 15), "Page last reviewed: 15 March 2021"),
    AATERBESOK: (dt.date(2026, 10, 28), "Senast granskad: 2026-10-28"),
    "/internationellt/historik.html": (dt.date(2013, 12, 13), "Granskad: 13.12.2013"),  # ISO-8859-1
}


@dataclass(frozen=True)
class Planted:
    """One problem planted in the demo and the finding sitewatch should make of it.

    URLs are templates: ``{MAIN}``, ``{EXT1}`` and ``{EXT2}`` stand for the servers' base
    URLs; ``DemoServers.planted()`` returns them filled in (paths percent-encoded).
    """

    check: str  # checks.models.Check value
    page: str
    target: str = ""
    verdict: str = ""  # checks.models.Verdict value of the target's LinkResult
    detail: str = ""
    watched: bool = False
    note: str = ""


_I = "{MAIN}/internationellt/"


def _stale(page: str, note: str) -> Planted:
    """A stale_page finding; its detail is the age in days on ``AS_OF`` ("3165_days")."""
    date = REVIEW_DATES[page.replace("{MAIN}", "")][0]
    assert date is not None
    return Planted("stale_page", page, detail=f"{(AS_OF - date).days}_days", note=note)


PLANTED: tuple[Planted, ...] = (
    # -- freshness ------------------------------------------------------------------------
    _stale(_I, note="Sidan har granskats 2018-03-28"),
    _stale(_I + "helsingor.html", note="Senast uppdaterad: 12 mars 2024"),
    _stale(_I + "petrozavodsk.html", note="Publicerad 20 oktober 2021"),
    _stale(_I + "xian.html", note="Senast granskad: 2025-06-30"),
    _stale(_I + "mal-och-strategier.html", note="Sidan har granskats 2019-02-11"),
    _stale(_I + "in-english.html", note="Page last reviewed: 15 March 2021"),
    _stale(_I + "historik.html", note="Granskad: 13.12.2013, ISO-8859-1 page"),
    Planted("missing_review_date", _I + "qufu.html", note="no date anywhere on the page"),
    # -- broken links ---------------------------------------------------------------------
    Planted(
        "broken_link",
        _I + "harstad.html",
        _I + "harstad-besok-2019.html",
        "broken",
        "http_404",
        note="internal link to a page that does not exist",
    ),
    # One removed page linked five times from three pages, through four #anchors and
    # once without: five findings, one problem ("linked 5 times from 3 pages").
    *(
        Planted(
            "broken_link",
            _I + page,
            _I + "vanortsavtal.html" + fragment,
            "broken",
            "http_404",
            note="removed page vanortsavtal.html, one grouped problem (checks.groups)",
        )
        for page, fragment in (
            ("varldskarta.html", "#harstad"),
            ("varldskarta.html", "#helsingor"),
            ("varldskarta.html", "#vasa"),
            ("honorara-konsuler.html", "#konsuler"),
            ("projektavtal.html", ""),
        )
    ),
    Planted(
        "broken_link",
        _I + "helsingor.html",
        "{EXT2}/helsingor/venskabsbyer/",
        "broken",
        "http_404",
        note="external link, 404 on the twin town's site",
    ),
    Planted(
        "broken_link",
        _I + "saskatoon.html",
        "http://vanort-saskatoon.invalid/",
        "broken",
        "dns",
        note="host name that cannot resolve (.invalid)",
    ),
    Planted(
        "broken_link",
        _I + "petrozavodsk.html",
        "http://127.0.0.4:9/",
        "broken",
        "refused",
        note="nothing listens on 127.0.0.4:9",
    ),
    Planted(
        "broken_link",
        _I + "återbesök-vänorter.html",
        _I + "kontakt.html#kontaktuppgifter",
        "broken",
        "missing_fragment",
        note="kontakt.html exists but has no id/name kontaktuppgifter",
    ),
    Planted(
        "broken_link",
        _I + "natverk.html",
        _I + "vanortsveckan-2017.html",
        "broken",
        "soft_404",
        note='200 page titled "Sidan kunde inte hittas" (in the section, so fetched in full)',
    ),
    Planted(
        "broken_link",
        _I + "lanzhou.html",
        "{EXT2}/lanzhou/sister-cities/",
        "broken",
        "redirect_loop",
        note="302 -> /lanzhou/sister-cities/index.html -> 302 back",
    ),
    *(
        Planted(
            "broken_link",
            page,
            "{EXT1}/north-sweden/",
            "broken",
            "http_404",
            watched=True,
            note="watched target: North Sweden EU office page is gone",
        )
        for page in (_I, _I + "eu-samarbete.html", _I + "in-english.html")
    ),
    # -- redirects and unverified ---------------------------------------------------------
    *(
        Planted(
            "redirect",
            page,
            "{EXT1}/skl/eu/",
            "redirect",
            "http_301",
            watched=True,
            note="301 permanent to {EXT1}/skr/eu/ (200): SKL became SKR, update the link",
        )
        for page in (_I, _I + "eu-samarbete.html")
    ),
    Planted(
        "unverified_link",
        _I + "xian.html",
        "{EXT2}/xian/",
        "unverified",
        "http_403",
        note="403 to every request (bot wall)",
    ),
    # -- PDFs -----------------------------------------------------------------------------
    Planted(
        "missing_pdf",
        _I,
        "{MAIN}" + DOWNLOAD + "rollup-internationellt.pdf",
        "ok",
        "not_a_pdf",
        note='"Rollup (pdf)" answers 200 text/html',
    ),
    Planted(
        "missing_pdf",
        _I + "mal-och-strategier.html",
        "{MAIN}" + DOWNLOAD + "mal-och-strategier-internationellt-1997.pdf",
        "broken",
        "http_404",
        note="PDF link that is gone",
    ),
    Planted(
        "broken_link",
        "{MAIN}" + FLYER + "#page=2",
        BROKEN_LINK[1],
        "broken",
        "http_404",
        note=f'a link inside the flyer PDF (page 2, "{BROKEN_LINK[0]}"): 404',
    ),
    Planted(
        "missing_pdf",
        _I + "projektavtal.html",
        "{MAIN}" + DOWNLOAD + "projektavtal-mall.pdf",
        "ok",
        "redirected_to_html",
        note="302 to the HTML login page /logga-in/?returnUrl=...",
    ),
)

#: Link targets that look risky but must produce no finding (verdict ok or skipped).
OK_LINKS: tuple[tuple[str, str], ...] = (
    ("{EXT2}/vaasa/", "ok: 302 -> /vaasa/sv/ -> 302 -> /vaasa/sv/vanorter/ (200)"),
    ("{EXT2}/harstad/vennskapsbyer/", "ok: HEAD 405, GET 200"),
    ("{EXT2}/helsingor/kommune/", "ok: HEAD 403, GET 200"),
    ("{EXT2}/seychelles/", "ok: first request 429 Retry-After: 1, then 200"),
    ("{EXT2}/wurzburg/partnerstaedte/", "ok: 200"),
    ("{EXT2}/qufu/", "ok: 200"),
    ("{EXT2}/guanajuato/", "ok: 200"),
    ("{EXT1}/skr/eu/", "ok: 200 (the SKR page the SKL link should point to)"),
    ("{MAIN}" + FLYER, "ok: real PDF (%PDF-1.4), its links read (demo/make_flyer.py)"),
    (GOOD_LINK[1], "ok: the flyer's link on its page 1, a page of the section"),
    (_I + "mal-och-strategier.html#handlingsplan", "ok: the fragment exists"),
    (_I + "återbesök-vänorter.html", "ok: non-ASCII file name, linked percent-encoded"),
    (_I + "historik.html", "ok: ISO-8859-1 page"),
    (_I + "bilder/varldskarta.png", "ok: image"),
    (_I + "bilder/varldskarta-stor.png", "ok: image"),
    ("{MAIN}/", "ok: start page, same host outside the section"),
    ("{MAIN}/kontakt/", "ok: contact page, same host outside the section"),
    ("mailto:internationellt@umea.example", "skipped: mailto"),
    ("tel:+4690161000", "skipped: tel"),
    ("javascript:window.print()", "skipped: javascript"),
)


# ----------------------------------------------------------------------------- bodies


def _page(title: str, text: str, lang: str = "sv") -> str:
    return f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<title>{title}</title>
</head>
<body>
<h1>{title}</h1>
{text}
</body>
</html>
"""


SOFT_404_HTML = """<!DOCTYPE html>
<html lang="sv">
<head>
<meta charset="utf-8">
<title>Sidan kunde inte hittas - Umeå kommun</title>
<link rel="stylesheet" href="/static/umea.css">
</head>
<body>
<header class="site-header">
<div class="bar"><a class="logo" href="/">Startsida Umeå kommun</a></div>
</header>
<div class="wrap">
<main id="innehall">
<h1>Sidan kunde inte hittas</h1>
<p>Sidan du söker kan ha flyttats eller tagits bort. Prova att söka eller gå till
<a href="/">startsidan</a>.</p>
</main>
</div>
</body>
</html>
"""

ROLLUP_HTML = """<!DOCTYPE html>
<html lang="sv">
<head>
<meta charset="utf-8">
<title>Rollup – Internationellt arbete - Umeå kommun</title>
<link rel="stylesheet" href="/static/umea.css">
</head>
<body>
<main id="innehall">
<h1>Rollup – Internationellt arbete</h1>
<p>Rollupen om Umeå kommuns internationella arbete lånas ut av Kommunikationsenheten.
Kontakta <a href="/internationellt/kontakt.html">internationell samordnare</a>.</p>
</main>
</body>
</html>
"""


def main_routes() -> dict[str, Route]:
    """Special behaviours on the main site (127.0.0.1)."""
    mall = DOWNLOAD + "projektavtal-mall.pdf"
    return {
        # "Rollup (pdf)": the CMS answers with an HTML page instead of the PDF.
        DOWNLOAD + "rollup-internationellt.pdf": Route(body=ROLLUP_HTML),
        # PDF behind a login: 302 to an HTML login page (static file /logga-in/index.html).
        mall: Route(302, redirect_to="/logga-in/?returnUrl=" + quote(mall, safe="")),
        # Soft 404: a removed page in the section answers 200 "Sidan kunde inte hittas".
        SOFT_404_PATH: Route(body=SOFT_404_HTML),
    }


def ext1_routes() -> dict[str, Route]:
    """127.0.0.2: the region's EU office in Brussels and SKL/SKR."""
    return {
        "/": Route(
            body=_page(
                "EU offices (demo)",
                '<ul><li><a href="/skr/eu/">SKR och EU</a></li></ul>',
                "en",
            )
        ),
        # SKL (Sveriges Kommuner och Landsting) became SKR in 2019: permanent redirect.
        "/skl/eu/": Route(301, redirect_to="/skr/eu/"),
        "/skr/eu/": Route(
            body=_page(
                "SKR – EU och internationellt",
                "<p>Sveriges Kommuner och Regioner bevakar EU-frågor åt kommuner och regioner.</p>",
            )
        ),
        # The North Sweden European Office page is gone (watched target).
        "/north-sweden/": Route(
            404,
            body=_page("Page not found", "<p>The page you requested could not be found.</p>", "en"),
        ),
    }


def ext2_routes() -> dict[str, Route]:
    """127.0.0.3: the twin towns' and partner regions' web sites."""

    def ok(title: str, text: str = "<p>Välkommen.</p>", lang: str = "sv") -> Route:
        return Route(body=_page(title, text, lang))

    return {
        "/": ok("Vänorter (demo)"),
        # 302 chain that ends in 200: ok. The second hop is absolute (placeholder filled in).
        "/vaasa/": Route(302, redirect_to="/vaasa/sv/"),
        "/vaasa/sv/": Route(302, redirect_to="{{EXT2}}/vaasa/sv/vanorter/"),
        "/vaasa/sv/vanorter/": ok("Vasa stad – Vänorter", "<p>Umeå, Sverige.</p>"),
        # HEAD refused with 405, GET works: ok.
        "/harstad/vennskapsbyer/": Route(
            body=_page("Harstad kommune – Vennskapsbyer", "<p>Umeå, Sverige.</p>", "no"),
            head_status=405,
        ),
        # Broken external link.
        "/helsingor/venskabsbyer/": Route(
            404, body=_page("Siden blev ikke fundet", "<p>Fejl 404.</p>", "da")
        ),
        # HEAD refused with 403, GET works: ok.
        "/helsingor/kommune/": Route(
            body=_page("Helsingør Kommune", "<p>Velkommen.</p>", "da"), head_status=403
        ),
        "/wurzburg/partnerstaedte/": ok("Würzburg – Partnerstädte", "<p>Umeå.</p>", "de"),
        # 429 with Retry-After: 1 to the first request, then 200: ok after a retry.
        "/seychelles/": Route(
            body=_page("Republic of Seychelles – International cooperation", "", "en"),
            fail_first=1,
            fail_status=429,
        ),
        # A bot wall: 403 to everything (unverified, not broken).
        "/xian/": Route(403, body=_page("403 Forbidden", "<p>Access denied.</p>", "en")),
        "/qufu/": ok("Qufu", "<p>Welcome to Qufu.</p>", "en"),
        "/guanajuato/": ok("Gobierno del Estado de Guanajuato", "<p>Bienvenidos.</p>", "es"),
        # Redirect loop.
        "/lanzhou/sister-cities/": Route(302, redirect_to="/lanzhou/sister-cities/index.html"),
        "/lanzhou/sister-cities/index.html": Route(302, redirect_to="/lanzhou/sister-cities/"),
    }


# ----------------------------------------------------------------------------- servers


@dataclass
class DemoServers:
    """The three running demo servers and what a demo audit needs to know about them."""

    main: SiteServer
    ext1: SiteServer
    ext2: SiteServer

    @property
    def servers(self) -> tuple[SiteServer, SiteServer, SiteServer]:
        return (self.main, self.ext1, self.ext2)

    @property
    def start_url(self) -> str:
        """``http://127.0.0.1:PORT/internationellt/``"""
        return self.main.url(START_PATH)

    @property
    def watched(self) -> list[str]:
        """URL prefixes for ``links.watched``: North Sweden and SKL/SKR on 127.0.0.2."""
        return [self.ext1.url("/north-sweden/"), self.ext1.url("/skl/"), self.ext1.url("/skr/")]

    def url(self, template: str) -> str:
        """Fill in ``{MAIN}``, ``{EXT1}``, ``{EXT2}`` (the path is percent-encoded)."""
        for key, server in (("{MAIN}", self.main), ("{EXT1}", self.ext1), ("{EXT2}", self.ext2)):
            if template.startswith(key):
                return server.url(template[len(key) :] or "/")
        return template

    def planted(self) -> list[Planted]:
        """``PLANTED`` with real URLs."""
        return [
            Planted(
                p.check,
                self.url(p.page),
                self.url(p.target) if p.target else "",
                p.verdict,
                p.detail,
                p.watched,
                p.note.replace("{EXT1}", self.ext1.base_url),
            )
            for p in PLANTED
        ]

    def ok_links(self) -> list[str]:
        """``OK_LINKS`` targets with real URLs."""
        return [self.url(target) for target, _ in OK_LINKS]

    def review_dates(self) -> dict[str, dt.date | None]:
        """Page URL -> the review date on it (None: no date), for every in-scope page."""
        return {self.main.url(path): date for path, (date, _) in REVIEW_DATES.items()}

    def config_text(self, template: Path | str = CONFIG_TEMPLATE) -> str:
        """``demo/config.toml.in`` with ``{START_URL}``, ``{EXT1}``, ``{EXT2}`` filled in."""
        text = Path(template).read_text(encoding="utf-8")
        return (
            text.replace("{START_URL}", self.start_url)
            .replace("{EXT1}", self.ext1.base_url)
            .replace("{EXT2}", self.ext2.base_url)
        )

    def write_config(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.config_text(), encoding="utf-8")
        return path

    def reset(self) -> None:
        """Forget request logs and re-arm first-N failures (e.g. the 429) on all servers."""
        for server in self.servers:
            server.reset()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> DemoServers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_demo_servers(
    port: int = 0,
    *,
    main_host: str = MAIN_HOST,
    ext1_host: str = EXT1_HOST,
    ext2_host: str = EXT2_HOST,
    root: Path | str = SITE_ROOT,
) -> DemoServers:
    """Start the main site and the two outside sites; returns them running.

    ``port`` 0 picks a free port for each; any other port is used on all three
    addresses. Use as ``with start_demo_servers() as demo: ...`` or call ``demo.stop()``.
    """
    started: list[SiteServer] = []
    try:
        main = SiteServer(main_host, port, root=root, routes=main_routes(), name="demo-main")
        started.append(main)
        ext1 = SiteServer(ext1_host, port, routes=ext1_routes(), name="demo-ext1")
        started.append(ext1)
        ext2 = SiteServer(ext2_host, port, routes=ext2_routes(), name="demo-ext2")
        started.append(ext2)
        # The flyer's links carry the servers' ports: made now (demo/make_flyer.py).
        flyer = flyer_pdf(main.base_url, ext2.base_url)
        main.add_route(FLYER, Route(body=flyer, content_type="application/pdf"))
        subs = {"{{MAIN}}": main.base_url, "{{EXT1}}": ext1.base_url, "{{EXT2}}": ext2.base_url}
        for server in started:
            server.substitutions.update(subs)
            server.start()
    except BaseException:
        for server in started:
            server.stop()
        raise
    return DemoServers(main, ext1, ext2)
