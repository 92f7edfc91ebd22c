"""Politeness under load: what the servers saw, measured on their side.

These are assertions on behaviour, not speed: how many requests one host had in flight at
once (``SiteServer.max_in_flight``, from arrival and finish times), the smallest gap
between request arrivals on one host (``crawl.delay``, robots.txt ``Crawl-delay``), and
the wait before retrying a 429/503 (``Retry-After``). Small tolerances cover the loopback
connection set-up between a request leaving the crawler and arriving at the server.
"""

from __future__ import annotations

import email.utils
import itertools
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from demo.server import Route, SiteServer
from tests.cli_runner import CliResult, sitewatch, write_config
from tests.faults import html_doc

#: Arrival times are taken at the server; connection set-up can shift one by a little.
TOLERANCE = 0.05
AS_OF = ("--as-of", "2026-11-26")


def audit(tmp_path: Path, start: str, crawl: dict[str, Any], timeout: float = 180) -> CliResult:
    lines = "\n".join(f"{k} = {v}" for k, v in crawl.items())
    cfg = write_config(
        tmp_path / "site.toml", f'[site]\nstart_urls = ["{start}"]\n\n[crawl]\n{lines}\n'
    )
    r = sitewatch("audit", "--config", str(cfg), *AS_OF, "-q", cwd=tmp_path, timeout=timeout)
    assert r.code in (0, 1), r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    return r


def arrivals(server: SiteServer, *, since: str | None = None) -> list[float]:
    """Arrival times on ``server``, from the first request for ``since`` on if given."""
    log = sorted(server.requests, key=lambda r: r[2])
    if since is not None:
        first = next(i for i, (_, path, _) in enumerate(log) if path == since)
        log = log[first:]
    return [t for _, _, t in log]


def min_gap(times: list[float]) -> float:
    return min(b - a for a, b in itertools.pairwise(times))


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 3) for a, b in itertools.pairwise(times)]


def section(n: int, slow: float = 0.0, ext: SiteServer | None = None) -> dict[str, Route]:
    """/site/index.html linking to n pages (and, when ``ext``, to 3 links each there)."""
    index = "".join(f'<a href="p{i}.html">Sida {i}</a>' for i in range(n))
    routes = {"/site/index.html": Route(body=html_doc("Start", index))}
    for i in range(n):
        links = ""
        if ext is not None:
            links = "".join(f'<a href="{ext.url(f"/ext/{i}-{j}")}">extern</a>' for j in range(3))
        routes[f"/site/p{i}.html"] = Route(
            body=html_doc(f"Sida {i}", links + "<p>Senast granskad: 2026-10-01</p>"), delay=slow
        )
    return routes


def test_per_host_concurrency(tmp_path: Path) -> None:
    """16 requests may be in flight overall, but never more than 2 on one host."""
    ext = SiteServer("127.0.0.2", name="ext")
    ext.add_route("/ext/*", Route(body=html_doc("Extern", "<p>ok</p>"), delay=0.1))
    main = SiteServer("127.0.0.1", name="main", routes=section(30, slow=0.1, ext=ext))
    with main, ext:
        audit(
            tmp_path,
            main.url("/site/index.html"),
            {"concurrency": 16, "per_host_concurrency": 2, "delay": 0, "timeout": 10},
        )
        assert len(main.spans) >= 31 and len(ext.spans) == 90
        assert main.max_in_flight() <= 2, main.max_in_flight()
        assert ext.max_in_flight() <= 2, ext.max_in_flight()
        print(f"max in flight: main={main.max_in_flight()} ext={ext.max_in_flight()}")
        # The limit was reached, so the assertion above means something.
        assert max(main.max_in_flight(), ext.max_in_flight()) == 2


def test_total_concurrency_across_hosts(tmp_path: Path) -> None:
    """``concurrency`` bounds the requests in flight over all hosts together (the spider's
    dispatch, crawler/engine/dispatch.py), while each host keeps its own limit; a slow host does
    not hold back the others' checks."""
    hosts = [SiteServer(f"127.0.0.{n}", name=f"ext{n}") for n in (2, 3, 4)]
    for h in hosts:
        h.add_route("/ext/*", Route(body=html_doc("Extern", "<p>ok</p>"), delay=0.1))
    links = "".join(f'<a href="{h.url(f"/ext/{i}")}">x</a>' for h in hosts for i in range(8))
    main = SiteServer(
        "127.0.0.1", name="main", routes={"/site/index.html": Route(body=html_doc("Start", links))}
    )
    with main, hosts[0], hosts[1], hosts[2]:
        audit(
            tmp_path,
            main.url("/site/index.html"),
            {"concurrency": 5, "per_host_concurrency": 2, "delay": 0, "timeout": 10},
        )
        spans = [(arrival, finish) for h in hosts for _, _, arrival, finish in h.spans]
        assert len(spans) == 24
        events = sorted([(t0, 1) for t0, _ in spans] + [(t1, -1) for _, t1 in spans])
        overall = max(itertools.accumulate(d for _, d in events))
        assert overall <= 5, overall
        assert overall >= 4  # the limit was approached: the assertion means something
        assert all(h.max_in_flight() <= 2 for h in hosts)
        assert all(h.max_in_flight() == 2 for h in hosts)  # every host was served at once


def test_delay_between_requests_to_one_host(tmp_path: Path) -> None:
    delay = 0.4
    main = SiteServer("127.0.0.1", name="main", routes=section(8))
    with main:
        audit(
            tmp_path,
            main.url("/site/index.html"),
            {"concurrency": 8, "per_host_concurrency": 4, "delay": delay, "timeout": 10},
        )
        times = arrivals(main)
    assert len(times) >= 9
    print(f"delay {delay}: gaps {gaps(times)}")
    assert min_gap(times) >= delay - TOLERANCE, gaps(times)


