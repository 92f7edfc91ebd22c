"""Run one benchmark command; record wall time, CPU time, peak RSS and what it found.

    python bench/measure.py --out bench/work/results.jsonl --run-id ID --site pg --tool sitewatch \
        --settings "..." --parse sitewatch:OUT/report.json [--stdout FILE] -- CMD ARGS...

Appends one JSON line to ``--out``:

- ``wall_s``: wall-clock seconds from start to exit of the command (process start-up, crawl,
  report writing: everything).
- ``cpu_s``: user + system CPU seconds of the command and its waited-for children.
- ``peak_rss_mb``: the largest resident set of any single process of the command (the
  kernel's ru_maxrss from wait4: exact, not sampled). For sitewatch that is the audit process.
- ``peak_tree_rss_mb``: the largest sum of RSS over the whole process tree, sampled every
  20 ms from /proc (equal to peak_rss_mb for single-process tools, give or take a sample).
  Pages that forked processes share are counted once per process here.
- ``peak_tree_pss_mb``: the largest sum of PSS (``/proc/PID/smaps_rollup``: each shared page
  divided among the processes that share it) over the tree, sampled every 200 ms: the
  memory the command takes from the machine. Absent where the kernel has no
  ``smaps_rollup``.
- ``found``: what the tool reported, parsed from its output (see ``parse_*`` below).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any


def pss(pid: int) -> int | None:
    """A process's proportional set size in bytes (None: gone, or no ``smaps_rollup``)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _ppid(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


