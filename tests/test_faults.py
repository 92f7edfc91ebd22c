"""Network faults: misbehaving servers on loopback, each audited by the real CLI.

Every fault page sits in the crawled section (``/<fault>/page.html``, linked from
``/<fault>/index.html``), so the crawler fetches it as a page: the worst case for size and
time. Each audit must finish (well within the subprocess timeout), write its reports,
exit 0 or 1 (not 2), print no traceback, keep the child's peak RSS bounded, and give the
fault page the verdict below. Limits: ``crawl.timeout = 3``, ``crawl.retries = 1``,
``crawl.max_page_bytes = 1_000_000``.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from demo.server import Route, SiteServer
from tests import faults
from tests.cli_runner import write_config
from tests.faults import Handler, Measured, html_doc, run_measured

TIMEOUT = 3.0
RETRIES = 1
MAX_PAGE_BYTES = 1_000_000
PEAK_RSS_MB = 400


@dataclass(frozen=True)
class Fault:
    name: str
    handler: Handler
    verdict: tuple[str, str]
    #: Whether the link on the fault page (to after.html) is found and crawled.
    follows: bool
    #: Whether the page is judged on its first max_page_bytes (stats.pages_truncated).
    truncated: bool = False


FAULTS = [
    Fault("reset_mid_body", faults.reset_mid_body, ("broken", "connection"), False),
    Fault("trickle", faults.trickle, ("broken", "timeout"), False),
    Fault("never_answers", faults.never_answers, ("broken", "timeout"), False),
    Fault("truncated_gzip", faults.truncated_gzip, ("ok", ""), True),
    Fault("corrupt_gzip", faults.corrupt_gzip, ("broken", "connection"), False),
    Fault("gzip_bomb", faults.gzip_bomb, ("ok", ""), False, truncated=True),
    Fault("huge_page", faults.huge_page, ("ok", ""), True, truncated=True),
    Fault("huge_page_unsized", faults.huge_page_unsized, ("ok", ""), True, truncated=True),
    Fault("endless_chunked", faults.endless_chunked, ("ok", ""), True, truncated=True),
    Fault("no_content_type", faults.no_content_type, ("ok", ""), True),
    Fault("invalid_content_type", faults.invalid_content_type, ("ok", ""), True),
    Fault("nonsense_content_type", faults.nonsense_content_type, ("ok", ""), False),
    Fault("binary_as_html", faults.binary_as_html, ("ok", ""), False),
    Fault("invalid_utf8", faults.invalid_utf8, ("ok", ""), True),
]


@pytest.fixture(scope="module")
def server():
    s = SiteServer("127.0.0.1", name="faults")
    for f in FAULTS:
        s.add_route(
            f"/{f.name}/index.html",
            Route(body=html_doc("Start", '<a href="page.html">Felet</a>')),
        )
        s.add_route(f"/{f.name}/page.html", Route(handler=f.handler))
        s.add_route(
            f"/{f.name}/after.html",
            Route(body=html_doc("Efter", "<p>Sidan har granskats 2026-10-01</p>")),
        )
    s.start()
    yield s
    s.stop()


def audit_fault(server: SiteServer, name: str, tmp_path: Path) -> Measured:
    cfg = write_config(
        tmp_path / "site.toml",
        f"""
[site]
name = "fault {name}"
start_urls = ["{server.url(f"/{name}/index.html")}"]

