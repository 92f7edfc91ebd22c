"""Unit tests for checks.freshness: review-date discovery on real lxml-parsed HTML."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import lxml.etree
import lxml.html
import pytest

from checks.freshness import (
    SOURCES,
    ReviewDate,
    _has_stem,
    _text_has_stem,
    find_phrase_date,
    find_review_date,
    parse_date_text,
)

D = dt.date


def page(body: str, head: str = "") -> lxml.html.HtmlElement:
    """A whole document parsed the way the crawler does it."""
    return lxml.html.document_fromstring(
        f"<!DOCTYPE html><html><head><title>T</title>{head}</head><body>{body}</body></html>"
    )


# --------------------------------------------------------------------------- parse_date_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2013-12-13", D(2013, 12, 13)),
        ("2013-1-5", D(2013, 1, 5)),
        ("2013/12/13", D(2013, 12, 13)),
        ("2022-05-20T23:30:00-05:00", D(2022, 5, 20)),
        ("2022-05-20 14:30", D(2022, 5, 20)),
        ("13 december 2013", D(2013, 12, 13)),
        ("den 13 december 2013", D(2013, 12, 13)),
        ("13. december 2013", D(2013, 12, 13)),
        ("12 mars 2024", D(2024, 3, 12)),
        ("20 oktober 2021", D(2021, 10, 20)),
        ("1 januari 2020", D(2020, 1, 1)),
        ("29 februari 2024", D(2024, 2, 29)),
        ("3 april 2020", D(2020, 4, 3)),
        ("7 maj 2019", D(2019, 5, 7)),
        ("7 juni 2019", D(2019, 6, 7)),
        ("7 juli 2019", D(2019, 7, 7)),
        ("7 augusti 2019", D(2019, 8, 7)),
        ("7 september 2019", D(2019, 9, 7)),
        ("7 november 2019", D(2019, 11, 7)),
        ("7 Oktober 2019", D(2019, 10, 7)),
        ("7 MAJ 2019", D(2019, 5, 7)),
        ("7 jan 2019", D(2019, 1, 7)),
        ("7 feb. 2019", D(2019, 2, 7)),
        ("7 mar 2019", D(2019, 3, 7)),
        ("7 apr 2019", D(2019, 4, 7)),
        ("7 jun 2019", D(2019, 6, 7)),
        ("7 jul 2019", D(2019, 7, 7)),
        ("7 aug 2019", D(2019, 8, 7)),
        ("7 sep 2019", D(2019, 9, 7)),
        ("7 sept. 2019", D(2019, 9, 7)),
        ("7 okt 2019", D(2019, 10, 7)),
        ("7 nov 2019", D(2019, 11, 7)),
        ("7 dec 2019", D(2019, 12, 7)),
        ("tisdag 20 maj 2025", D(2025, 5, 20)),
        ("13.12.2013", D(2013, 12, 13)),
        ("1.2.2013", D(2013, 2, 1)),
        ("24/10 2023", D(2023, 10, 24)),
        ("24/10/2023", D(2023, 10, 24)),
        ("15 March 2021", D(2021, 3, 15)),
        ("1st March 2021", D(2021, 3, 1)),
        ("March 15, 2021", D(2021, 3, 15)),
        ("Nov 26, 2026", D(2026, 11, 26)),
        ("Sept. 3, 2020", D(2020, 9, 3)),
        ("May 5 2020", D(2020, 5, 5)),
        ("10 September 2015", D(2015, 9, 10)),
        ("  on 15 March 2021", D(2021, 3, 15)),
    ],
)
def test_parse_date_text_forms(text: str, expected: dt.date) -> None:
    assert parse_date_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2023-02-30",
        "31 april 2021",
        "30 februari 2024",
        "29 februari 2023",
        "2021-13-01",
        "13/13 2020",
        "32.01.2020",
        "1989-12-31",
        "2101-01-01",
        "1 januari 1850",
        "februari 1997",
        "1997",
        "13 smarch 2013",
        "",
        "   ",
        "garbage",
        "20210520",
    ],
)
def test_parse_date_text_rejects(text: str) -> None:
    assert parse_date_text(text) is None


def test_parse_date_text_non_string_and_huge() -> None:
    assert parse_date_text(None) is None  # type: ignore[arg-type]
    assert parse_date_text(20210520) is None  # type: ignore[arg-type]
    assert parse_date_text("x" * 5_000_000) is None
    assert parse_date_text("2021-05-20" + "x" * 5_000_000) == D(2021, 5, 20)


def test_year_bounds_are_inclusive() -> None:
    assert parse_date_text("1990-01-01") == D(1990, 1, 1)
    assert parse_date_text("2100-12-31") == D(2100, 12, 31)


# --------------------------------------------------------------------------- phrases

PHRASINGS = [
    # Swedish
    ("Sidan har granskats 2018-03-28", D(2018, 3, 28)),
    ("Senast granskad: 2026-02-03", D(2026, 2, 3)),
    ("Granskad: 13 december 2013", D(2013, 12, 13)),
    ("Granskad den 13 december 2013", D(2013, 12, 13)),
    ("Sidan granskades 2019-01-15", D(2019, 1, 15)),
    ("Senast uppdaterad: 2022-05-20", D(2022, 5, 20)),
    ("Uppdaterad 12 mars 2024", D(2024, 3, 12)),
    ("Uppdaterad: 13.12.2013", D(2013, 12, 13)),
    ("Uppdaterad 24/10 2023", D(2023, 10, 24)),
    ("Publicerad 20 oktober 2021", D(2021, 10, 20)),
    ("Publicerad: den 3 maj 2022", D(2022, 5, 3)),
    ("Denna sida publicerades: 2015-11-16", D(2015, 11, 16)),
    ("Sidan uppdaterades 2020-06-01", D(2020, 6, 1)),
    ("Sidan uppdaterades senast 2020-06-01", D(2020, 6, 1)),
    ("Senast ändrad 2017-08-09", D(2017, 8, 9)),
    ("Senast ändrad: tisdag 20 maj 2025", D(2025, 5, 20)),
    ("SENAST UPPDATERAD: 2022-05-20", D(2022, 5, 20)),
    ("Uppdaterad – 7 Okt. 2019", D(2019, 10, 7)),
    # English
    ("Page last reviewed: 15 March 2021", D(2021, 3, 15)),
    ("Last reviewed 2020-02-02", D(2020, 2, 2)),
    ("Last reviewed on March 15, 2021", D(2021, 3, 15)),
    ("Last updated 10 September 2015", D(2015, 9, 10)),
    ("Last updated on Nov 26, 2026", D(2026, 11, 26)),
    ("Last modified: 2019-07-01", D(2019, 7, 1)),
    ("Updated: Monday, 1 June 2020", D(2020, 6, 1)),
    ("Published 5 May 2020", D(2020, 5, 5)),
    ("Published on the 5th May 2020", D(2020, 5, 5)),
]


@pytest.mark.parametrize(("text", "expected"), PHRASINGS)
def test_find_phrase_date_phrasings(text: str, expected: dt.date) -> None:
    assert find_phrase_date(text) == (expected, "text")


@pytest.mark.parametrize(("text", "expected"), PHRASINGS)
def test_phrasings_in_a_page_footer(text: str, expected: dt.date) -> None:
    root = page(f"<main><h1>Rubrik</h1><p>Brödtext.</p></main><footer><p>{text}</p></footer>")
    assert find_review_date(root) == ReviewDate(expected, "text")


@pytest.mark.parametrize(
    "text",
    [
        "I februari 1997 antog kommunfullmäktige mål och strategier.",
        "Avtal tecknat 2019-05-01 med leverantören.",
        "Mötet hölls den 13 december 2013 i stadshuset.",
        "Uppdaterad information om avtalet, som tecknades 2019-05-01.",
        "Uppdaterad" + " " * 60 + "2019-05-01",
        "Nästa granskning: 2025-01-01",
        "Next review due: 15 March 2024",
        "This page will be reviewed on 2025-01-01",
        "Sidan ska granskas 2025-01-01",
        "Oförändrad 2019-01-01",
        "Uppdaterad: igår",
        "Uppdaterad 2023-02-30",
        "Granskad 1985-01-01",
        "",
    ],
)
def test_find_phrase_date_rejects(text: str) -> None:
    assert find_phrase_date(text) is None


def test_next_review_due_is_never_taken() -> None:
    text = "Page last reviewed: 15 March 2021\nNext review due: 15 March 2024"
    assert find_phrase_date(text) == (D(2021, 3, 15), "text")
    root = page(
        "<p>Body</p><div class='review-info'><p>Page last reviewed: 15 March 2021</p>"
        "<p>Next review due: 15 March 2024</p></div>"
    )
    assert find_review_date(root) == ReviewDate(D(2021, 3, 15), "text")


def test_reviewed_beats_updated_beats_published() -> None:
    text = (
        "Publicerad 2023-06-01\nSenast uppdaterad: 2022-05-20\n"
        "Sidan har granskats 2018-03-28\nPublicerad 2024-01-01"
    )
    assert find_phrase_date(text) == (D(2018, 3, 28), "text")
    assert find_phrase_date("Publicerad 2023-06-01 Uppdaterad 2020-01-01") == (
        D(2020, 1, 1),
        "text",
    )


def test_last_of_equal_rank_wins() -> None:
    root = page(
        "<article><p>Uppdaterad 2021-01-01</p><p>Nyhet. Uppdaterad 2023-03-03</p></article>"
        "<footer>Uppdaterad 2022-02-02</footer>"
    )
    assert find_review_date(root) == ReviewDate(D(2022, 2, 2), "text")


def test_invalid_phrase_date_falls_back_to_a_valid_one() -> None:
    text = "Uppdaterad 2021-06-01\nSidan har granskats 2023-02-30"
    assert find_phrase_date(text) == (D(2021, 6, 1), "text")


def test_find_phrase_date_hostile_input() -> None:
    assert find_phrase_date(None) is None  # type: ignore[arg-type]
    assert find_phrase_date(b"Uppdaterad 2021-01-01") is None  # type: ignore[arg-type]
    huge = "uppdaterad " * 200_000 + "granskad : : : " * 100_000 + "Granskad 2020-02-02"
    assert find_phrase_date(huge) == (D(2020, 2, 2), "text")
    # Characters whose lower-case form is longer take the slow path, with the same result.
    assert find_phrase_date("İİİ Senast ändrad: 2019-09-09") == (D(2019, 9, 9), "text")


# --------------------------------------------------------------------------- the seed page

SEED = "/work/shared/seed/internationellt-arbete.txt"


def seed_html() -> str:
    with open(SEED, encoding="utf-8") as f:
        lines = f.read().splitlines()
    paras = "".join(f"<p>{line}</p>" for line in lines if line.strip())
    return (
        "<!DOCTYPE html><html lang='sv'><head><meta charset='utf-8'>"
        "<title>Internationellt arbete - Umeå kommun</title></head>"
        f"<body><div id='content'>{paras}</div></body></html>"
    )


def test_seed_page_yields_footer_review_date_not_1997() -> None:
    html = seed_html()
    assert "I februari 1997 antog" in html
    assert "Sidan har granskats 2018-03-28" in html
    assert find_review_date(lxml.html.document_fromstring(html)) == ReviewDate(
        D(2018, 3, 28), "text"
    )
    assert find_review_date(lxml.html.fromstring(html.encode("utf-8"))) == ReviewDate(
        D(2018, 3, 28), "text"
    )


def test_seed_body_without_footer_gives_none() -> None:
    html = seed_html().replace("Sidan har granskats 2018-03-28", "")
    assert find_review_date(lxml.html.document_fromstring(html)) is None


def test_iso_8859_1_page() -> None:
    html = (
        "<html><head><meta http-equiv='Content-Type' content='text/html; charset=iso-8859-1'>"
        "<title>Umeå</title></head><body><p>Vänorter: Vasa, Würzburg.</p>"
        "<p>I februari 1997 antog kommunfullmäktige mål.</p>"
        "<div class='sv-text-portlet'>Sidan har granskats 2018-03-28</div>"
        "<p>Senast ändrad 2017-01-01</p></body></html>"
    )
    raw = html.encode("iso-8859-1")
    root = lxml.html.document_fromstring(raw)
    assert "Würzburg" in root.text_content()  # really decoded as Latin-1
    assert find_review_date(root) == ReviewDate(D(2018, 3, 28), "text")
    # The crawler may also hand over text it decoded itself.
    assert find_review_date(lxml.html.fromstring(raw.decode("iso-8859-1"))) == ReviewDate(
        D(2018, 3, 28), "text"
    )
    only_changed = lxml.html.document_fromstring(
        raw.replace(b"Sidan har granskats 2018-03-28", b"")
    )
    assert find_review_date(only_changed) == ReviewDate(D(2017, 1, 1), "text")


# --------------------------------------------------------------------------- visible text only


@pytest.mark.parametrize(
    "hidden",
    [
        "<script>var s = 'Sidan har granskats 2018-03-28';</script>",
        "<style>/* Uppdaterad 2018-03-28 */ p {color: red}</style>",
        "<noscript>Uppdaterad 2018-03-28</noscript>",
        "<template><p>Uppdaterad 2018-03-28</p></template>",
        "<!-- Sidan har granskats 2018-03-28 -->",
    ],
)
def test_non_visible_text_is_ignored(hidden: str) -> None:
    assert find_review_date(page(f"<p>Innehåll</p>{hidden}<p>Slut</p>")) is None
    # ...while visible text next to it still counts, tails included.
    root = page(f"<p>Innehåll {hidden} Senast uppdaterad: 2020-02-02</p>")
    assert find_review_date(root) == ReviewDate(D(2020, 2, 2), "text")


def test_title_is_not_visible_text() -> None:
    root = lxml.html.document_fromstring(
        "<html><head><title>Uppdaterad 2020-01-01</title></head><body><p>x</p></body></html>"
    )
    assert find_review_date(root) is None


@pytest.mark.parametrize(
    "body",
    [
        "<p>Uppdaterad</p><p>2022-05-20</p>",
        "<dl><dt>Senast uppdaterad</dt><dd>2022-05-20</dd></dl>",
        "<table><tr><th>Granskad:</th><td>2022-05-20</td></tr></table>",
        "Uppdaterad<br>2022-05-20",
        "<p>Senast <b>uppdaterad</b>: <span>20</span> maj <em>2022</em></p>",
        "<p>Uppdaterad: <time datetime='2022-05-20'>20 maj 2022</time></p>",
    ],
)
def test_phrase_and_date_across_elements(body: str) -> None:
    assert find_review_date(page(body)) == ReviewDate(D(2022, 5, 20), "text")


def test_blocks_do_not_glue_words_together() -> None:
    # Without a separator "Oförändrad" + "2019..." style gluing could invent a phrase.
    root = page("<p>Text</p><p>Uppdaterad</p><p>text som är lång nog att bryta</p><p>2019</p>")
    assert find_review_date(root) is None


# --------------------------------------------------------------------------- <time>


@pytest.mark.parametrize(
    "body",
    [
        "<footer><p>© Kommunen <time datetime='2022-05-20'>nyss</time></p></footer>",
        "<div id='page-footer'><span><time datetime='2022-05-20T10:00:00+02:00'>x</time>"
        "</span></div>",
        "<div class='last-updated'><time datetime='2022-05-20'>x</time></div>",
        "<p class='reviewed-date'><time datetime='2022-05-20'>x</time></p>",
        "<div class='date-modified'><time datetime='2022-05-20'>x</time></div>",
        "<p>Senast uppdaterad: <time datetime='2022-05-20T10:00:00Z'>igår</time></p>",
        "<dl><dt>Granskad</dt><dd><time datetime='2022-05-20'>för en stund sedan</time></dd></dl>",
        "<p><span>Page last reviewed:</span> <time datetime='2022-05-20'>recently</time></p>",
    ],
)
def test_time_source(body: str) -> None:
    root = page(f"<main><p>Innehåll</p></main>{body}")
    assert find_review_date(root) == ReviewDate(D(2022, 5, 20), "time")


@pytest.mark.parametrize(
    "body",
    [
        "<article><p>Evenemang <time datetime='2022-05-20'>på fredag</time></p></article>",
        "<p>Nästa granskning: <time datetime='2022-05-20'>snart</time></p>",
        "<p>Next review due: <time datetime='2022-05-20'>soon</time></p>",
        "<div class='next-review'><time datetime='2022-05-20'>soon</time></div>",
        "<footer><time datetime='garbage'>x</time><time datetime='2023-02-30'>y</time></footer>",
        "<footer><time>2022-05-20 without datetime attribute: not a time source</time></footer>",
        "<footer><p>Next review due: <time datetime='2022-05-20'>soon</time></p></footer>",
        "<footer><p>Nästa granskning <time datetime='2022-05-20'>snart</time></p></footer>",
    ],
)
def test_time_without_review_context_is_ignored(body: str) -> None:
    assert find_review_date(page(body)) is None


def test_body_or_html_class_does_not_make_every_time_a_footer_time() -> None:
    html = (
        "<html class='page-modified'><body class='has-sticky-footer'>"
        "<p>Evenemang <time datetime='2022-05-20'>fredag</time></p></body></html>"
    )
    assert find_review_date(lxml.html.document_fromstring(html)) is None
    html = html.replace("<p>Evenemang", "<p class='footer-note'>Evenemang")
    assert find_review_date(lxml.html.document_fromstring(html)) == ReviewDate(
        D(2022, 5, 20), "time"
    )


def test_time_prefers_review_context_and_skips_next_review() -> None:
    root = page(
        "<footer><p>Publicerad <time datetime='2019-01-01'>länge sedan</time></p>"
        "<p>Page last reviewed: <time datetime='2021-03-15'>a while ago</time></p>"
        "<p>Next review due: <time datetime='2024-03-15'>later</time></p>"
        "<p>Published: <time datetime='2020-01-01'>ages ago</time></p></footer>"
    )
    assert find_review_date(root) == ReviewDate(D(2021, 3, 15), "time")


def test_time_date_part_is_taken_in_stated_zone() -> None:
    root = page("<footer><time datetime='2022-05-20T23:30:00-05:00'>x</time></footer>")
    assert find_review_date(root) == ReviewDate(D(2022, 5, 20), "time")


# --------------------------------------------------------------------------- JSON-LD


def ld(data: object) -> str:
    text = data if isinstance(data, str) else json.dumps(data)
    return f"<script type='application/ld+json'>{text}</script>"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"@type": "WebPage", "dateModified": "2021-04-05"}, D(2021, 4, 5)),
        ({"@type": "Article", "dateModified": "2021-04-05T08:00:00+02:00"}, D(2021, 4, 5)),
        (
            {
                "@context": "https://schema.org",
                "@graph": [
                    {"@type": "Organization", "name": "Kommunen"},
                    {
                        "@type": "WebPage",
                        "datePublished": "2019-01-01",
                        "dateModified": "2021-04-05",
                    },
                ],
            },
            D(2021, 4, 5),
        ),
        (
            [{"@type": "BreadcrumbList"}, {"@type": "WebPage", "dateModified": "2021-04-05"}],
            D(2021, 4, 5),
        ),
        ({"@graph": [{"@graph": [{"dateModified": "2021-04-05"}]}]}, D(2021, 4, 5)),
        ({"dateModified": {"@value": "2021-04-05"}}, D(2021, 4, 5)),
        ({"dateModified": ["not a date", "2021-04-05"]}, D(2021, 4, 5)),
    ],
)
def test_json_ld(data: object, expected: dt.date) -> None:
    root = page("<p>Innehåll</p>", head=ld(data))
    assert find_review_date(root) == ReviewDate(expected, "json-ld")


def test_json_ld_in_body_and_type_case() -> None:
    root = page(
        '<p>x</p><script type=\' Application/LD+JSON \'>{"dateModified": "2021-04-05"}</script>'
    )
    assert find_review_date(root) == ReviewDate(D(2021, 4, 5), "json-ld")


@pytest.mark.parametrize(
    "data",
    [
        "{not json",
        '{"dateModified": "2021-04-05"',
        "",
        "null",
        "42",
        '"2021-04-05"',
        "[1, 2, 3]",
        '{"dateModified": 20210405}',
        '{"dateModified": null}',
        '{"dateModified": {"nested": "2021-04-05"}}',
        '{"dateModified": "2021-02-30"}',
        '{"dateModified": "garbage"}',
        '{"datePublished": "2021-04-05"}',
        '{"@graph": "2021-04-05"}',
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_bad_json_ld_is_ignored_silently(data: str) -> None:
    root = page("<p>x</p>", head=ld(data))
    assert find_review_date(root) is None
    # ...and a later, good block or weaker source is still found.
    root = page("<p>x</p>", head=ld(data) + ld({"dateModified": "2020-01-01"}))
    assert find_review_date(root) == ReviewDate(D(2020, 1, 1), "json-ld")


def test_plain_script_is_not_json_ld() -> None:
    root = page("<p>x</p>", head='<script>var x = {"dateModified": "2021-04-05"};</script>')
    assert find_review_date(root) is None


# --------------------------------------------------------------------------- <meta>


@pytest.mark.parametrize(
    ("attr", "name", "source"),
    [
        ("property", "article:modified_time", "meta:article:modified_time"),
        ("name", "article:modified_time", "meta:article:modified_time"),
        ("property", "og:updated_time", "meta:og:updated_time"),
        ("property", "OG:Updated_Time", "meta:og:updated_time"),
        ("name", "dcterms.modified", "meta:dcterms.modified"),
        ("name", "DCTERMS.modified", "meta:dcterms.modified"),
        ("name", "DC.date.modified", "meta:dcterms.modified"),
        ("name", "dc.date.modified", "meta:dcterms.modified"),
        ("name", "dcterms:modified", "meta:dcterms.modified"),
        ("name", " govuk:updated-at ", "meta:govuk:updated-at"),
        ("name", "GOVUK:UPDATED-AT", "meta:govuk:updated-at"),
    ],
)
def test_meta_sources(attr: str, name: str, source: str) -> None:
    root = page("<p>x</p>", head=f"<meta {attr}='{name}' content='2020-07-08T09:10:11+01:00'>")
    assert find_review_date(root) == ReviewDate(D(2020, 7, 8), source)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("2020-07-08", D(2020, 7, 8)),
        ("2020-07-08T23:59:59-11:00", D(2020, 7, 8)),
        ("2020-07-08T00:00:01+14:00", D(2020, 7, 8)),
        ("2020-07-08T12:00:00.123456Z", D(2020, 7, 8)),
        ("2020-07-08 12:00", D(2020, 7, 8)),
        ("  2020-07-08  ", D(2020, 7, 8)),
    ],
)
def test_meta_iso_forms(content: str, expected: dt.date) -> None:
    root = page("<p>x</p>", head=f"<meta property='article:modified_time' content='{content}'>")
    assert find_review_date(root) == ReviewDate(expected, "meta:article:modified_time")


def test_meta_order_between_names() -> None:
    head = (
        "<meta name='govuk:updated-at' content='2020-04-04'>"
        "<meta name='DC.date.modified' content='2020-03-03'>"
        "<meta property='og:updated_time' content='2020-02-02'>"
        "<meta property='article:modified_time' content='2020-01-01'>"
    )
    assert find_review_date(page("<p>x</p>", head=head)) == ReviewDate(
        D(2020, 1, 1), "meta:article:modified_time"
    )
    head = head.replace("article:modified_time", "article:published_time")
    assert find_review_date(page("<p>x</p>", head=head)) == ReviewDate(
        D(2020, 2, 2), "meta:og:updated_time"
    )
    head = head.replace("og:updated_time", "og:title")
    assert find_review_date(page("<p>x</p>", head=head)) == ReviewDate(
        D(2020, 3, 3), "meta:dcterms.modified"
    )


@pytest.mark.parametrize(
    "content",
    ["", "garbage", "2020-02-30", "1970-01-01T00:00:00Z", "9999-12-31", "\x00\x01", "x" * 100_000],
)
def test_garbage_meta_values_are_skipped(content: str) -> None:
    head = (
        f"<meta property='article:modified_time' content='{content}'>"
        "<meta name='dcterms.modified' content='2019-09-09'>"
    )
    assert find_review_date(page("<p>x</p>", head=head)) == ReviewDate(
        D(2019, 9, 9), "meta:dcterms.modified"
    )


def test_meta_without_content_or_unrelated_names() -> None:
    head = (
        "<meta property='article:modified_time'>"
        "<meta name='description' content='2019-09-09'>"
        "<meta property='article:published_time' content='2019-09-09'>"
    )
    assert find_review_date(page("<p>x</p>", head=head)) is None


# --------------------------------------------------------------------------- Last-Modified


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Wed, 21 Oct 2015 07:28:00 GMT", D(2015, 10, 21)),
        ("Sun, 06 Nov 1994 08:49:37 GMT", D(1994, 11, 6)),
        ("Sunday, 06-Nov-94 08:49:37 GMT", D(1994, 11, 6)),
        ("Sun Nov  6 08:49:37 1994", D(1994, 11, 6)),
    ],
)
def test_last_modified(header: str, expected: dt.date) -> None:
    assert find_review_date(page("<p>x</p>"), header) == ReviewDate(expected, "http:last-modified")
    assert find_review_date(None, header) == ReviewDate(expected, "http:last-modified")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "Wed, 32 Oct 2015 07:28:00 GMT",
        "Thu, 01 Jan 1970 00:00:00 GMT",
        "x" * 10_000,
    ],
)
def test_bad_last_modified(header: str | None) -> None:
    assert find_review_date(page("<p>x</p>"), header) is None
    assert find_review_date(None, header) is None


# --------------------------------------------------------------------------- order of trust

ALL_HEAD = "<meta property='article:modified_time' content='2020-04-04'>" + ld(
    {"@graph": [{"@type": "WebPage", "dateModified": "2020-03-03"}]}
)
ALL_BODY = (
    "<p>Avtal tecknat 2019-05-01.</p>"
    "<footer><p>Uppdaterad: <time datetime='2020-02-02'>nyss</time></p>"
    "<p>Sidan har granskats 2020-01-01</p></footer>"
)
LAST_MODIFIED = "Tue, 05 May 2020 10:00:00 GMT"


def test_order_of_trust() -> None:
    body, head = ALL_BODY, ALL_HEAD
    expected = [
        ReviewDate(D(2020, 1, 1), "text"),
        ReviewDate(D(2020, 2, 2), "time"),
        ReviewDate(D(2020, 3, 3), "json-ld"),
        ReviewDate(D(2020, 4, 4), "meta:article:modified_time"),
        ReviewDate(D(2020, 5, 5), "http:last-modified"),
        None,
    ]
    got = []
    for step in range(6):
        got.append(find_review_date(page(body, head), LAST_MODIFIED if step < 5 else None))
        if step == 0:
            body = body.replace("<p>Sidan har granskats 2020-01-01</p>", "")
        elif step == 1:
            body = body.replace("<time datetime='2020-02-02'>nyss</time>", "")
        elif step == 2:
            head = head.replace("dateModified", "dateCreated")
        elif step == 3:
            head = head.replace("article:modified_time", "article:published_time")
    assert got == expected


def test_text_beats_newer_machine_dates() -> None:
    # A stated review date wins even when CMS timestamps are newer (render time).
    head = "<meta name='dcterms.modified' content='2025-01-01'>" + ld(
        {"dateModified": "2025-01-01"}
    )
    root = page("<footer>Senast granskad: 2019-01-01</footer>", head)
    assert find_review_date(root, "Wed, 01 Jan 2025 00:00:00 GMT") == ReviewDate(
        D(2019, 1, 1), "text"
    )


def test_only_body_text_dates_give_none() -> None:
    root = page(
        "<h1>Mål</h1><p>I februari 1997 antog kommunfullmäktige mål.</p>"
        "<p>Avtal tecknat 2019-05-01. Mötet hölls den 13 december 2013.</p>"
        "<p>Ändringar gjordes 2020-02-02.</p>"
    )
    assert find_review_date(root) is None


# --------------------------------------------------------------------------- robustness


def test_none_root_and_nothing() -> None:
    assert find_review_date(None) is None
    assert find_review_date(None, None) is None


def test_fragment_and_element_tree_roots() -> None:
    frag = lxml.html.fromstring("<div><p>Uppdaterad 2021-02-03</p></div>")
    assert find_review_date(frag) == ReviewDate(D(2021, 2, 3), "text")
    tree = lxml.html.document_fromstring("<p>Granskad 2021-02-03</p>").getroottree()
    assert find_review_date(tree) == ReviewDate(D(2021, 2, 3), "text")


def test_huge_and_deep_pages() -> None:
    big = page("<p>Uppdaterad mycket text</p>" * 20_000 + "<footer>Granskad 2021-02-03</footer>")
    assert find_review_date(big) == ReviewDate(D(2021, 2, 3), "text")
    deep = page("<div>" * 250 + "Uppdaterad 2021-02-03" + "</div>" * 250)
    assert find_review_date(deep) == ReviewDate(D(2021, 2, 3), "text")
    # libxml2 drops content nested deeper than 256 levels; what is left must not raise.
    deeper = page("<div>" * 5_000 + "Uppdaterad 2021-02-03" + "</div>" * 5_000)
    assert find_review_date(deeper) is None
    many_times = page(
        "<footer>" + "<span><time datetime='bad'>x</time></span>" * 5_000 + "</footer>"
    )
    assert find_review_date(many_times) is None


def test_non_html_root_objects_do_not_raise() -> None:
    assert find_review_date("not an element", "garbage") is None  # type: ignore[arg-type]
    assert find_review_date(42, LAST_MODIFIED) == ReviewDate(  # type: ignore[arg-type]
        D(2020, 5, 5), "http:last-modified"
    )
    assert find_review_date(page("<p>x</p>"), 12345) is None  # type: ignore[arg-type]


def test_review_date_is_frozen_and_sources_are_closed() -> None:
    rd = ReviewDate(D(2020, 1, 1), "text")
    with pytest.raises(dataclasses.FrozenInstanceError):
        rd.source = "time"  # type: ignore[misc]
    assert set(SOURCES) == {
        "text",
        "time",
        "json-ld",
        "meta:article:modified_time",
        "meta:og:updated_time",
        "meta:dcterms.modified",
        "meta:govuk:updated-at",
        "http:last-modified",
    }


def test_time_review_class_beats_updated_class_beats_plain_footer() -> None:
    root = page(
        "<div class='page-reviewed'><time datetime='2021-01-01'>x</time></div>"
        "<div class='last-updated'><time datetime='2022-02-02'>y</time></div>"
        "<footer><time datetime='2023-03-03'>z</time></footer>"
    )
    assert find_review_date(root) == ReviewDate(D(2021, 1, 1), "time")
    root = page(
        "<div class='last-updated'><time datetime='2022-02-02'>y</time></div>"
        "<footer><time datetime='2023-03-03'>z</time></footer>"
    )
    assert find_review_date(root) == ReviewDate(D(2022, 2, 2), "time")


def test_plain_etree_element_root() -> None:
    root = lxml.etree.fromstring("<html><body><p>Granskad 2021-02-03</p></body></html>")
    assert find_review_date(root) == ReviewDate(D(2021, 2, 3), "text")


@pytest.mark.parametrize(
    "text",
    [
        "Sidan har granskats 2018-03-28",
        "SIDAN ÄR ÄNDRAD",
        "Senast Ändrad: i går",
        "äNDRAT",
        "Ändra inte",
        "ÅÄÖ åäö — nothing here © 2023",
        "UPDATED ON",
        "Page last \u212aeviewed",  # no stem either way: "keviewed"
        "GRAN\u212aSKAD",  # the Kelvin sign lower-cases to "k": "gransk"
        "\u0130 reviewed",  # İ lower-cases to "i" + a combining dot
        "modi\u0307fied",
        "publi\u00adcerad",  # a soft hyphen splits the stem
        "",
        "\ud800 lone surrogate updated",
    ],
)
def test_stem_precheck_on_bytes_equals_lower_cased_text(text: str) -> None:
    """The pre-check reads UTF-8 bytes for non-ASCII text; it must find exactly what
    ``str.lower`` and ``in`` find."""
    assert _text_has_stem(text) == _has_stem(text.lower())


def _joined(pieces: list[str], most: int, text_size: int):  # -> SearchStrategy[str]
    """Texts of up to ``most`` parts, each one of ``pieces`` or short random text."""
    from hypothesis import strategies as st

    part = st.one_of(st.sampled_from(pieces), st.text(max_size=text_size))
    return st.lists(part, max_size=most).map("".join)


def test_stem_precheck_equals_lower_cased_text_on_generated_text() -> None:
    from hypothesis import given, settings

    pieces = [
        "gransk",
        "GRANSK",
        "Ändra",
        "ÄNDRA",
        "ändra",
        "andra",
        "Updated",
        "MODIFIED",
        "é",
        "Ä",
        "\u212a",
        "\u0130",
        "ß",
        "ﬁ",
        " ",
        "2018-03-28",
        "publiceR",
        "revideR",
    ]

    @settings(max_examples=300, deadline=None)
    @given(_joined(pieces, 12, 3))
    def check(text: str) -> None:
        assert _text_has_stem(text) == _has_stem(text.lower())

    check()


def test_every_phrase_date_holds_what_the_year_precheck_looks_for() -> None:
    """``find_review_date`` skips the visible text of a page whose text has no year-like
    digits (``_may_hold_year``): sound only if every date ``find_phrase_date`` accepts has one."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from checks.freshness import _may_hold_year

    keywords = ["Sidan har granskats", "Senast uppdaterad:", "Last reviewed on", "Published"]
    fillers = [" ", " den ", " måndag ", ": ", "\n"]
    forms = [
        "{y}-{m:02}-{d:02}",
        "{d} december {y}",
        "{d}.{m}.{y}",
        "March {d}, {y}",
        "{d}/{m} {y}",
    ]
    arabic = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

    @st.composite
    def dates(draw: st.DrawFn) -> str:
        form = draw(st.sampled_from(forms))
        y = draw(st.one_of(st.integers(1985, 2105), st.integers(0, 9999)))  # near the range
        m, d = draw(st.integers(1, 12)), draw(st.integers(1, 28))
        text = form.format(y=y, m=m, d=d)
        return text.translate(arabic) if draw(st.booleans()) else text

    texts = st.tuples(
        st.text(max_size=4),
        st.sampled_from(keywords),
        st.sampled_from(fillers),
        dates(),
        st.text(max_size=4),
    ).map("".join)
    dated = []

    @settings(max_examples=500, deadline=None)
    @given(st.one_of(texts, _joined(keywords + fillers, 10, 4)))
    def check(text: str) -> None:
        if find_phrase_date(text) is not None:
            dated.append(text)
            assert _may_hold_year(text), text

    check()
    assert len(dated) >= 20  # the property was tested on texts that hold a phrase date
    for edge in ("Published 1990-01-01", "Published 31 December 2100"):  # MIN/MAX_YEAR
        assert find_phrase_date(edge) is not None and _may_hold_year(edge), edge
    assert find_phrase_date("Uppdaterad ٢٠١٣-١٢-١٣") is not None  # other scripts' digits
    assert _may_hold_year("Uppdaterad ٢٠١٣-١٢-١٣") and _may_hold_year("Ändrad 2013")
    assert not _may_hold_year("Modified in release 15.4 (port 5432)")
    assert not _may_hold_year("Ändrad i version 15.4 (port 5432)")
