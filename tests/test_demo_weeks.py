"""``make demo`` twice: stable addresses (fixed ports), week 2 fixes one planted problem
and plants one new one; the workspace URLs and the command to start it are printed; a
taken port falls back to free ports with a clear warning."""

from __future__ import annotations

import email
import os
import re
import socket
import subprocess
import sys
import urllib.request
from email import policy
from pathlib import Path

from crawler.web.tokens import Signing
from tests.cli_runner import ROOT

SECRET = "d" * 40
WEB_ARGS = ("--port", "0", "--admin-open")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SITEWATCH_WEB_SECRET": SECRET}
    return subprocess.run(
        [sys.executable, "-m", "demo.run", *args],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def plain(path: Path) -> str:
    msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    body = msg.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def test_two_weeks_of_the_demo(tmp_path: Path) -> None:
    port = free_port()
    week1 = demo(tmp_path, "--port", str(port))
    assert week1.returncode == 0, week1.stderr
    assert "week 1 (as of 2026-11-26)" in week1.stdout
    assert "history: run 1 — 30 new, 0 still open, 0 fixed" in week1.stdout
    m = re.search(r"editor \(Karin Nyström\): (http://127\.0\.0\.1:8150/o/(\S+))", week1.stdout)
    assert m, week1.stdout
    who = Signing(SECRET).read_owner_token(m.group(2), 28)
    assert who is not None and who.owner == "Karin Nyström"
    assert "admin:                  http://127.0.0.1:8150/admin" in week1.stdout
    assert "-m crawler.app.cli web --config out/demo-config.toml --admin-open" in week1.stdout
    assert SECRET not in week1.stdout  # a key from the environment is never printed

    week2 = demo(tmp_path, "--port", str(port))  # week 1 is in the history: week 2
    assert week2.returncode == 0, week2.stderr
    assert "week 2 (as of 2026-12-03)" in week2.stdout
    assert "history: run 2 — 1 new, 29 still open, 1 fixed" in week2.stdout
    karin = plain(tmp_path / "out" / "outbox" / "run000002-karin.nystrom@umea.example.eml")
    new, rest = karin.split("== Kvarstår", 1)
    assert "guanajuato.html" in new and "367 dagar sedan" in new
    still, fixed = rest.split("== Åtgärdat sedan förra veckan (1) ==", 1)
    assert "harstad-besok-2019.html" in fixed and "harstad-besok-2019.html" not in still
    assert "öppna problem, lika många som förra veckan" in karin  # one fixed, one new

    # The printed workspace: `sitewatch web` on the demo's history; the trend has two points.
    m = re.search(r"editor \(Karin Nyström\): http://127\.0\.0\.1:8150(/o/\S+)", week2.stdout)
    assert m, week2.stdout
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SITEWATCH_WEB_SECRET": SECRET}
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crawler.app.cli",
            "web",
            "--config",
            "out/demo-config.toml",
            *WEB_ARGS,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert web.stdout is not None
        base = re.search(r"http://127\.0\.0\.1:\d+", web.stdout.readline())
        assert base, "sitewatch web did not start"
        admin = urllib.request.urlopen(base.group(0) + "/admin", timeout=30).read().decode()
        assert admin.count('class="pt pt-errors"') == 2
        owner = urllib.request.urlopen(base.group(0) + m.group(1), timeout=30).read().decode()
        assert "Guanajuato" in owner and "Dina sidor: Karin Nyström" in owner
    finally:
        web.terminate()
        web.communicate(timeout=30)


def test_a_taken_port_falls_back_with_a_warning(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = demo(tmp_path, "--port", str(port), "--week", "1")
    assert run.returncode == 0, run.stderr
    assert f"WARNING: port {port} is taken" in run.stderr
    assert "every finding as new" in run.stderr
