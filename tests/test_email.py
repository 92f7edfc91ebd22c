"""Editor emails: subject, MIME structure, languages, routing, size cap, header safety."""

from __future__ import annotations

import datetime as dt
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from checks.changes import Changes, FindingState, compute_changes
from checks.models import Check, Finding, Page, Severity
from checks.owners import Owner, route_changes
from reports import messages as M
from reports.email_build import (
    EmailSettings,
    ReportMeta,
    build_digest,
    build_message,
    header_safe,
)

SITE = "https://www.umea.se"
NOW = dt.datetime(2024, 11, 25, 6, 0, tzinfo=dt.UTC)  # Monday of ISO week 48
FIRST = dt.datetime(2024, 11, 4, 6, 0, tzinfo=dt.UTC)
META = ReportMeta(run_id=42, site="umea.se/internationellt", as_of=NOW.date(), started_at=NOW)
ANNA = Owner(
    "Anna Andersson",
    ("anna@umea.se",),
    "sv",
    "https://cms.umea.se/edit?url={url}",
    (f"{SITE}/internationellt/",),
)
BEN = Owner("Ben Brown", ("ben@umea.se",), "en", "", (f"{SITE}/internationellt/english/",))
FALLBACK = Owner("", ("webb@umea.se",), "sv")
SETTINGS = EmailSettings(from_addr="sitewatch@umea.se", report_url="https://rapport.umea.se/r/42")


def link(page: str, target: str, detail: str = "http_404", sev=Severity.ERROR, text="Läs mer"):
    return Finding(Check.BROKEN_LINK, sev, page, target, detail, link_text=text)


def changes_for(prefix: str) -> Changes:
    """3 new, 1 still open (since FIRST), 2 fixed on pages under prefix."""
    new = [link(f"{prefix}p{i}", f"https://ext.se/gone{i}") for i in range(2)]
    new.append(Finding(Check.STALE_PAGE, Severity.ERROR, f"{prefix}old"))
    still = link(f"{prefix}p9", "https://ext.se/still")
    fixed = [link(f"{prefix}p{i}", f"https://ext.se/fixed{i}") for i in range(2)]
    prev = {f.key: FindingState(FIRST, FIRST, 3, f.severity, f) for f in [still, *fixed]}
    return compute_changes([*new, still], prev, now=NOW)


PAGES = {
    f"{SITE}/internationellt/p0": Page(f"{SITE}/internationellt/p0", 200, "Studera i Umeå"),
    f"{SITE}/internationellt/old": Page(
        f"{SITE}/internationellt/old", 200, "Gammal sida", review_date=dt.date(2023, 3, 28)
    ),
    f"{SITE}/internationellt/english/p0": Page(
        f"{SITE}/internationellt/english/p0", 200, "Study in Umeå"
    ),
}


def parts(msg: EmailMessage) -> tuple[str, str]:
    assert msg.get_content_type() == "multipart/alternative"
    plain, html = list(msg.iter_parts())
    assert plain.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    return plain.get_content(), html.get_content()


def test_swedish_message() -> None:
    msg = build_message(
        ANNA,
        changes_for(f"{SITE}/internationellt/"),
        META,
        from_addr="sitewatch@umea.se",
        pages=PAGES,
        report_url=SETTINGS.report_url,
        now=NOW,
    )
    assert msg["Subject"] == "3 nya fel, 2 åtgärdade – umea.se/internationellt v.48"
    assert msg["To"] == "Anna Andersson <anna@umea.se>"
    assert msg["From"] == "sitewatch@umea.se"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Sitewatch-Run"] == "42"
    assert msg["Message-ID"].endswith("@umea.se>") and msg["Date"]
    text, html = parts(msg)
    for body in (text, html):
        assert "Sidan som länken pekar på finns inte (404)" in body
        assert "Studera i Umeå" in body
        assert "Läs mer" in body
        assert "ext.se/gone0" in body
        assert "Sedan 4 november 2024 (21 dagar)" in body  # still open: since when
        assert "Senast granskad 28 mars 2023 (608 dagar sedan)" in body  # stale page
        assert "Redigera sidan" in body
        assert "Åtgärdat sedan förra veckan (2)" in body
    assert "https://cms.umea.se/edit?url=https%3A%2F%2Fwww.umea.se%2Finternationellt%2Fp0" in text
    assert "<table" in html and 'width="600"' in html
    assert "<script" not in html.lower() and "<style" not in html.lower()
    assert 'style="' in html  # CSS inlined
    assert '<html lang="sv"' in html


