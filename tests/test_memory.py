"""Compact crawl state (docs/performance.md, "Memory"): packed link references read back
as ``LinkRef`` sequences, and the spider's own frontier feeding Scrapy a few pages at a
time, give the same report as holding everything at once."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from checks.models import LinkRef
from checks.policy import Policy
from crawler.crawl_state import CrawlParams, CrawlState, PackedRefs
from crawler.memory import trim
from demo.server import Route, SiteServer
from tests.cli_runner import ROOT, write_config

N_PAGES = 60


def test_packed_refs_read_back_as_link_refs() -> None:
    state = CrawlState(CrawlParams(start_urls=("http://h/",), scopes=("http://h/",)), Policy())
    t = state.target("http://h/a.html", internal=True)
    state.add_ref(t, "http://h/", "A", "a", None)
    state.add_ref(t, "http://h/x.html", "Om A", "a", "top")
    state.add_ref(t, "http://h/y.html", "A", "img", None)
    state.add_ref(t, "http://h/y.html", "Topp", "a", "top")
    results = {r.url: r.found_on for r in state.link_results()}
    plain = (LinkRef("http://h/", "A", "a"), LinkRef("http://h/y.html", "A", "img"))
    top = (LinkRef("http://h/x.html", "Om A", "a"), LinkRef("http://h/y.html", "Topp", "a"))
    assert results["http://h/a.html"] == plain
    assert plain == results["http://h/a.html"]
    assert results["http://h/a.html#top"] == top
    refs = results["http://h/a.html#top"]
    assert isinstance(refs, PackedRefs)
    assert len(refs) == 2 and list(refs) == list(top) and refs[1] == top[1]
    assert refs[:1] == top[:1]
    assert hash(refs) == hash(top)
    assert refs != plain
    assert pickle.loads(pickle.dumps(refs)) == top
    # Strings are stored once: the page, text and tag of every reference are interned.
    assert state.strings.count("http://h/y.html") == 1
    assert state.strings.count("A") == 1


def test_trim_runs() -> None:
    trim()  # glibc here; a no-op elsewhere


def _site(root: Path) -> None:
    """A tree of pages: index -> s0..s5 -> pages, with fragments, an image, a redirect
    and a broken link, so that far more pages are found than the frontier lets through."""

    def doc(title: str, body: str) -> str:
        return (
            f'<!doctype html><html lang="sv"><head><meta charset="utf-8"><title>{title}'
            f"</title></head><body><h1 id='top'>{title}</h1>{body}"
            "<p>Senast granskad: 2026-10-01</p></body></html>"
        )

    sections = [f"s{i}" for i in range(6)]
    (root / "index.html").write_text(
        doc("Start", "".join(f'<a href="{s}/">{s}</a>' for s in sections)), encoding="utf-8"
    )
    for i, s in enumerate(sections):
        (root / s).mkdir()
        links = [f'<a href="p{n}.html">Sida {n}</a>' for n in range(i, N_PAGES, 6)]
        links.append('<a href="../index.html#top">Start</a>')
        (root / s / "index.html").write_text(doc(s, "".join(links)), encoding="utf-8")
        for n in range(i, N_PAGES, 6):
            body = (
                f'<a href="../s{(i + 1) % 6}/p{(n + 1) % N_PAGES}.html#top">Nästa</a>'
                f'<a href="../s{(i + 2) % 6}/#saknas">Saknas</a>'
                '<a href="../gone.html">Borta</a><a href="../old.html">Gammal</a>'
                '<img src="../logo.png" alt="logo">'
            )
            (root / s / f"p{n}.html").write_text(doc(f"Sida {n}", body), encoding="utf-8")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")


def _audit(server: SiteServer, tmp_path: Path, name: str, frontier: int | None) -> dict[str, Any]:
    cfg = write_config(
        tmp_path / f"{name}.toml",
        f"""
[site]
start_urls = ["{server.url("/index.html")}"]
[crawl]
timeout = 5
concurrency = 4
max_pages_per_pattern = 1000
""",
    )
    out = tmp_path / name
    code = "import crawler.spider as s\n"
    if frontier is not None:
        code += f"s.FRONTIER = {frontier}\n"
    code += "from crawler.cli import main\nmain()\n"
    args = ["audit", "--config", str(cfg), "--as-of", "2026-11-26", "-q", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("frontier", [1, 3])
def test_small_frontier_gives_the_same_report(tmp_path: Path, frontier: int) -> None:
    www = tmp_path / "www"
    www.mkdir()
    _site(www)
    routes = {"/old.html": Route(status=301, redirect_to="/index.html")}
    with SiteServer("127.0.0.1", root=www, routes=routes, name="frontier") as server:
        whole = _audit(server, tmp_path, "whole", None)
        fed = _audit(server, tmp_path, "fed", frontier)

    def links(report: dict[str, Any]) -> dict[str, Any]:
        return {
            link["url"]: {**link, "found_on": sorted(map(json.dumps, link["found_on"]))}
            for link in report["links"]
        }

    def findings(report: dict[str, Any]) -> list[str]:
        return sorted(json.dumps(f, sort_keys=True) for f in report["findings"])

    def pages(report: dict[str, Any]) -> dict[str, Any]:
        # depth is the depth a page was first found at: it depends on the crawl order.
        return {p["url"]: {k: v for k, v in p.items() if k != "depth"} for p in report["pages"]}

    # index, six section pages, the pages, and gone.html (a 404 is a page answer too).
    assert whole["run"]["pages_crawled"] == N_PAGES + 8
    assert whole["run"]["complete"] and fed["run"]["complete"]
    assert links(fed) == links(whole)
    assert findings(fed) == findings(whole)
    assert pages(fed) == pages(whole)
    verdicts = {link["url"]: link["detail"] for link in whole["links"]}
    assert verdicts[server.url("/s2/#saknas")] == "missing_fragment"
    assert verdicts[server.url("/gone.html")] == "http_404"