class Tree:
    """The processes under ``root``, found from /proc. Each pid's parent is read once,
    when the pid first shows up: a tick costs a directory listing and one ``statm`` per
    process of the tree (psutil's ``children(recursive=True)`` read every process's
    ``stat`` on every tick: ~1 ms, 5 % of a core at 50 ticks a second, taken from the
    tool measured when it keeps both cores busy)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self._parent: dict[str, int | None] = {}

    def pids(self) -> list[int]:
        try:
            names = [n for n in os.listdir("/proc") if n.isdigit()]
        except OSError:
            return [self.root]
        parent = self._parent
        live = set(names)
        for gone in [n for n in parent if n not in live]:
            del parent[gone]  # a pid that came back is another process
        children: dict[int, list[int]] = {}
        for name in names:
            if name not in parent:
                parent[name] = _ppid(name)
            pp = parent[name]
            if pp is not None:
                children.setdefault(pp, []).append(int(name))
        out, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, ()))
        return out


def sample_tree(pid: int, stop: threading.Event, peak: list[int], peak_pss: list[int]) -> None:
    """Sum RSS over the tree every 20 ms, and PSS every 200 ms (reading it costs more)."""
    tree = Tree(pid)
    tick = 0
    while not stop.is_set():
        procs = tree.pids()
        peak[0] = max(peak[0], sum(_rss(p) for p in procs))
        if tick % 10 == 0:
            sizes = [pss(p) for p in procs]
            if any(size is not None for size in sizes):
                peak_pss[0] = max(peak_pss[0], sum(size or 0 for size in sizes))
        tick += 1
        stop.wait(0.02)


def run(cmd: list[str], stdout_path: str | None, cwd: str | None) -> dict[str, Any]:
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL  # noqa: SIM115
    err_path = (stdout_path + ".stderr") if stdout_path else None
    err = open(err_path, "wb") if err_path else subprocess.DEVNULL  # noqa: SIM115
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd)
    stop = threading.Event()
    peak, peak_pss = [0], [0]
    sampler = threading.Thread(
        target=sample_tree, args=(proc.pid, stop, peak, peak_pss), daemon=True
    )
    sampler.start()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    sampler.join()
    if stdout_path:
        out.close()  # type: ignore[union-attr]
        err.close()  # type: ignore[union-attr]
    return {
        "exit_code": proc.returncode,
        "wall_s": round(wall, 3),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
        "peak_rss_mb": round(ru.ru_maxrss / 1024, 1),
        "peak_tree_rss_mb": round(peak[0] / 2**20, 1),
        **({"peak_tree_pss_mb": round(peak_pss[0] / 2**20, 1)} if peak_pss[0] else {}),
    }


# ----------------------------------------------------------------------------- parsers


def _base(url: str) -> str:
    return url.split("#", 1)[0]


def parse_sitewatch(path: str) -> dict[str, Any]:
    r = json.loads(Path(path).read_text(encoding="utf-8"))
    run = r["run"]
    links = r["links"]
    findings = r["findings"]
    by_check = Counter(f["check"] for f in findings)
    broken = [lk for lk in links if lk["verdict"] == "broken"]
    checked = [lk for lk in links if lk["verdict"] != "skipped"]
    refs = sum(len(lk.get("found_on", ())) for lk in links)
    checked_refs = sum(len(lk.get("found_on", ())) for lk in checked)
    return {
        "pages": run["pages_crawled"],
        "link_refs": refs,
        "checked_link_refs": checked_refs,
        "unique_targets": run["stats"].get("unique_targets"),
        "requests": run["stats"].get("requests"),
        "complete": run["complete"],
        "incomplete_reasons": run.get("incomplete_reasons", []),
        "findings": len(findings),
        "findings_by_check": dict(sorted(by_check.items())),
        "broken_refs": sum(len(lk.get("found_on", ())) for lk in broken),
        "broken_urls": sorted({lk["url"] for lk in broken}),
        "broken_details": dict(Counter(lk["detail"] for lk in broken)),
        "crawl_seconds": run["stats"].get("seconds"),
        # bench/run.sh's re-run scenario plants this broken link in a changed page.
        "rerun_planted_found": any(
            lk["url"].endswith("/rerun-planted-broken.html") for lk in broken
        ),
        "reused": {
            k: run["stats"][k]
            for k in (
                "replayed_from_run",
                "not_modified",
                "confirmed",
                "conditional_requests",
                "pages_not_modified",
                "targets_not_modified",
                "links_from_cache",
            )
            if k in run["stats"]
        },
    }


def parse_linkinator(path: str) -> dict[str, Any]:
    d = json.loads(Path(path).read_text(encoding="utf-8"))
    links = d["links"]
    broken = [lk for lk in links if lk["state"] == "BROKEN"]
    return {
        "link_entries": len(links),
        "findings": len(broken),
        "broken_refs": len(broken),
        "broken_urls": sorted({lk["url"] for lk in broken}),
        "broken_details": dict(Counter(str(lk["status"]) for lk in broken)),
        "passed": d.get("passed"),
    }


def parse_linkchecker(path: str) -> dict[str, Any]:
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    rows = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(rows)), delimiter=";")
    errors = [row for row in reader if row.get("valid") == "False"]
    stats = {}
    m = re.search(r"(\d+) links? in (\d+) URLs? checked", text)
    if m:
        stats = {"links_checked": int(m[1]), "urls_checked": int(m[2])}
    return {
        **stats,
        "findings": len(errors),
        "broken_refs": len(errors),
        "broken_urls": sorted({row["url"] for row in errors}),
        "broken_details": dict(Counter(row["result"] for row in errors)),
    }


PARSERS = {
    "sitewatch": parse_sitewatch,
    "linkinator": parse_linkinator,
    "linkchecker": parse_linkchecker,
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--run-id", required=True)
    ap.add_argument("--site", required=True)
    ap.add_argument("--tool", required=True)
    ap.add_argument("--settings", default="")
    ap.add_argument("--rep", type=int, default=1)
    ap.add_argument("--parse", help="KIND:PATH of the tool's output to read findings from")
    ap.add_argument("--stdout", help="write the command's stdout here (stderr to .stderr)")
    ap.add_argument("--cwd")
    ap.add_argument("--label", default="", help="free text kept in the record")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        ap.error("no command")
    rec: dict[str, Any] = {
        "run_id": a.run_id,
        "site": a.site,
        "tool": a.tool,
        "settings": a.settings,
        "rep": a.rep,
        "label": a.label,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cmd": cmd,
    }
    rec.update(run(cmd, a.stdout, a.cwd))
    rec["loadavg_1m"] = round(os.getloadavg()[0], 2)
    if a.parse:
        kind, path = a.parse.split(":", 1)
        try:
            rec["found"] = PARSERS[kind](path)
        except Exception as e:  # a failed run leaves no usable output: record why
            rec["found"] = {"parse_error": f"{type(e).__name__}: {e}"}
    found = rec.get("found") or {}
    urls = found.get("broken_urls")
    if urls and len(urls) > 300:  # keep the raw file small for big sites
        found["broken_urls_more"] = len(urls) - 300
        found["broken_urls"] = urls[:300]
    with open(a.out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    found = rec.get("found", {})
    print(
        f"  {a.site:<8} {a.tool:<22} rep {a.rep}: {rec['wall_s']:7.2f} s wall, "
        f"{rec['cpu_s']:7.2f} s cpu, {rec['peak_rss_mb']:7.1f} MB peak, exit {rec['exit_code']}, "
        f"findings {found.get('findings', '?')}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
