"""Write bench/RESULTS.md from the JSON lines of one benchmark run (bench/work/results.jsonl)."""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

TARGETS = {  # peer -> how many times faster sitewatch must be on the PostgreSQL manual
    "linkinator --check-fragments": 1.5,
    "linkchecker": 5.0,
}
#: A re-run of an unchanged site must be this many times faster than the first run.
RERUN_TARGET = 3.0
RERUN_TOOLS = ("sitewatch first run", "sitewatch re-run", "sitewatch re-run, 1 page changed")
PLANTED = "rerun-planted-broken.html"
#: Politeness-bound scenario: sitewatch's wall time within this many times its floor.
POLITE_TARGET = 1.3
POLITE_PER_HOST = 4


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def load(path: Path, run_id: str) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            if rec.get("run_id") == run_id:
                out.append(rec)
    return out


def site_sizes(recs: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """Pages and link references of each site, as sitewatch counted them (same for every tool)."""
    sizes: dict[str, tuple[int, int]] = {}
    for r in recs:
        f = r.get("found") or {}
        if r["tool"] == "sitewatch" and "pages" in f and r["site"] not in sizes:
            sizes[r["site"]] = (f["pages"], f["link_refs"])
    return sizes


def findings_text(tool: str, f: dict[str, Any]) -> str:
    if not f or "parse_error" in f:
        return f"no output ({f.get('parse_error', '')})" if f else "?"
    urls = len(f.get("broken_urls", [])) + f.get("broken_urls_more", 0)
    if tool == "sitewatch":
        checks = ", ".join(f"{k} {v}" for k, v in f.get("findings_by_check", {}).items())
        return f"{f['findings']} findings ({checks}); {urls} broken URLs"
    return f"{f['findings']} broken ({urls} URLs)"


def table(recs: list[dict[str, Any]], sizes: dict[str, tuple[int, int]]) -> list[str]:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        groups[(r["site"], r["tool"], r["settings"])].append(r)
    lines = [
        "| site | tool | settings | runs | wall s (median; min–max) | pages/s | links/s "
        "| peak RSS MB | findings (last run) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (site, tool, settings), rs in groups.items():
        walls = [r["wall_s"] for r in rs if r["exit_code"] in (0, 1)]
        bad = [r for r in rs if r["exit_code"] not in (0, 1)]
        w = med(walls) if walls else float("nan")
        pages, links = sizes.get(site, (0, 0))
        pps = f"{pages / w:,.0f}" if walls and pages else "–"
        lps = f"{links / w:,.0f}" if walls and links else "–"
        rss = med([r["peak_rss_mb"] for r in rs])
        span = f"{w:.2f}; {min(walls):.2f}–{max(walls):.2f}" if walls else "failed"
        if bad:
            span += f" ({len(bad)} run(s) exited {sorted({r['exit_code'] for r in bad})})"
        lines.append(
            f"| {site} | {tool} | {settings} | {len(rs)} | {span} | {pps} | {lps} | {rss:.0f} "
            f"| {findings_text(tool, rs[-1].get('found') or {})} |"
        )
    return lines


def ratios(recs: list[dict[str, Any]]) -> list[str]:
    pg = [r for r in recs if r["site"] == "pg" and r["exit_code"] in (0, 1)]
    by_tool: dict[str, list[float]] = defaultdict(list)
    for r in pg:
        if r["tool"] not in RERUN_TOOLS:
            by_tool[r["tool"]].append(r["wall_s"])
    if "sitewatch" not in by_tool:
        return ["No sitewatch run on the PostgreSQL manual."]
    sw = med(by_tool["sitewatch"])
    lines = [
        "| peer | peer wall s (median) | sitewatch wall s (median) | sitewatch faster by | "
        "target | met |",
        "|---|---|---|---|---|---|",
    ]
    for tool, walls in by_tool.items():
        if tool == "sitewatch":
            continue
        ratio = med(walls) / sw
        target = TARGETS.get(tool)
        met = "–" if target is None else ("yes" if ratio >= target else "**no**")
        tgt = f"≥ {target}×" if target else "–"
        # Three decimals: a ratio just under its target must not read as the target.
        lines.append(f"| {tool} | {med(walls):.2f} | {sw:.2f} | {ratio:.3f}× | {tgt} | {met} |")
    return lines


def _base(url: str) -> str:
    return url.split("#", 1)[0]


def agreement(recs: list[dict[str, Any]]) -> list[str]:
    last: dict[str, dict[str, Any]] = {}
    for r in recs:
        if r["tool"] in RERUN_TOOLS:
            continue
        if r["site"] == "pg" and r.get("found") and "broken_urls" in r["found"]:
            last[r["tool"]] = r["found"]
    sw = last.get("sitewatch")
    if not sw:
        return ["No sitewatch findings on the PostgreSQL manual to compare."]
    sw_urls = {_base(u) for u in sw["broken_urls"]}
    lines = [
        f"sitewatch: broken link targets {sorted(sw['broken_urls'])}; details "
        f"{sw['broken_details']}; all findings by check {sw['findings_by_check']}.",
        "",
    ]
    for tool, f in last.items():
        if tool == "sitewatch":
            continue
        peer = {_base(u) for u in f["broken_urls"]}
        only_sw = sorted(sw_urls - peer)
        only_peer = sorted(peer - sw_urls)
        verdict = "same broken URLs" if not only_sw and not only_peer else "differences below"
        lines.append(f"- **{tool}**: {len(peer)} broken URL(s) ({f['broken_details']}): {verdict}.")
        if only_sw:
            lines.append(f"  - only sitewatch: {only_sw}")
        if only_peer:
            lines.append(f"  - only {tool}: {only_peer}")
    return lines


def tree_pss(rs: list[dict[str, Any]]) -> str:
    """The largest whole-tree PSS of the runs, or a dash when none was measured."""
    values = [r["peak_tree_pss_mb"] for r in rs if "peak_tree_pss_mb" in r]
    return f"{max(values):.0f}" if values else "–"


def generated(recs: list[dict[str, Any]], work: Path) -> list[str]:
    rows = defaultdict(list)
    for r in recs:
        if r["site"].startswith("s") and r["tool"] == "sitewatch":
            rows[r["site"]].append(r)
    if not rows:
        return []
    lines = [
        "| site | runs | pages | link refs | wall s (median) | pages/s | peak RSS MB (max) "
        "| whole tree: peak PSS MB (max) "
        "| complete | planted (gen_site expected.json) | sitewatch findings by check |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for site in sorted(rows, key=lambda s: int(s[1:])):
        rs = rows[site]
        f = rs[-1].get("found") or {}
        w = med([r["wall_s"] for r in rs])
        exp_path = work / "www" / site / "expected.json"
        planted = json.loads(exp_path.read_text()) if exp_path.exists() else {}
        planted_txt = ", ".join(
            f"{k} {v}"
            for k, v in planted.items()
            if k
            in (
                "broken_internal_refs",
                "missing_fragment_refs",
                "bad_pdf_refs",
                "external_urls_missing",
                "no_review_date",
            )
        )
        lines.append(
            f"| {site} | {len(rs)} | {f.get('pages', '?')} | {f.get('link_refs', '?')} | "
            f"{w:.2f} | {f.get('pages', 0) / w:,.0f} | {max(r['peak_rss_mb'] for r in rs):.0f} | "
            f"{tree_pss(rs)} | {f.get('complete')} | {planted_txt} | "
            f"{f.get('findings_by_check', {})} |"
        )
    return lines


def rerun(recs: list[dict[str, Any]]) -> list[str]:
    """First run vs re-run of an unchanged site (same history database), medians."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        if r["tool"] in RERUN_TOOLS and r["exit_code"] in (0, 1):
            by[(r["site"], r["tool"])].append(r)
    sites = sorted({site for site, _ in by}, key=lambda s: (s != "pg", s))
    if not sites:
        return ["Not run (BENCH_RERUN=0)."]
    lines = [
        "| site | first run wall s | re-run wall s | faster by (wall) | first run CPU s "
        "| re-run CPU s | faster by (CPU) | target | met | reused in the re-run | same findings |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for site in sites:
        first, again = by.get((site, RERUN_TOOLS[0]), []), by.get((site, RERUN_TOOLS[1]), [])
        if not first or not again:
            continue
        fw, rw = med([r["wall_s"] for r in first]), med([r["wall_s"] for r in again])
        fc, rc = med([r["cpu_s"] for r in first]), med([r["cpu_s"] for r in again])
        ratio = fw / rw
        f_last, r_last = first[-1].get("found") or {}, again[-1].get("found") or {}
        same = f_last.get("findings_by_check") == r_last.get("findings_by_check") and f_last.get(
            "broken_urls"
        ) == r_last.get("broken_urls")
        reused = ", ".join(f"{k} {v}" for k, v in (r_last.get("reused") or {}).items())
        lines.append(
            f"| {site} | {fw:.2f} | {rw:.2f} | {ratio:.2f}× | {fc:.2f} | {rc:.2f} | "
            f"{fc / rc:.2f}× | ≥ {RERUN_TARGET:g}× | "
            f"{'yes' if ratio >= RERUN_TARGET else '**no**'} | {reused} | "
            f"{'yes' if same else '**no**'} |"
        )
    for r in recs:
        if r["tool"] == RERUN_TOOLS[2]:
            f = r.get("found") or {}
            hit = f.get("rerun_planted_found")
            lines += [
                "",
                f"Re-run after {r['site']}'s index.html gained a link to {PLANTED}: "
                f"{r['wall_s']:.2f} s wall; the new broken link was "
                f"{'**found**' if hit else '**NOT found**'}; reused "
                f"{f.get('reused', {})}.",
            ]
    return lines


def polite(recs: list[dict[str, Any]], counts: list[dict[str, Any]], work: Path) -> list[str]:
    """s2000 behind a fixed latency per request, per-host 4: wall time against its floors
    (the site's pages, from gen_site's expected.json; the requests the proxy counted)."""
    runs = [r for r in recs if r["site"] == "polite-s2000" and r["exit_code"] in (0, 1)]
    if not runs:
        return ["Not run (BENCH_POLITE=0, or s2000 not in BENCH_SIZES)."]
    by_run = {(c["tool"], c["rep"]): c for c in counts}
    lines = [
        "| tool | runs | wall s (median) | pages | requests to the site (proxy) | most "
        "waiting at once | mean waiting | floor: pages × latency / 4 | wall / that floor | "
        "floor: requests × latency / 4 | wall / that floor | target (sitewatch) | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    expected = work / "www" / "s2000" / "expected.json"
    crawled = (site_sizes(runs).get("polite-s2000") or (0, 0))[0]
    pages = json.loads(expected.read_text())["pages"] if expected.exists() else crawled
    for tool in dict.fromkeys(r["tool"] for r in runs):
        rs = [r for r in runs if r["tool"] == tool]
        c = [by_run[(tool, r["rep"])] for r in rs if (tool, r["rep"]) in by_run]
        wall = med([r["wall_s"] for r in rs])
        delay = c[0]["delay"] if c else float("nan")
        requests = med([x["requests"] for x in c]) if c else float("nan")
        most = max((x["max_in_flight"] for x in c), default=0)
        mean = med([x.get("mean_in_flight", float("nan")) for x in c]) if c else float("nan")
        page_floor = pages * delay / POLITE_PER_HOST
        req_floor = requests * delay / POLITE_PER_HOST
        ok = "–"
        if tool == "sitewatch":
            ok = "yes" if wall <= POLITE_TARGET * page_floor else "**no**"
            ok += " / " + ("yes" if wall <= POLITE_TARGET * req_floor else "**no**")
        lines.append(
            f"| {tool} | {len(rs)} | {wall:.2f} | {pages} ({crawled} answers crawled) | "
            f"{requests:.0f} | {most} | {mean:.2f} | "
            f"{page_floor:.2f} | {wall / page_floor:.2f}× | {req_floor:.2f} | "
            f"{wall / req_floor:.2f}× | ≤ {POLITE_TARGET}× | {ok} |"
        )
    return lines


def load_counts(path: Path | None, run_id: str) -> list[dict[str, Any]]:
    if path is None or not path.exists():
        return []
    return load(path, run_id)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--run-id", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--elapsed", type=int, default=0)
    ap.add_argument("--polite", type=Path, help="the delay proxy's counts (bench/run.sh)")
    a = ap.parse_args()
    recs = load(a.results, a.run_id)
    sizes = site_sizes(recs)
    loads = [r.get("loadavg_1m", 0) for r in recs]
    out = [
        "# sitewatch benchmark results",
        "",
        f"Produced by `make bench` (bench/run.sh), run `{a.run_id}`, {a.elapsed} s in all, on "
        "this 2-core machine; every request went to nginx on 127.0.0.1–127.0.0.4. Raw records: "
        "`bench/work/results.jsonl` (git-ignored; lines with this run id). How to read the "
        "numbers: [README.md](README.md).",
        "",
        f"1-minute load average during the runs: {min(loads):.1f}–{max(loads):.1f} "
        "(other work on the machine inflates wall times; sitewatch and peers alternate, so "
        "ratios are fairer than absolute times).",
        "",
        "## All runs",
        "",
        "pages/s and links/s divide the site's pages and link references (as sitewatch "
        "counted them) by each tool's wall time, so the columns compare tools on the same "
        "work. Peak RSS is the largest single process (kernel ru_maxrss).",
        "",
        *table(recs, sizes),
        "",
        "## Ratios on the PostgreSQL manual (same run, medians)",
        "",
        *ratios(recs),
        "",
        "## Findings on the PostgreSQL manual: do the tools agree?",
        "",
        *agreement(recs),
        "",
        "## Generated sites: throughput and memory by size",
        "",
        *generated(recs, a.work),
        "",
        "## Weekly re-run: first run vs re-run of the unchanged site (medians)",
        "",
        "Each pair starts from an empty history database; the re-run reuses it. An "
        "unchanged site is replayed from the previous run without a crawl "
        "(`replayed_from_run`: every stored URL answered 304 to a conditional request, "
        "every target the crawl would ask again answered as before, crawler/rerun/replay.py); a "
        "changed one is crawled, with 304s replaying stored page facts and outside "
        "verdicts younger than links.cache_max_age reused.",
        "",
        *rerun(recs),
        "",
        "## Politeness-bound: s2000 behind a fixed latency per request, per-host 4",
        "",
        "Every request to the site goes through bench/delay_proxy.py, which holds it for the "
        "latency (`BENCH_POLITE_DELAY`) before nginx answers; outside links go to nginx "
        "directly. sitewatch runs with `crawl.per_host_concurrency = 4` (16 overall), "
        "linkinator with `--concurrency 4`. With at most 4 requests at a time, no crawl can "
        "be faster than requests × latency / 4; the issue's floor counts pages only (the site "
        'also answers redirects, 404s, PDFs, images and stylesheets). "most waiting at '
        "once\" is the proxy's count of requests waiting for their answer (a polite crawler "
        'keeps it at 4), "mean waiting" its average from the first request to the last '
        "answer. The target is checked against both floors (pages / requests).",
        "",
        *polite(recs, load_counts(a.polite, a.run_id), a.work),
        "",
    ]
    a.out.write_text("\n".join(out), encoding="utf-8")


if __name__ == "__main__":
    main()