def test_english_message() -> None:
    msg = build_message(
        BEN,
        changes_for(f"{SITE}/internationellt/english/"),
        META,
        from_addr="sitewatch@umea.se",
        pages=PAGES,
        now=NOW,
    )
    assert msg["Subject"] == "3 new problems, 2 fixed – umea.se/internationellt week 48"
    text, html = parts(msg)
    for body in (text, html):
        assert "The page the link points to does not exist (404)" in body
        assert "Since 4 November 2024 (21 days)" in body
        assert "Study in Umeå" in body
        assert "Fixed since last week (2)" in body
        assert "Redigera" not in body and "Edit the page" not in body  # no edit template
    assert '<html lang="en"' in html


def test_subject_variants() -> None:
    only_open = compute_changes(
        [link(f"{SITE}/internationellt/a", "https://t/x")],
        {
            ("broken_link", f"{SITE}/internationellt/a", "https://t/x"): FindingState(
                FIRST, FIRST, 1, Severity.ERROR
            )
        },
        now=NOW,
    )
    msg = build_message(ANNA, only_open, META, from_addr="s@umea.se", now=NOW)
    assert msg["Subject"] == "1 kvarstående fel – umea.se/internationellt v.48"
    one_new = compute_changes([link(f"{SITE}/internationellt/a", "https://t/x")], {}, now=NOW)
    msg = build_message(BEN, one_new, META, from_addr="s@umea.se", now=NOW)
    assert msg["Subject"] == "1 new problem – umea.se/internationellt week 48"
    msg = build_message(ANNA, Changes(), META, from_addr="s@umea.se", now=NOW)
    assert msg["Subject"] == "Inga fel – umea.se/internationellt v.48"


def test_incomplete_run_says_so() -> None:
    a = link(f"{SITE}/internationellt/a", "https://t/a")
    prev = {a.key: FindingState(FIRST, FIRST, 1, Severity.ERROR, a)}
    ch = compute_changes([], prev, now=NOW, complete=False, incomplete_reasons=["max_pages"])
    msg = build_message(ANNA, ch, META, from_addr="s@umea.se", now=NOW)
    assert msg["Subject"].endswith("(ofullständig kontroll)")
    text, html = parts(msg)
    assert "Kontrollen blev inte klar (max_pages)" in text
    assert "markeras inget som åtgärdat" in html
    assert "1 tidigare fel kunde inte kontrolleras" in text
    assert "Åtgärdat" not in text


def test_digest_routes_per_owner_and_skips_empty() -> None:
    findings = [
        link(f"{SITE}/internationellt/a", "https://t/1"),
        link(f"{SITE}/internationellt/english/b", "https://t/2"),
        link(f"{SITE}/kontakt", "https://t/3"),
    ]
    quiet = Owner("Quiet", ("quiet@umea.se",), "sv", match=(f"{SITE}/tyst/",))
    routed = route_changes(compute_changes(findings, {}, now=NOW), (ANNA, BEN, quiet), FALLBACK)
    out = build_digest(routed, META, SETTINGS, now=NOW)
    assert list(out) == ["anna@umea.se", "ben@umea.se", "webb@umea.se"]
    bodies = {k: parts(m)[0] for k, m in out.items()}
    assert "https://t/1" in bodies["anna@umea.se"] and "https://t/2" not in bodies["anna@umea.se"]
    assert "https://t/2" in bodies["ben@umea.se"] and "https://t/1" not in bodies["ben@umea.se"]
    assert "https://t/3" in bodies["webb@umea.se"]
    assert bodies["webb@umea.se"].startswith("Hej!")
    # all-clear on request
    out = build_digest(
        routed, META, EmailSettings(from_addr="s@umea.se", send_all_clear=True), now=NOW
    )
    assert out["quiet@umea.se"]["Subject"] == "Inga fel – umea.se/internationellt v.48"
    assert "Inga fel hittades på dina sidor" in parts(out["quiet@umea.se"])[0]


