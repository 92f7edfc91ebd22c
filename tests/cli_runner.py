"""Run the real ``sitewatch`` command in a child process (one Scrapy reactor per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def resolve_found_on(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` with each ``links[].found_on`` item ``[index, text]`` turned into
    ``{"page": found_on_pages[index], "text": text}`` (the place as a URL: page numbers
    depend on the crawl order, which varies between runs)."""
    on = report["found_on_pages"]
    links = [
        {**link, "found_on": [{"page": on[i], "text": text} for i, text in link["found_on"]]}
        for link in report["links"]
    ]
    return {**report, "links": links}


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    out_dir: Path

    @property
    def report(self) -> dict[str, Any]:
        return json.loads((self.out_dir / "report.json").read_text(encoding="utf-8"))

    def links(self) -> dict[str, dict[str, Any]]:
        """Links by URL, ``found_on`` resolved to ``{page, text}`` (see resolve_found_on)."""
        return {link["url"]: link for link in resolve_found_on(self.report)["links"]}

    def pages(self) -> dict[str, dict[str, Any]]:
        return {page["url"]: page for page in self.report["pages"]}


def sitewatch(
    *args: str, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> CliResult:
    """``sitewatch ARGS`` run from ``cwd``; reports land in ``cwd/out`` unless --out is given."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "crawler.app.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )
    out = cwd / "out"
    if "--out" in args:
        out = Path(args[args.index("--out") + 1])
        if not out.is_absolute():
            out = cwd / out
    return CliResult(proc.returncode, proc.stdout, proc.stderr, out)


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
