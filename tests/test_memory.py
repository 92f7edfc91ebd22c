"""Crawl state kept small (docs/performance.md, "Memory"): link references (and, after a
big crawl, the targets) in a temporary SQLite file read back as ``LinkRef`` sequences, and
the spider's own frontier feeding Scrapy a few pages at a time, give the same report as
holding everything at once; the file is always removed."""

from __future__ import annotations

import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from checks.models import LinkRef
from checks.policy import Policy
from crawler.state import crawl_state, spill
from crawler.state.crawl_state import CrawlParams, CrawlState, Links, SpilledRefs
from demo.server import Route, SiteServer
from tests.cli_runner import ROOT, resolve_found_on, write_config

N_PAGES = 60


def _state() -> CrawlState:
    return CrawlState(CrawlParams(start_urls=("http://h/",), scopes=("http://h/",)), Policy())


@pytest.mark.parametrize("inline", [1000, 1])
@pytest.mark.parametrize("memory", [0, 1000])
def test_spilled_refs_read_back_as_link_refs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, inline: int, memory: int
) -> None:
    monkeypatch.setattr(crawl_state, "INLINE_REFS", inline)
    monkeypatch.setattr(spill, "BATCH", 3)
    monkeypatch.setattr(spill, "MEMORY_REFS", memory)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    state = _state()
    t = state.target("http://h/a.html", internal=True)
    other = state.target("http://h/b.html", internal=True)
    state.add_ref(t, "http://h/", "A", "a", None)
    state.add_ref(other, "http://h/", "B", "a", None)
    state.add_ref(t, "http://h/x.html", "Om A", "a", "top")
    state.add_ref(t, "http://h/y.html", "A", "img", None)
    state.add_ref(t, "http://h/y.html", "Topp", "a", "top")
    # The spill's private directory, or none while the references fit in memory.
    assert len(list(tmp_path.iterdir())) == (0 if memory else 1)
    results = {r.url: r.found_on for r in state.link_results()}
    assert list(results) == ["http://h/a.html", "http://h/a.html#top", "http://h/b.html"]
    plain = (LinkRef("http://h/", "A", "a"), LinkRef("http://h/y.html", "A", "img"))
    top = (LinkRef("http://h/x.html", "Om A", "a"), LinkRef("http://h/y.html", "Topp", "a"))
    assert results["http://h/a.html"] == plain
    assert plain == results["http://h/a.html"]
    assert results["http://h/a.html#top"] == top
    assert results["http://h/b.html"] == (LinkRef("http://h/", "B", "a"),)
    refs = results["http://h/a.html#top"]
    assert isinstance(refs, SpilledRefs if inline == 1 else tuple)
    assert len(refs) == 2 and list(refs) == list(top) and refs[1] == top[1]
    assert refs[:1] == top[:1]
    assert hash(refs) == hash(top)
    assert refs != plain
    assert pickle.loads(pickle.dumps(refs)) == top
    # Read back as often as asked.
    assert {r.url: r.found_on for r in state.link_results()} == results
    state.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("hold", [0, 1000])
def test_links_are_made_again_on_every_pass(monkeypatch: pytest.MonkeyPatch, hold: int) -> None:
    monkeypatch.setattr(spill, "BATCH", 2)
    monkeypatch.setattr(spill, "MEMORY_REFS", 0)
    monkeypatch.setattr(crawl_state, "HOLD_REFS", hold)
    state = _state()
    start = state.target("http://h/", internal=True)
    start.start = True  # a start URL nobody links to still has its result
    for n in range(5):
        t = state.target(f"http://h/{n}.html", internal=True)
        state.add_ref(t, "http://h/", f"Sida {n}", "a", None)
    late = state.target("http://h/late/", internal=True)
    late.start = True
    assert len(Links(state)) == 7  # counted by a pass of its own
    links = Links(state)
    first = tuple(links)
    assert [link.url for link in first] == [
        "http://h/",
        *(f"http://h/{n}.html" for n in range(5)),
        "http://h/late/",
    ]
    assert first[0].found_on == () and first[1].found_on == (LinkRef("http://h/", "Sida 0"),)
    assert len(links) == 7 and links == first and first == tuple(links)
    assert links[2] == first[2]
    assert pickle.loads(pickle.dumps(links)) == first
    assert (links._held is not None) == (hold > 0)  # held, or made again from the spill
    links.close()
    assert not Path(state.spill.path).exists()