def test_every_request_waiting_for_robots_txt_obeys_it(tmp_path: Path) -> None:
    """Requests that arrive while a host's robots.txt is still on its way all wait for it
    and all obey it (Scrapy 2.19 let every waiter but the first through as if there were
    no robots.txt; crawler/engine/robots_middleware.py). The start page (asked whatever robots.txt
    says) links six pages, asked at once; robots.txt takes 0.3 s to answer."""
    private = [f"/site/private/p{i}.html" for i in range(6)]
    routes = {
        "/robots.txt": Route(
            body="User-agent: *\nDisallow: /site/private/\n", content_type="text/plain", delay=0.3
        ),
        "/site/index.html": Route(
            body=html_doc("Start", "".join(f'<a href="{p}">x</a>' for p in private))
        ),
    }
    routes.update({p: Route(body=html_doc("Privat", "<p>x</p>")) for p in private})
    main = SiteServer("127.0.0.1", name="main", routes=routes)
    with main:
        audit(
            tmp_path,
            main.url("/site/index.html"),
            {"concurrency": 16, "per_host_concurrency": 8, "delay": 0, "timeout": 10},
        )
        assert main.hits("/robots.txt") == 1
        assert sum(main.hits(p, "GET") for p in private) == 0, sorted(main.requests)


@pytest.mark.parametrize(
    ("robots", "max_retry_after", "expected_gap", "capped"),
    [
        ("User-agent: *\nCrawl-delay: 1\n", 5, 1.0, False),
        ("User-agent: sitewatch\nCrawl-delay: 1.2\n\nUser-agent: *\nDisallow:\n", 5, 1.2, False),
        ("User-agent: *\nCrawl-delay: 86400\n", 1.5, 1.5, True),  # capped: max_retry_after
    ],
    ids=["crawl-delay", "own-user-agent", "capped"],
)
def test_robots_crawl_delay(
    tmp_path: Path, robots: str, max_retry_after: float, expected_gap: float, capped: bool
) -> None:
    routes = section(5)
    routes["/robots.txt"] = Route(body=robots, content_type="text/plain")
    main = SiteServer("127.0.0.1", name="main", routes=routes)
    with main:
        r = audit(
            tmp_path,
            main.url("/site/index.html"),
            {"delay": 0, "max_retry_after": max_retry_after, "timeout": 10},
        )
        # The start page is fetched before robots.txt is known; everything after obeys it.
        times = arrivals(main, since="/robots.txt")
    assert len(times) == 6, times  # robots.txt and the five pages
    print(f"crawl-delay {expected_gap}: gaps {gaps(times)}")
    assert min_gap(times) >= expected_gap - TOLERANCE, gaps(times)
    stats = r.report["run"]["stats"]
    assert stats["robots_crawl_delay_hosts"] == 1
    assert stats.get("robots_crawl_delay_capped", 0) == int(capped)
    assert len(r.pages()) == 6


def _http_date_handler(seconds: int) -> tuple[Any, list[str]]:
    """429 with ``Retry-After: <HTTP-date seconds ahead>`` once, then a page."""
    sent: list[str] = []
    lock = threading.Lock()

    def handler(h: Any) -> None:
        with lock:
            first = not sent
            if first:
                sent.append(email.utils.formatdate(time.time() + seconds, usegmt=True))
        body = html_doc("ok", "<p>ok</p>")
        h.send_response(429 if first else 200)
        if first:
            h.send_header("Retry-After", sent[0])
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    return handler, sent


def test_retry_after(tmp_path: Path) -> None:
    ext = SiteServer("127.0.0.2", name="ext")
    date_handler, _ = _http_date_handler(3)
    ext_routes = {
        "/busy-2s": Route(
            body=html_doc("ok", ""), fail_first=1, fail_status=429, headers={"Retry-After": "2"}
        ),
        "/unavailable-1s": Route(
            body=html_doc("ok", ""), fail_first=1, fail_status=503, headers={"Retry-After": "1"}
        ),
        "/busy-date": Route(handler=date_handler),
        "/busy-hour": Route(
            body=html_doc("ok", ""), fail_first=5, fail_status=429, headers={"Retry-After": "3600"}
        ),
    }
    for path, route in ext_routes.items():
        ext.add_route(path, route)
    links = "".join(f'<a href="{ext.url(p)}">{p}</a>' for p in ext_routes)
    main = SiteServer("127.0.0.1", name="main")
    main.add_route("/site/index.html", Route(body=html_doc("Start", links)))
    with main, ext:
        r = audit(
            tmp_path,
            main.url("/site/index.html"),
            {"retries": 2, "max_retry_after": 5, "timeout": 10, "delay": 0},
        )
        log = sorted(ext.requests, key=lambda x: x[2])

    def times(path: str) -> list[float]:
        return [t for _, p, t in log if p == path]

    links_out = r.links()
    for path, wait in (("/busy-2s", 2.0), ("/unavailable-1s", 1.0), ("/busy-date", 2.0)):
        t = times(path)
        assert len(t) == 2, (path, t)
        print(f"{path}: retried after {t[1] - t[0]:.2f} s (asked {wait})")
        assert t[1] - t[0] >= wait - 0.01, (path, t[1] - t[0])
        assert links_out[ext.url(path)]["verdict"] == "ok", links_out[ext.url(path)]
    # Asked to wait longer than crawl.max_retry_after: no retry, reported as is.
    assert len(times("/busy-hour")) == 1
    hour = links_out[ext.url("/busy-hour")]
    assert (hour["verdict"], hour["detail"]) == ("unverified", "http_429")
