"""The layering in docs/architecture.md, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports(package: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(ROOT))] = names
    return out


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("checks", {"scrapy", "twisted", "jinja2", "smtplib", "crawler", "reports", "click"}),
        ("reports", {"scrapy", "twisted", "crawler", "click", "apscheduler"}),
    ],
)
def test_layering(package: str, forbidden: set[str]) -> None:
    bad = {
        f: sorted(names & forbidden) for f, names in imports(package).items() if names & forbidden
    }
    assert not bad


def test_only_crawler_imports_scrapy() -> None:
    for package in ("checks", "reports", "demo"):
        for f, names in imports(package).items():
            assert "scrapy" not in names, f


def test_no_scrapy_name_shadowed() -> None:
    assert not (ROOT / "crawler" / "crawler.py").exists()
    assert not (ROOT / "scrapy.cfg").exists()


#: Process management: only crawler/app/processes.py forks, spawns, signals, reaps or ends the
#: process; ``os.kill(pid, 0)`` (does it still run?) is allowed anywhere.
PROCESS_CALLS = {
    ("os", name)
    for name in (
        "fork",
        "forkpty",
        "_exit",
        "nice",
        "setpriority",
        "wait",
        "waitpid",
        "wait3",
        "wait4",
        "waitid",
        "kill",
        "killpg",
        "system",
        "popen",
        "posix_spawn",
        "posix_spawnp",
        "execv",
        "execve",
        "execvp",
        "setsid",
        "setpgid",
        "pidfd_open",
    )
} | {("gc", "freeze"), ("gc", "unfreeze"), ("atexit", "_run_exitfuncs")}
PROCESS_MODULES = {"subprocess", "multiprocessing", "pty", "concurrent"}
PROCESS_ATTRS = {"create_subprocess_exec", "create_subprocess_shell"}


def process_management(path: Path) -> list[str]:
    """What in ``path`` starts, signals, reaps or ends a process (line: what)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [
                f"{node.lineno}: import {a.name}"
                for a in node.names
                if a.name.split(".")[0] in PROCESS_MODULES
            ]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in PROCESS_MODULES:
                found.append(f"{node.lineno}: from {node.module}")
        elif isinstance(node, ast.Attribute):
            base = node.value.id if isinstance(node.value, ast.Name) else None
            if (base, node.attr) in PROCESS_CALLS or node.attr in PROCESS_ATTRS:
                found.append(f"{node.lineno}: {base}.{node.attr}")
    return found


def _liveness_probes(path: Path) -> set[int]:
    """Lines of ``os.kill(pid, 0)`` calls (does the process still run?)."""
    return {
        node.lineno
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "kill"
        and len(node.args) == 2
        and isinstance(node.args[1], ast.Constant)
        and node.args[1].value == 0
    }


def test_only_the_process_helper_manages_processes() -> None:
    helper = ROOT / "crawler" / "app" / "processes.py"
    assert process_management(helper)  # the check sees what it is looking for
    bad = {}
    for package in ("crawler", "reports", "checks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == helper:
                continue
            probes = _liveness_probes(path)
            found = [f for f in process_management(path) if int(f.split(":")[0]) not in probes]
            if found:
                bad[str(path.relative_to(ROOT))] = found
    assert not bad


def test_reports_manage_no_process() -> None:
    for path in sorted((ROOT / "reports").rglob("*.py")):
        assert not process_management(path), path
        assert not _liveness_probes(path), path