def test_shared_and_multiple_addresses() -> None:
    a = Owner("A", ("shared@umea.se", "a2@umea.se"), "en", match=(f"{SITE}/a/",))
    b = Owner("B", ("Shared@umea.se",), "sv", match=(f"{SITE}/b/",))
    ch = compute_changes(
        [link(f"{SITE}/a/1", "https://t/a"), link(f"{SITE}/b/1", "https://t/b")], {}, now=NOW
    )
    out = build_digest(route_changes(ch, (a, b), None), META, SETTINGS, now=NOW)
    assert sorted(out) == ["a2@umea.se", "shared@umea.se"]
    shared = out["shared@umea.se"]
    assert shared["Subject"].startswith("2 new problems")  # language of the first owner
    text = parts(shared)[0]
    assert "https://t/a" in text and "https://t/b" in text
    assert "https://t/b" not in parts(out["a2@umea.se"])[0]
    assert shared["Message-ID"] != out["a2@umea.se"]["Message-ID"]


def test_message_id_is_deterministic() -> None:
    ch = changes_for(f"{SITE}/internationellt/")
    m1 = build_message(ANNA, ch, META, from_addr="s@umea.se")
    m2 = build_message(ANNA, ch, META, from_addr="s@umea.se")
    assert m1["Message-ID"] == m2["Message-ID"]
    other_run = ReportMeta(43, META.site, META.as_of, NOW + dt.timedelta(days=7))
    assert (
        build_message(ANNA, ch, other_run, from_addr="s@umea.se")["Message-ID"] != m1["Message-ID"]
    )


def test_header_injection_and_escaping() -> None:
    page = f"{SITE}/internationellt/evil"
    evil = Finding(
        Check.BROKEN_LINK,
        Severity.ERROR,
        page,
        "javascript:alert(1)",
        "http_404",
        link_text="<script>alert(1)</script>\r\nBcc: victim@example.com",
    )
    pages = {page: Page(page, 200, "Title\r\nBcc: victim@example.com\r\n\r\n<b>x</b>")}
    meta = ReportMeta(42, "umea.se\r\nBcc: victim@example.com", NOW.date(), NOW)
    owner = Owner("Anna\r\nBcc: victim@example.com", ("anna@umea.se",), "sv", match=(f"{SITE}/",))
    msg = build_message(
        owner, compute_changes([evil], {}, now=NOW), meta, from_addr="s@umea.se", pages=pages
    )
    raw = msg.as_bytes()
    reparsed = message_from_bytes(raw, policy=policy.default)
    assert reparsed["Bcc"] is None
    head = raw.split(b"\n\n", 1)[0].decode()
    assert not [line for line in head.splitlines() if line.lower().startswith("bcc")]
    assert reparsed["Subject"] == "1 nytt fel – umea.se Bcc: victim@example.com v.48"
    assert all("\n" not in v and "\r" not in v for v in reparsed.values())
    _, html = parts(msg)
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html
    assert 'href="javascript:' not in html
    assert header_safe("a\r\nb\tc\u2028d") == "a b c d"
    with pytest.raises(ValueError):
        build_message(
            ANNA,
            Changes(),
            META,
            from_addr="s@umea.se",
            recipient="anna@umea.se\r\nBcc: victim@example.com",
        )


def test_five_thousand_findings_fit_under_100_kb() -> None:
    findings = [
        link(
            f"{SITE}/internationellt/sida-{i}",
            f"https://extern.example.com/{'x' * 60}/{i}",
            text="En ganska lång länktext som beskriver vart länken går " * 2,
        )
        for i in range(5000)
    ]
    ch = compute_changes(findings, {}, now=NOW)
    msg = build_message(
        ANNA, ch, META, from_addr="s@umea.se", report_url="https://rapport.umea.se/r/42"
    )
    text, html = parts(msg)
    assert len(html.encode()) < 100 * 1024
    assert len(msg.as_bytes()) < 250 * 1024
    assert "Nya fel (5000)" in html
    assert "… och 4960 till" in html and "https://rapport.umea.se/r/42" in html
    assert "… och 4960 till" in text
    # a smaller budget cuts further, still with a count
    small = build_message(ANNA, ch, META, from_addr="s@umea.se", max_html_bytes=20_000)
    shtml = parts(small)[1]
    assert len(shtml.encode()) <= 20_000 and "till" in shtml