def test_spill_is_removed_at_exit_and_read_in_forked_children(tmp_path: Path) -> None:
    code = f"""
import os, tempfile
tempfile.tempdir = {str(tmp_path)!r}
import crawler.state.spill
from crawler.state.spill import RefSpill
crawler.state.spill.MEMORY_REFS = 3
s = RefSpill()
for n in range(7):
    s.add(n % 3, "http://h/", str(n), "a", None)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    os.write(w, " ".join(row[2] for row in s.targets()).encode())
    s.close()  # a child lets go without removing the parent's file
    os._exit(0)
os.close(w)
print(os.read(r, 1000).decode())
os.waitpid(pid, 0)
print(os.path.exists(s.path))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    # Grouped by target, each target's references in the order they were added.
    assert proc.stdout.split() == ["0", "3", "6", "1", "4", "2", "5", "True"]
    assert list(tmp_path.iterdir()) == []  # removed at exit (atexit)


#: Frees ~40 MB of 4 KB blocks (each its own malloc, too small for mmap) while every
#: hundredth stays alive, so the heap cannot shrink from its top; prints the resident set
#: before and after ``trim``.
TRIM_CHILD = """
import os
from crawler.state.memory import trim
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
blocks = [bytes(4000) + bytes([i % 256]) for i in range(10_000)]
keep = blocks[::100]
del blocks
before = rss()
trim()
print(before, rss())
"""


@pytest.mark.skipif(
    not Path("/proc/self/statm").exists() or platform.libc_ver()[0] != "glibc",
    reason="needs glibc (malloc_trim) and /proc",
)
def test_trim_gives_freed_heap_back() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", TRIM_CHILD],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    before, after = map(int, proc.stdout.split())
    assert before - after > 20 * 2**20, (before, after)  # most of the ~40 MB freed


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


def _run(
    server: SiteServer, tmp_path: Path, name: str, patch: str, crawl: str = ""
) -> subprocess.CompletedProcess[str]:
    """``sitewatch audit`` of ``server`` in a child, after running ``patch`` there; its
    temporary files go to ``tmp_path/tmp-NAME``."""
    cfg = write_config(
        tmp_path / f"{name}.toml",
        f"""
[site]
start_urls = ["{server.url("/index.html")}"]
[crawl]
timeout = 5
concurrency = 4
max_pages_per_pattern = 1000
{crawl}
""",
    )
    out = tmp_path / name
    temp = tmp_path / f"tmp-{name}"
    temp.mkdir()
    code = patch + "\nfrom crawler.app.cli import main\nmain()\n"
    args = ["audit", "--config", str(cfg), "--as-of", "2026-11-26", "-q", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TMPDIR": str(temp)},
        stdin=subprocess.DEVNULL,
    )
    # The reference spill (crawler.state.spill) is gone however the audit ended (the directory
    # also holds Jinja2's bytecode cache).
    assert list(temp.glob("sitewatch-refs-*")) == []
    return proc


def _audit(
    server: SiteServer, tmp_path: Path, name: str, patch: str = "", crawl: str = ""
) -> dict[str, Any]:
    proc = _run(server, tmp_path, name, patch, crawl)
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads((tmp_path / name / "report.json").read_text(encoding="utf-8"))


#: Audits that must give the same report as the default one: a frontier of 1 and 3 pages
#: (crawler.engine.frontier.FRONTIER), and the references written 2 at a time and every target's
#: ``found_on`` read back from the spill file as it is iterated (crawler.state.spill).
SMALL = {
    "frontier1": "import crawler.engine.frontier as s; s.FRONTIER = 1",
    "frontier3": "import crawler.engine.frontier as s; s.FRONTIER = 3",
    "spilled": (
        "import crawler.state.crawl_state as c, crawler.state.spill as p\n"
        "c.INLINE_REFS, c.HOLD_REFS, p.BATCH, p.MEMORY_REFS = 1, 0, 2, 0"
    ),
}


@pytest.mark.parametrize("small", list(SMALL))
def test_small_frontier_or_spill_gives_the_same_report(tmp_path: Path, small: str) -> None:
    whole, fed, server = _audits(tmp_path, SMALL[small])
    _assert_same_report(whole, fed, server)


#: Audits whose pages are read elsewhere (crawler.pages.parse_worker): in the audit process, by
#: three workers, by two of which one stops after its first page (the spider then sends
#: every page to the other). (crawl.parse_workers, a patch run before the audit)
WORKERS = {
    "in_process": ("parse_workers = 0", ""),
    "three": ("parse_workers = 3", ""),
    "one_dies": (
        "parse_workers = 2",
        """
import os
import crawler.pages.parse_worker as w
start, serve, made = w.ParseWorker.start.__func__, w._serve, []
def started(cls, phrases):
    w.DIES = len(made) == 1  # the second worker, in its forked child
    made.append(start(cls, phrases))
    return made[-1]
def served(sock, phrases):
    if w.DIES:
        sock.recv(1)  # its first page arrives: gone without an answer
        os._exit(0)
    serve(sock, phrases)
