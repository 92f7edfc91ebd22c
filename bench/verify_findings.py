"""Check a sitewatch report against the files on disk (issue 16, real-site validation).

bench/realsites.sh serves Debian documentation packages with nginx from a docroot of
symlinks (``www/<site>`` -> ``/usr/share/doc/...``) and audits each with sitewatch. This
script reads each ``report.json`` (``sitewatch/report@2``; its ``findings`` read as in @1; docs/report-format.md) and, for
every link finding and every broken link whose target is on the served host, maps the URL
back to the file nginx would serve (URL path percent-decoded, joined to the docroot,
``index.html`` for a directory) and decides whether the disk agrees:

- a broken target (``broken`` / ``missing_pdf``, not ``missing_fragment``): CONFIRMED when
  no such file exists (with a note: dangling symlink, a Debian-compressed ``.gz`` copy, a
  directory without index.html, absent), CONTRADICTED when the file is there;
- a ``missing_fragment``: CONFIRMED when the target file has no element whose ``id`` (or
  ``<a name>``) equals the fragment, raw or percent-decoded (UTF-8), and the fragment is not
  ``top`` / empty; CONTRADICTED otherwise, with the reason: ``percent-encoding`` (only the
  decoded form matches), ``meta-refresh`` (the target is a meta-refresh page and the page it
  refreshes to has the anchor) or ``other``.

Links to other hosts cannot be resolved here (no network) and are only counted. Prints a
table per site and writes a JSON summary; ``--details`` also writes every classified
finding per site (``verified.json`` beside each report).

    python bench/verify_findings.py --www bench/work/realsites/www \
        --summary bench/work/realsites/summary.json --details \
        pg=bench/work/realsites/pg/report.json ...
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from lxml import etree, html

CONFIRMED = "confirmed"
CONTRADICTED = "contradicted"
FRAGMENT = "missing_fragment"
LINK_CHECKS = ("broken_link", "missing_pdf", "redirect", "unverified_link")
BROKEN_CHECKS = ("broken_link", "missing_pdf")
_REFRESH = re.compile(
    r"""^\s*\d*(?:\.\d*)?\s*(?:[;,]\s*)?(?:url\s*=\s*)?(?P<q>['"]?)(?P<url>.*?)(?P=q)\s*$""",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class Verdict:
    """What the disk says about one target: confirmed or contradicted, and why."""

    status: str
    reason: str
    note: str


def served_origin(url: str) -> str:
    """scheme://host:port of a URL (the served host is the start URL's)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def url_to_path(url: str, www: Path) -> Path:
    """The file nginx serves for ``url`` under ``www`` (dot segments never climb above it)."""
    path = unquote(urlsplit(url).path, errors="surrogateescape")
    norm = posixpath.normpath("/" + path.lstrip("/"))
    local = www / norm.lstrip("/")
    if path.endswith("/") or local.is_dir():
        local = local / "index.html"
    return local


def _missing_note(local: Path) -> str:
    """Why a file is not there, as seen on disk."""
    if local.is_symlink():
        return f"dangling symlink -> {os.readlink(local)}"
    if local.name == "index.html" and local.parent.is_dir():
        return "directory without index.html"
    if Path(f"{local}.gz").is_file():
        return "only a compressed copy (.gz) on disk"
    if not local.parent.exists():
        return "absent (its directory is not on disk either)"
    return "absent"


def classify_target(url: str, www: Path, scopes: Sequence[str] = ()) -> Verdict:
    """A broken target (URL without fragment): is the file really missing?"""
    verdict = _classify_target(url, www)
    if verdict.status != CONFIRMED or not scopes or url.startswith(tuple(scopes)):
        return verdict
    # Outside the audited tree: typically a root-relative link ("/license.html") written
    # for a site served at the root, while the package is served under /<site>/.
    note = f"{verdict.note}; outside the audited tree"
    for scope in scopes:
        inside = urljoin(scope, urlsplit(url).path.lstrip("/"))
        if url_to_path(inside, www).is_file():
            note += f" (root-relative link; the file is at {urlsplit(inside).path})"
            break
    return Verdict(CONFIRMED, "", note)


def _classify_target(url: str, www: Path) -> Verdict:
    local = url_to_path(url, www)
    if local.is_file():
        raw = www / urlsplit(url).path.lstrip("/")
        if "%" in urlsplit(url).path and not raw.exists():
            return Verdict(CONTRADICTED, "percent-encoding", "exists once percent-decoded")
        return Verdict(CONTRADICTED, "other", "file exists")
    return Verdict(CONFIRMED, "", _missing_note(local))


def _parse(local: Path) -> etree._ElementTree:
    """Parse a file as HTML in its declared charset, or UTF-8 when it declares none."""
    data = local.read_bytes()
    declared = re.search(rb"<meta[^>]+charset", data[:4096], re.IGNORECASE)
    parser = None if declared else html.HTMLParser(encoding="utf-8")
    return etree.ElementTree(html.document_fromstring(data, parser=parser))


class Pages:
    """Parsed target files, cached: anchors (id, a/@name) and meta-refresh targets."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[frozenset[str], str | None]] = {}

    def _load(self, local: Path) -> tuple[frozenset[str], str | None]:
        if local not in self._cache:
            try:
                tree = _parse(local)
            except (OSError, etree.ParserError, ValueError):
                self._cache[local] = (frozenset(), None)
                return self._cache[local]
            ids = {v for v in tree.xpath("//@id")}
            ids.update(tree.xpath("//a/@name"))
            refresh = None
            for meta in tree.xpath("//meta[@http-equiv and @content]"):
                if meta.get("http-equiv", "").strip().lower() == "refresh":
                    match = _REFRESH.match(meta.get("content", ""))
                    refresh = match.group("url").strip() if match else None
                    break
            self._cache[local] = (frozenset(str(i) for i in ids), refresh or None)
        return self._cache[local]

    def anchors(self, local: Path) -> frozenset[str]:
        return self._load(local)[0]

    def refresh(self, local: Path) -> str | None:
        return self._load(local)[1]


def classify_fragment(url: str, www: Path, pages: Pages) -> Verdict:
    """A missing_fragment finding: does the file lack the anchor, as a browser reads it?"""
    base, _, fragment = url.partition("#")
    local = url_to_path(base, www)
    if not local.is_file():
        return Verdict(CONFIRMED, "", "target page missing on disk")
    decoded = unquote(fragment, errors="strict") if _utf8(fragment) else fragment
    if fragment == "" or decoded.lower() == "top":
        return Verdict(CONTRADICTED, "other", "#top / empty fragment: always valid")
    anchors = pages.anchors(local)
    if fragment in anchors:
        return Verdict(CONTRADICTED, "other", "the raw fragment is an id on the page")
    if decoded in anchors:
        return Verdict(CONTRADICTED, "percent-encoding", "id exists once percent-decoded")
    refresh = pages.refresh(local)
    if refresh is not None:
        dest = url_to_path(urljoin(base, refresh), www)
        if dest.is_file() and {fragment, decoded} & pages.anchors(dest):
            return Verdict(
                CONTRADICTED, "meta-refresh", f"anchor is on the refresh target {refresh}"
            )
    folded = {a.lower() for a in anchors}
    if decoded.lower() in folded:
        return Verdict(CONFIRMED, "", "an id differs only in letter case")
    return Verdict(CONFIRMED, "", f"no id/name {decoded!r} in the file ({len(anchors)} anchors)")


def _utf8(fragment: str) -> bool:
    """True when the fragment's percent-escapes decode as UTF-8 (as browsers decode them)."""
    try:
        unquote(fragment, errors="strict")
    except UnicodeDecodeError:
        return False
    return True


def classify_pdf(url: str, www: Path) -> Verdict:
    """A missing_pdf finding whose address answered (not_a_pdf, redirected_to_html)."""
    local = url_to_path(url, www)
    if not local.is_file():
        return Verdict(CONFIRMED, "", _missing_note(local))
    with local.open("rb") as fh:
        if fh.read(5) == b"%PDF-":
            return Verdict(CONTRADICTED, "other", "the file on disk is a PDF")
    return Verdict(CONFIRMED, "", "the file on disk is not a PDF")


def classify_other(url: str, www: Path, pages: Pages) -> Verdict:
    """A redirect / unverified finding on the served host: what does the disk explain?

    nginx itself redirects only a directory asked for without its trailing slash; a
    meta-refresh page is a redirect a browser follows. Anything else is unexplained.
    """
    local = url_to_path(url, www)
    slashless = not urlsplit(url).path.endswith("/")
    if slashless and local.name == "index.html" and local.parent.is_dir():
        return Verdict(CONFIRMED, "", "a directory: nginx adds the trailing slash (301)")
    if local.is_file() and pages.refresh(local) is not None:
        return Verdict(CONFIRMED, "", f"a meta-refresh page (to {pages.refresh(local)})")
    return Verdict(CONTRADICTED, "other", "a plain file on disk" if local.is_file() else "absent")


def start_refresh_dead_end(run: dict, www: Path, pages: Pages) -> bool:
    """The start page is a meta-refresh page and the crawl stopped there."""
    starts = run.get("start_urls") or []
    if not starts or run.get("pages_crawled") != 1:
        return False
    local = url_to_path(starts[0], www)
    return local.is_file() and pages.refresh(local) is not None


def verify_report(report: dict, www: Path, pages: Pages | None = None) -> dict:
    """Classify every link finding / broken link of one report; return counts and rows."""
    pages = pages or Pages()
    run = report["run"]
    origin = served_origin((run.get("start_urls") or [""])[0])
    scopes = run.get("scopes") or []
    targets: dict[str, Verdict] = {}
    frags: dict[str, Verdict] = {}
    others: dict[str, Verdict] = {}
    link_urls: set[str] = set()  # broken link URLs as listed before grouping (with #)
    rows = []
    for f in report["findings"]:
        if f["check"] not in LINK_CHECKS or served_origin(f["target"]) != origin:
            continue
        if f["detail"] == FRAGMENT:
            url = f["target"]
            if url not in frags:
                frags[url] = classify_fragment(url, www, pages)
            verdict = frags[url]
        elif f["check"] in BROKEN_CHECKS:
            url = f["target"].partition("#")[0]
            if url not in targets:
                targets[url] = (
                    classify_pdf(url, www)
                    if f["check"] == "missing_pdf" and not f["detail"].startswith("http_")
                    else classify_target(url, www, scopes)
                )
            verdict = targets[url]
        else:  # redirect, unverified_link on the served host
            url = f["target"].partition("#")[0]
            if url not in others:
                others[url] = classify_other(url, www, pages)
            verdict = others[url]
        rows.append(
            {"check": f["check"], "detail": f["detail"], "page": f["page"]}
            | {"target": f["target"], **asdict(verdict)}
        )
    # Broken links that no finding carries (e.g. a check's severity turned off) count too.
    for link in report["links"]:
        if link["verdict"] != "broken" or served_origin(link["url"]) != origin:
            continue
        if link["detail"] == FRAGMENT:
            if link["url"] not in frags:
                frags[link["url"]] = classify_fragment(link["url"], www, pages)
        else:
            url = link["url"].partition("#")[0]
            if url not in targets:
                targets[url] = classify_target(url, www, scopes)
            link_urls.add(link["url"])
    summary = _summarise(report, origin, (targets, frags, others), rows, www, pages)
    summary["broken_targets"]["link_urls"] = len(link_urls)
    return summary


def _summarise(report, origin, verdicts, rows, www, pages) -> dict:
    targets, frags, others = verdicts
    run = report["run"]
    outside = Counter(
        f"{link['verdict']}/{link['detail']}" if link["detail"] else link["verdict"]
        for link in report["links"]
        if served_origin(link["url"]) != origin and link["url"].startswith(("http:", "https:"))
    )
    frag_rows = [r for r in rows if r["detail"] == FRAGMENT]
    target_rows = [r for r in rows if r["detail"] != FRAGMENT and r["check"] in BROKEN_CHECKS]
    other_rows = [r for r in rows if r["check"] not in BROKEN_CHECKS]
    return {
        "pages_crawled": run["pages_crawled"],
        "links_checked": run["links_checked"],
        "complete": run["complete"],
        "incomplete_reasons": run.get("incomplete_reasons", []),
        "start_meta_refresh_not_followed": start_refresh_dead_end(run, www, pages),
        "findings_by_check": report["summary"]["by_check"],
        "broken_targets": _tally(targets),
        "broken_target_findings": _tally_rows(target_rows),
        "fragment_targets": _tally(frags),
        "fragment_findings": _tally_rows(frag_rows),
        "other_link_findings": _tally_rows(other_rows),
        "outside_links": dict(sorted(outside.items())),
        "confirmed_broken_targets": _explained(targets),
        "confirmed_fragment_targets": _explained(frags),
        "confirmed_other_targets": _explained(others),
        "contradicted_examples": _contradicted({**targets, **frags, **others}),
        "rows": rows,
    }


def _tally(verdicts: dict[str, Verdict]) -> dict:
    status = Counter(v.status for v in verdicts.values())
    reasons = Counter(v.reason for v in verdicts.values() if v.status == CONTRADICTED)
    return {
        "total": len(verdicts),
        CONFIRMED: status[CONFIRMED],
        CONTRADICTED: status[CONTRADICTED],
        "contradicted_by_reason": dict(sorted(reasons.items())),
    }


def _tally_rows(rows: list[dict]) -> dict:
    status = Counter(r["status"] for r in rows)
    reasons = Counter(r["reason"] for r in rows if r["status"] == CONTRADICTED)
    return {
        "total": len(rows),
        CONFIRMED: status[CONFIRMED],
        CONTRADICTED: status[CONTRADICTED],
        "contradicted_by_reason": dict(sorted(reasons.items())),
    }


def _contradicted(verdicts: dict[str, Verdict], limit: int = 50) -> dict:
    """The false findings: how many, and the first few of each reason."""
    out: dict[str, list[dict]] = {}
    for url, v in sorted(verdicts.items()):
        if v.status == CONTRADICTED and len(out.setdefault(v.reason, [])) < limit:
            out[v.reason].append({"url": url, "note": v.note})
    return out


def _explained(verdicts: dict[str, Verdict]) -> list[dict]:
    """Every confirmed target with what the disk says about it."""
    return [
        {"url": url, "note": v.note} for url, v in sorted(verdicts.items()) if v.status == CONFIRMED
    ]


def _cc(t: dict) -> str:
    return f"{t['total']} ({t[CONFIRMED]}/{t[CONTRADICTED]})"


def _row(name: str, s: dict) -> list[str]:
    bt, bf, ft, ff = (
        s["broken_targets"],
        s["broken_target_findings"],
        s["fragment_targets"],
        s["fragment_findings"],
    )
    reasons = Counter(bt["contradicted_by_reason"]) + Counter(ft["contradicted_by_reason"])
    return [
        name,
        str(s["pages_crawled"]) + ("" if s["complete"] else "*"),
        _cc(bt),
        str(bt.get("link_urls", "")),
        _cc(bf),
        _cc(ft),
        _cc(ff),
        ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "-",
        _cc(s["other_link_findings"]),
        str(sum(s["outside_links"].values())),
        "DEAD END" if s["start_meta_refresh_not_followed"] else "-",
    ]


HEADER = [
    "site",
    "pages",
    "broken targets (c/c)",
    "their link URLs",
    "broken-target findings (c/c)",
    "fragment targets (c/c)",
    "fragment findings (c/c)",
    "contradicted targets by reason",
    "redirect/unverified findings (c/c)",
    "outside links",
    "meta-refresh start",
]


LEGEND = """\
pages: * = run incomplete. (c/c) = confirmed by disk (really missing) / contradicted by disk
(exists: a false finding). broken targets = unique URLs without #fragment (broken_link,
missing_pdf); their link URLs = distinct link URLs (with #fragment) behind them; fragment
targets = distinct missing_fragment URLs; findings = report findings (one per page and link)."""


def format_table(summaries: dict[str, dict]) -> str:
    """A plain-text table, one row per site."""
    rows = [HEADER] + [_row(name, s) for name, s in summaries.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _explanations(name: str, s: dict, limit: int) -> list[str]:
    out = []
    for key, label in (
        ("confirmed_broken_targets", "broken targets missing on disk"),
        ("confirmed_fragment_targets", "fragments missing in the file on disk"),
        ("confirmed_other_targets", "redirect/unverified targets explained on disk"),
    ):
        items = s[key]
        if not items:
            continue
        notes = Counter(i["note"] for i in items)
        out.append(
            f"{name}: {len(items)} {label}: "
            + "; ".join(f"{n}x {note}" for note, n in notes.most_common(6))
        )
        out.extend(f"    {i['url']}  [{i['note']}]" for i in items[:limit])
        if len(items) > limit:
            out.append(f"    ... and {len(items) - limit} more (see summary.json)")
    for reason, items in s["contradicted_examples"].items():
        out.append(f"{name}: FALSE findings ({reason}), e.g.:")
        out.extend(f"    {i['url']}  [{i['note']}]" for i in items[:3])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", metavar="NAME=REPORT_JSON")
    parser.add_argument("--www", type=Path, required=True, help="the nginx docroot")
    parser.add_argument("--summary", type=Path, help="write the JSON summary here")
    parser.add_argument("--details", action="store_true", help="write verified.json per site")
    parser.add_argument("--meta", type=Path, help="JSON {site: {...}} merged into the summary")
    parser.add_argument("--list", type=int, default=15, help="confirmed targets shown per site")
    args = parser.parse_args(argv)
    meta = json.loads(args.meta.read_text()) if args.meta else {}
    summaries: dict[str, dict] = {}
    lines: list[str] = []
    for spec in args.reports:
        name, sep, path = spec.partition("=")
        if not sep or not Path(path).is_file():
            print(f"verify_findings: no report for {spec!r}", file=sys.stderr)
            return 2
        try:
            report = json.loads(Path(path).read_text(encoding="utf-8"))
            result = verify_report(report, args.www)
        except (ValueError, KeyError, TypeError) as exc:
            print(
                f"verify_findings: {path}: not a sitewatch report.json (report@1 or @2) ({exc})",
                file=sys.stderr,
            )
            return 2
        rows = result.pop("rows")
        if args.details:
            out = Path(path).with_name("verified.json")
            out.write_text(json.dumps(rows, indent=0, ensure_ascii=False), encoding="utf-8")
        summaries[name] = meta.get(name, {}) | result
        lines.extend(_explanations(name, result, args.list))
        del report, rows
    print(format_table(summaries))
    print(LEGEND)
    print("\n".join(lines))
    if args.summary:
        args.summary.write_text(json.dumps(summaries, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
