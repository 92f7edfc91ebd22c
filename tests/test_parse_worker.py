"""The forked parse worker answers exactly what parsing in-process answers."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from crawler.app.processes import HELPER_NICENESS
from crawler.pages.extract import facts_from_body
from crawler.pages.parse_worker import ParseWorker, WorkerGone, read_page, worker_count
from crawler.pages.urls import ResolveCache, resolve
from crawler.rerun.fetch_cache import Fetched, decode_fetched, encode_fetched

PHRASES = ("sidan finns inte",)
ANSWER = (200, "text/html", "GET", True, True, False)
PAGE = (
    "<html><head><title>Om  oss</title><base href='/sub/'>"
    "<meta name='dcterms.modified' content='2026-01-02'></head><body>"
    "<h1 id='top'>Rubrik</h1><a name='old'></a>"
    "<a href='a.html#x'>A  länk</a><a href='a.html#x'>dubblett</a>"
    "<img src='b.png' alt='bild'><link rel='prefetch' href='c.css'>"
    "<a href='d.pdf'><img src='i.png' alt='Folder (pdf)'></a></body></html>"
).encode()


def test_worker_matches_in_process() -> None:
    async def go() -> None:
        worker = ParseWorker.start(PHRASES)
        assert worker is not None
        try:
            readings = await asyncio.gather(
                worker.read(PAGE, "utf-8", "http://h/p/x.html", None, True, ANSWER),
                worker.read(PAGE, "utf-8", "http://h/p/x.html", None, False),
                worker.read(b"<h1>Sidan finns inte</h1>", "utf-8", "http://h/", None, True),
            )
        finally:
            worker.close()
        want = [
            facts_from_body(PAGE, "utf-8", "http://h/p/x.html", None, PHRASES, True),
            facts_from_body(PAGE, "utf-8", "http://h/p/x.html", None, PHRASES, False),
            facts_from_body(
                b"<h1>Sidan finns inte</h1>", "utf-8", "http://h/", None, PHRASES, True
            ),
        ]
        got = [page for page, _, _ in readings]
        assert got == want
        assert got[0] is not None and got[0].base_url == "http://h/sub/"
        assert got[0].ids == frozenset({"top", "old"})
        assert [href for href, _, _ in got[0].links] == ["a.html#x", "b.png", "d.pdf", "i.png"]
        assert got[2] is not None and got[2].soft_404
        # With links: each joined as the spider would join it, and the cache's record of
        # the answer, as the spider would encode it.
        _, resolved, encoded = readings[0]
        joined = [resolve("http://h/sub/", href) for href, _, _ in got[0].links]
        assert resolved == tuple((r.base, r.fragment, r.skip) for r in joined)
        assert resolved[0] == ("http://h/sub/a.html", "x", None)
        page = got[0]
        assert encoded == encode_fetched(
            Fetched(200, "text/html", "GET", True, True, False, PAGE[:16], page.ids, False, page)
        )
        assert decode_fetched(encoded).page == page
        assert readings[1][1:] == (None, None)  # no links asked: nothing joined
        assert readings[0] == read_page(
            PAGE, "utf-8", "http://h/p/x.html", None, PHRASES, True, ResolveCache(), ANSWER
        )

    asyncio.run(go())


def test_dead_worker_raises_worker_gone() -> None:
    async def go() -> None:
        worker = ParseWorker.start(PHRASES)
        assert worker is not None
        try:
            assert (await worker.read(PAGE, "utf-8", "http://h/", None, False))[0] is not None
            os.kill(worker.pid, signal.SIGKILL)
            os.waitpid(worker.pid, 0)  # gone for certain (close() tolerates the reaped pid)
            with pytest.raises(WorkerGone):
                for _ in range(50):  # the loss is seen at the next request or read
                    await worker.read(PAGE, "utf-8", "http://h/", None, False)
                    await asyncio.sleep(0.01)
        finally:
            worker.close()

    asyncio.run(go())


def _socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` holds open."""
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(int(target[len("socket:[") : -1]))
    return out


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_later_worker_holds_no_copy_of_an_earlier_workers_socket() -> None:
    first = ParseWorker.start(PHRASES)
    assert first is not None and first._sock is not None
    second = ParseWorker.start(PHRASES)
    assert second is not None
    try:
        # An answer: the second worker is serving, so it has closed what it was to close.
        page = asyncio.run(second.read(PAGE, "utf-8", "http://h/", None, False))[0]
        assert page is not None
        mine = os.fstat(first._sock.fileno()).st_ino
        # The audit process holds it; the second worker, forked after, closed its copy.
        assert mine in _socket_inodes(os.getpid())
        assert mine not in _socket_inodes(second.pid)
    finally:
        second.close()
        first.close()


def test_worker_count_is_one_per_usable_cpu_up_to_the_limit() -> None:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert worker_count() == max(1, min(4, cpus or 1))
    assert worker_count(most=1) == 1
    assert worker_count(most=64) == max(1, cpus or 1)


def test_worker_runs_nicer_than_the_audit_process() -> None:
    worker = ParseWorker.start(PHRASES)
    assert worker is not None
    try:
        # Once it answers, it has set its priority.
        assert asyncio.run(worker.read(PAGE, "utf-8", "http://h/", None, False))[0] is not None
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, worker.pid) == min(19, mine + HELPER_NICENESS)
    finally:
        worker.close()