w.ParseWorker.start = classmethod(started)
w._serve = served
""",
    ),
}


@pytest.mark.parametrize("variant", list(WORKERS))
def test_parse_workers_give_the_same_report(tmp_path: Path, variant: str) -> None:
    crawl, patch = WORKERS[variant]
    whole, fed, server = _audits(tmp_path, patch, crawl)
    _assert_same_report(whole, fed, server)
    stats = fed["run"]["stats"]
    assert "parse_workers" not in stats if variant == "in_process" else stats["parse_workers"]
    if variant == "three":
        assert stats["parse_workers"] == 3
        assert "parse_worker_lost" not in stats
    if variant == "one_dies":
        assert stats["parse_workers"] == 2
        assert stats["parse_worker_lost"] == 1


def _audits(
    tmp_path: Path, patch: str, crawl: str = ""
) -> tuple[dict[str, Any], dict[str, Any], SiteServer]:
    """The default audit of the ``_site`` and one after ``patch`` (with ``crawl`` lines)."""
    www = tmp_path / "www"
    www.mkdir()
    _site(www)
    routes = {"/old.html": Route(status=301, redirect_to="/index.html")}
    with SiteServer("127.0.0.1", root=www, routes=routes, name="frontier") as server:
        whole = _audit(server, tmp_path, "whole")
        fed = _audit(server, tmp_path, "fed", patch, crawl)
    return whole, fed, server


def _assert_same_report(whole: dict[str, Any], fed: dict[str, Any], server: SiteServer) -> None:
    def links(report: dict[str, Any]) -> dict[str, Any]:
        return {
            link["url"]: {**link, "found_on": sorted(map(json.dumps, link["found_on"]))}
            for link in resolve_found_on(report)["links"]
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


@pytest.mark.parametrize("error", ["KeyboardInterrupt", "RuntimeError('boom')"])
def test_spill_removed_when_the_audit_fails(tmp_path: Path, error: str) -> None:
    www = tmp_path / "www"
    www.mkdir()
    _site(www)
    crash = (
        "import crawler.engine.audit as a\n"
        "def boom(*args, **kwargs):\n"
        f"    raise {error}\n"
        "a.build_report = boom\n"
    )
    with SiteServer("127.0.0.1", root=www, name="spillcrash") as server:
        proc = _run(server, tmp_path, "crash", crash)  # asserts the spill is gone
    assert proc.returncode != 0
    assert ("Aborted!" if error == "KeyboardInterrupt" else "boom") in proc.stderr


@pytest.mark.parametrize("count", [0, 1, 6, 7, 13, 14, 15])
def test_long_found_on_encoded_in_pieces_gives_the_same_text(count: int) -> None:
    from checks.models import LinkResult, Verdict
    from crawler.history.rows import _found_on_json
    from reports import json_report

    refs = tuple(LinkRef(f"http://h/{n}\u00e9", f'Sida "{n}"\u2028', "a") for n in range(count))
    link = LinkResult("http://h/x.html", Verdict.OK, status=200, found_on=refs)
    whole = json_report._ENCODE(json_report.link_to_dict(link))
    old = json_report.FOUND_ON_CHUNK
    try:
        json_report.FOUND_ON_CHUNK = 7
        assert "".join(json_report._LinkEncoder()(link)) == whole
    finally:
        json_report.FOUND_ON_CHUNK = old
    assert _found_on_json(refs, 7) == json.dumps([[r.page, r.text, r.tag] for r in refs])


def test_packed_targets_give_the_same_links() -> None:
    from checks.verdicts import Probe

    state = _state()
    page = state.target("http://h/a.html", internal=True)
    page.probe = Probe("http://h/a.html", 200, final_url=page.url, content_type="text/html")
    state.page_ids["http://h/a.html"] = state.shared_ids(frozenset({"top"}))
    gone = state.target("http://h/gone.html", internal=True)
    gone.probe = Probe("http://h/gone.html", 404, final_url="http://h/gone.html")
    skipped = state.target("mailto:x@h", internal=False)
    skipped.skip = "mailto"
    start = state.target("http://h/", internal=True)
    start.start = True
    for n in range(3):
        state.add_ref(page, f"http://h/{n}.html", "A", "a", None)
        state.add_ref(page, f"http://h/{n}.html", "A", "a", "top" if n else "saknas")
        state.add_ref(gone, f"http://h/{n}.html", "Borta", "a", None)
        state.add_ref(skipped, f"http://h/{n}.html", "Skriv", "a", None)
    before = tuple(state.link_results())
    state.pack()
    assert state.targets == {} and state.page_ids == {}
    after = tuple(state.link_results())
    assert after == before and tuple(Links(state)) == before
    verdicts = {link.url: link.detail for link in after}
    assert verdicts["http://h/a.html#saknas"] == "missing_fragment"
    assert verdicts["http://h/a.html#top"] == "" and verdicts["http://h/gone.html"] == "http_404"
    assert list(verdicts)[-1] == "http://h/"  # a start URL nobody links to, in its place
    state.close()


def test_spill_directories_of_killed_audits_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    left = tmp_path / f"sitewatch-refs-{int(dead.stdout)}-abc"  # its audit was killed
    alive = tmp_path / "sitewatch-refs-1-abc"  # pid 1 exists
    other = tmp_path / "sitewatch-refs-x"
    for d in (left, alive, other):
        d.mkdir()
        (d / "refs.sqlite").write_bytes(b"")
    s = spill.RefSpill(str(tmp_path))
    s.add(0, "http://h/", "A", "a", None)
    s.pack_targets([])  # makes the file (as a big crawl does)
    assert not left.exists() and alive.exists() and other.exists()
    assert Path(s.path).parent.name.startswith(f"sitewatch-refs-{os.getpid()}-")
    s.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, other.name]
