"""The live progress line appears on a terminal and nowhere else."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from demo.server import Route, SiteServer
from tests.cli_runner import ROOT, sitewatch


def _site() -> SiteServer:
    s = SiteServer("127.0.0.1")
    links = "".join(f'<a href="p{i}.html">p{i}</a>' for i in range(30))
    s.add_route("/s/index.html", Route(body=f"<title>i</title>{links}"))
    for i in range(30):
        s.add_route(f"/s/p{i}.html", Route(body="<title>p</title><p>x</p>", delay=0.05))
    return s.start()


def test_progress_line_on_a_terminal(tmp_path: Path) -> None:
    site = _site()
    try:
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "crawler.app.cli",
                "audit",
                site.url("/s/index.html"),
                "--no-history",
                "--out",
                str(tmp_path / "out"),
                "--concurrency",
                "2",
            ],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
        )
        os.close(slave)
        chunks = []
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=60)
        os.close(master)
    finally:
        site.stop()
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert "pages" in shown and "links checked" in shown and "queued" in shown
    assert "\r" in shown  # redrawn in place


def test_no_progress_when_not_a_terminal(tmp_path: Path) -> None:
    site = _site()
    try:
        r = sitewatch("audit", site.url("/s/index.html"), "--no-history", cwd=tmp_path)
    finally:
        site.stop()
    assert r.code == 0, r.stderr
    assert "queued" not in r.stderr
    assert "31 pages" in r.stdout
