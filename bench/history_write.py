"""The history write of a big run: ``Store.finish_run`` of a synthetic report with 2,000
pages, 40,000 links (three references each) and 400 findings, three times.

    .venv/bin/python bench/history_write.py                 # SQLite, a temporary file
    .venv/bin/python bench/history_write.py postgresql://user@127.0.0.1/db   # password:
                                                            # SITEWATCH_DB_PASSWORD
    .venv/bin/python bench/history_write.py --both    # SQLite, then a PostgreSQL of its own
                                                      # (tests/pg.py, on 127.0.0.1): the ratio

``make bench`` runs ``--both`` (``BENCH_HISTORY=0`` skips it).
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from checks.models import (
    Check,
    Finding,
    LinkRef,
    LinkResult,
    Page,
    Report,
    RunInfo,
    Severity,
    Verdict,
)
from crawler.history import Store

T0 = dt.datetime(2026, 11, 23, 6, 0, tzinfo=dt.UTC)


def big_report(pages: int = 2000, links: int = 40_000, findings: int = 400) -> Report:
    ps = tuple(
        Page(f"https://x.se/p{i}", 200, f"Sida {i}", f"https://x.se/p{i}", "text/html", i % 5)
        for i in range(pages)
    )
    ls = tuple(
        LinkResult(
            f"https://x.se/l{i}",
            Verdict.OK if i % 100 else Verdict.BROKEN,
            status=200,
            found_on=tuple(
                LinkRef(f"https://x.se/p{(i + j) % pages}", "Läs mer") for j in range(3)
            ),
        )
        for i in range(links)
    )
    fs = tuple(
        Finding(Check.BROKEN_LINK, Severity.ERROR, f"https://x.se/p{i % pages}",
                f"https://x.se/l{i * 100}", "http_404")
        for i in range(findings)
    )  # fmt: skip
    info = RunInfo(T0, T0, T0.date(), ("https://x.se/",), (), True, pages, links, site="bench")
    return Report(info, ps, ls, fs)


def main(where: str | None) -> float:
    """The median write in seconds (and its line printed)."""
    report = big_report()
    times = []
    for k in range(3):
        target = where or str(Path(tempfile.mkdtemp()) / "h.db")
        with Store(target) as store:
            rid = store.begin_run(f"bench-{k}-{time.time_ns()}", T0)
            t = time.perf_counter()
            store.finish_run(rid, report)
            times.append(time.perf_counter() - t)
    backend = "postgresql" if where and where.startswith("postgres") else "sqlite"
    shown = " ".join(f"{s * 1000:.0f}" for s in times)
    print(f"history write, {backend}: 2,000 pages / 40,000 links / 400 findings: {shown} ms")
    return sorted(times)[1]


def both() -> None:
    """SQLite, then PostgreSQL started for the purpose: the two medians and their ratio."""
    import os

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pg import pg_server

    lite = main(None)
    try:
        with pg_server() as server:
            os.environ["SITEWATCH_DB_PASSWORD"] = server.password
            pg = main(server.url(server.new_database()))
    except BaseException as e:  # pytest's skip (no PostgreSQL binaries) included
        if isinstance(e, KeyboardInterrupt):
            raise
        print(f"history write, postgresql: not measured ({e})")
        return
    print(f"history write, postgresql vs sqlite (medians): {pg / lite:.2f}x the time")


if __name__ == "__main__":
    if sys.argv[1:] == ["--both"]:
        both()
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else None)