[crawl]
timeout = {TIMEOUT}
retries = {RETRIES}
max_page_bytes = {MAX_PAGE_BYTES}
""",
    )
    return run_measured("audit", "--config", str(cfg), "--as-of", "2026-11-26", cwd=tmp_path)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault(server: SiteServer, fault: Fault, tmp_path: Path) -> None:
    m = audit_fault(server, fault.name, tmp_path)
    r = m.result
    assert r.code in (0, 1), r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert (r.out_dir / "report.html").stat().st_size > 0
    assert m.peak_rss_mb < PEAK_RSS_MB, f"peak RSS {m.peak_rss_mb:.0f} MB"

    links = r.links()
    page_url = server.url(f"/{fault.name}/page.html")
    link = links[page_url]
    assert (link["verdict"], link["detail"]) == fault.verdict, link
    after = server.url(f"/{fault.name}/after.html")
    assert (after in r.pages()) is fault.follows, sorted(r.pages())

    stats = r.report["run"]["stats"]
    assert stats["requests"] == stats["responses"], stats
    assert stats.get("pages_truncated", 0) == int(fault.truncated), stats
    assert r.report["run"]["complete"] is True, r.report["run"]["incomplete_reasons"]
    print(
        f"{fault.name}: {link['verdict']} {link['detail']} status={link['status']} "
        f"peak_rss={m.peak_rss_mb:.0f}MB seconds={m.seconds:.1f} "
        f"requests={server.hits(f'/{fault.name}/page.html')} stats={stats}"
    )


ROBOTS_FAULTS = {
    "gzip_bomb": faults.gzip_bomb,
    "never_answers": faults.never_answers,
    "trickle": faults.trickle,
    "huge_page": faults.huge_page,
    "binary": faults.binary_as_html,
    "reset": faults.reset_mid_body,
}


@pytest.mark.parametrize("name", list(ROBOTS_FAULTS))
def test_robots_txt_fault(name: str, tmp_path: Path) -> None:
    """A robots.txt that misbehaves counts as no robots.txt: the crawl goes on."""
    s = SiteServer("127.0.0.2", name=f"robots-{name}")
    s.add_route("/robots.txt", Route(handler=ROBOTS_FAULTS[name]))
    s.add_route("/site/index.html", Route(body=html_doc("Start", '<a href="page.html">Sida</a>')))
    s.add_route("/site/page.html", Route(body=html_doc("Sida", "<p>Senast granskad: 2026-10-01")))
    with s:
        cfg = write_config(
            tmp_path / "site.toml",
            f"""
[site]
start_urls = ["{s.url("/site/index.html")}"]

[crawl]
timeout = {TIMEOUT}
retries = {RETRIES}
max_page_bytes = {MAX_PAGE_BYTES}
""",
        )
        m = run_measured("audit", "--config", str(cfg), "--as-of", "2026-11-26", cwd=tmp_path)
        r = m.result
        assert r.code in (0, 1), r.stderr
        assert "Traceback" not in r.stderr, r.stderr
        assert m.peak_rss_mb < PEAK_RSS_MB, f"peak RSS {m.peak_rss_mb:.0f} MB"
        assert s.hits("/robots.txt") >= 1
        assert s.url("/site/page.html") in r.pages(), r.report["run"]
        assert r.links()[s.url("/site/page.html")]["verdict"] == "ok"
        if name != "binary":  # random bytes parse as an empty robots.txt: no error
            assert r.report["run"]["stats"]["robots_txt_errors"] == 1
        print(f"robots {name}: peak_rss={m.peak_rss_mb:.0f}MB seconds={m.seconds:.1f}")


# --------------------------------------------------------------------------- unit level


def test_decode_capped_every_encoding() -> None:
    import brotli
    from backports import zstd

    from crawler.engine.compression import decode_capped

    data = b"<p>Hej</p>" * 50_000
    raw = zlib.compressobj(wbits=-15)
    deflate_raw = raw.compress(data) + raw.flush()
    for encoding, body in [
        (b"gzip", gzip.compress(data)),
        (b"x-gzip", gzip.compress(data[:1000]) + gzip.compress(data[1000:])),  # two members
        (b"deflate", zlib.compress(data)),
        (b"deflate", deflate_raw),  # raw deflate, as some servers send it
        (b"br", brotli.compress(data)),
        (b"zstd", zstd.compress(data)),
    ]:
        assert decode_capped(body, encoding, len(data) * 2) == (data, False), encoding
        assert decode_capped(body, encoding, 1000) == (data[:1000], True), encoding


def test_decode_capped_bomb_and_damage() -> None:
    from crawler.engine.compression import decode_capped
    from tests.faults import gzip_bomb_parts

    first, block, _, _ = gzip_bomb_parts()
    out, cut = decode_capped(first + block * 200, b"gzip", MAX_PAGE_BYTES)
    assert (len(out), cut) == (MAX_PAGE_BYTES, True)
    page = html_doc("x", "".join(f"<p>{i}</p>" for i in range(5000)))
    whole = gzip.compress(page)
    half, cut = decode_capped(whole[: len(whole) // 2], b"gzip", 10**6)
    assert half and page.startswith(half) and len(half) < len(page) and not cut
    with pytest.raises(zlib.error):  # nothing decodes at all
        decode_capped(b"<html>not gzip at all</html>", b"gzip", 1000)