def test_transient_warning_wording() -> None:
    t = link(f"{SITE}/internationellt/a", "https://t/slow", "timeout", Severity.WARNING)
    text, _ = parts(
        build_message(ANNA, compute_changes([t], {}, now=NOW), META, from_addr="s@umea.se")
    )
    assert "svarar inte i tid" in text and "kan vara tillfälligt" in text


def test_catalog_covers_every_check_in_both_languages() -> None:
    assert M.covered_checks() == set(Check)
    assert set(M.TEXTS["sv"]) == set(M.TEXTS["en"])
    assert set(M.VERDICTS["sv"]) == set(M.VERDICTS["en"])
    assert set(M.PLURALS["sv"]) == set(M.PLURALS["en"])
    f = Finding(Check.BROKEN_LINK, Severity.ERROR, "https://x", "https://y", "http_503")
    assert M.verdict("sv", f) == "Servern som länken pekar på har problem (503)"
    assert M.verdict("en", f) == "The server the link points to has problems (503)"
    assert M.format_day("sv", dt.date(2024, 11, 28)) == "28 november 2024"


def test_content_language_header_survives_the_mime_parts() -> None:
    for owner, lang in ((ANNA, "sv"), (BEN, "en")):
        msg = build_message(
            owner, changes_for(owner.match[0]), META, from_addr="sitewatch@umea.se", now=NOW
        )
        again = message_from_bytes(msg.as_bytes(), policy=policy.default)
        assert again["Content-Language"] == lang
        parts(again)  # still multipart/alternative, plain then html


def test_incomplete_run_never_says_all_clear() -> None:
    """An owner whose pages the incomplete run did not reach is not told "no problems"."""
    a = link(f"{SITE}/internationellt/a", "https://t/a")
    prev = {a.key: FindingState(FIRST, FIRST, 1, Severity.ERROR, a)}
    ch = compute_changes([], prev, now=NOW, complete=False, incomplete_reasons=["max_pages"])
    routed = {ANNA: ch, BEN: Changes(complete=False, incomplete_reasons=("max_pages",))}
    out = build_digest(
        routed, META, EmailSettings(from_addr="s@umea.se", send_all_clear=True), now=NOW
    )
    anna, ben = out["anna@umea.se"], out["ben@umea.se"]
    assert anna["Subject"] == (
        "1 fel ej kontrollerat – umea.se/internationellt v.48 (ofullständig kontroll)"
    )
    assert ben["Subject"] == "No new problems – umea.se/internationellt week 48 (incomplete check)"
    for msg in (anna, ben):
        text, html = parts(msg)
        assert M.text(msg["Content-Language"], "all_clear") not in text
        assert M.text(msg["Content-Language"], "all_clear") not in html
    assert "Kontrollen blev inte klar (max_pages)" in parts(anna)[0]
    assert "1 tidigare fel kunde inte kontrolleras" in parts(anna)[0]
    # A complete run with nothing to report still says so.
    done = build_digest(
        {ANNA: Changes()}, META, EmailSettings(from_addr="s@umea.se", send_all_clear=True)
    )
    assert "Inga fel hittades på dina sidor" in parts(done["anna@umea.se"])[0]


def test_html_part_shows_swedish_urls_decoded_and_links_them_encoded() -> None:
    page = f"{SITE}/internationellt/kontakt-och-%C3%B6ppettider"
    target = "https://region.se/eu-kontoret/m%C3%B6ten"
    changes = compute_changes([link(page, target)], {}, now=NOW)
    msg = build_message(ANNA, changes, META, from_addr="sitewatch@umea.se", pages={}, now=NOW)
    text, html = parts(msg)
    assert "www.umea.se/internationellt/kontakt-och-öppettider" in html
    assert "region.se/eu-kontoret/möten" in html
    assert f'href="{page}"' in html and f'href="{target}"' in html
    assert page in text  # the plain part keeps the address a mail client can follow
