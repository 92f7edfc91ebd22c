"""Peak RSS per phase of one audit: ``python bench/phase_rss.py audit URL [sitewatch options]``.

Wraps the audit's phases (crawl, report built, history stored, each report file written)
and prints, after each, the process's current RSS and its peak so far (ru_maxrss) to
stderr. Used for docs/performance.md "Memory"; not part of ``make bench``.
"""

from __future__ import annotations

import functools
import resource
import sys
from typing import Any

import psutil

import crawler.app.report_writer as report_writer
import crawler.engine.audit as audit
import crawler.history.runs as history
import reports.render as render
from crawler.app.cli import main

_PROC = psutil.Process()


def note(phase: str) -> None:
    rss = _PROC.memory_info().rss / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"phase_rss: {phase:<22} rss {rss:7.0f} MB  peak so far {peak:7.0f} MB", file=sys.stderr)


def after(phase: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out = fn(*args, **kwargs)
        note(phase)
        return out

    return wrapper


audit.crawl = after("crawl", audit.crawl)
audit.build_report = after("report built", audit.build_report)
history.History.store_run = after("history stored", history.History.store_run)
# Phases one after another in this process (the forked report child has its own RSS).
report_writer.PARALLEL = False
for _name, (_file, _render, _enc) in list(render.FORMATS.items()):
    if _name in render.CHUNKED:
        _chunked = render.CHUNKED[_name]

        def _gen(report: Any, _c: Any = _chunked, _n: str = _name) -> Any:
            yield from _c(report)
            note(f"{_n} written")

        render.CHUNKED[_name] = _gen
    else:
        render.FORMATS[_name] = (_file, after(f"{_name} written", _render), _enc)

if __name__ == "__main__":
    note("start")
    sys.argv[0] = "sitewatch"
    main()
