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
        (
            "checks",
            {"scrapy", "twisted", "jinja2", "smtplib", "crawler", "reports", "click", "flask"},
        ),
        ("reports", {"scrapy", "twisted", "crawler", "click", "apscheduler", "flask"}),
    ],
)
def test_layering(package: str, forbidden: set[str]) -> None:
    bad = {
        f: sorted(names & forbidden) for f, names in imports(package).items() if names & forbidden
    }
    assert not bad


#: The subpackages of crawler/ that may import Scrapy or Twisted: the crawl itself and the
#: HTTP stack Scrapy downloads through (docs/architecture.md).
SCRAPY_HOMES = ("crawler/engine/", "crawler/http/")


def test_only_engine_and_http_import_scrapy() -> None:
    users = set()
    for package in ("crawler", "checks", "reports", "demo"):
        for f, names in imports(package).items():
            if names & {"scrapy", "twisted"}:
                users.add(f)
                assert f.startswith(SCRAPY_HOMES), f
    assert "crawler/engine/spider.py" in users  # the check sees what it is looking for


def full_imports(package: str) -> dict[str, set[str]]:
    """Dotted module names each file of ``package`` imports (absolute imports)."""
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
        out[str(path.relative_to(ROOT))] = names
    return out


@pytest.mark.parametrize("package", ["crawler/pages", "crawler/state"])
def test_pages_and_state_know_no_engine(package: str) -> None:
    """Page parsing and crawl state are plain code the engine uses, never the reverse:
    they import neither Scrapy nor the engine nor the HTTP stack."""
    bad = {}
    for f, names in full_imports(package).items():
        found = sorted(
            n
            for n in names
            if n.split(".")[0] in {"scrapy", "twisted"}
            or n.startswith(("crawler.engine", "crawler.http"))
        )
        if found:
            bad[f] = found
    assert not bad


def test_no_relative_imports() -> None:
    """Absolute imports only: ``crawler.http`` can then never shadow the standard ``http``."""
    bad = []
    for package in ("crawler", "checks", "reports"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.level:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad


def test_reports_never_read_crawler_config() -> None:
    """reports/ gets plain settings from the caller, never the crawler's Config."""
    bad = []
    for path in sorted((ROOT / "reports").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.arg) and node.arg == "cfg":
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and ("crawler.config" in node.value or "default.toml" in node.value)
            ):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, bad


#: At most this many modules directly in crawler/: the rest lives in one subpackage per idea.
MAX_TOP_LEVEL_MODULES = 10
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
#: Modules over MAX_MODULE_LINES being split on another branch (remove when merged).
KNOWN_LONG_MODULES: set[str] = set()


def test_crawler_top_level_is_small() -> None:
    modules = sorted(p.name for p in (ROOT / "crawler").glob("*.py"))
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules
    packages = sorted(p.parent.name for p in (ROOT / "crawler").glob("*/__init__.py"))
    assert {"app", "config", "engine", "http", "pages", "state", "rerun"} <= set(packages)


def _product_modules() -> list[Path]:
    return [
        p for pkg in ("crawler", "checks", "reports") for p in sorted((ROOT / pkg).rglob("*.py"))
    ]


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(
            p,
            id=str(p.relative_to(ROOT)),
            marks=pytest.mark.xfail(reason="split on another branch of issue 17")
            if str(p.relative_to(ROOT)) in KNOWN_LONG_MODULES
            else (),
        )
        for p in _product_modules()
    ],
)
def test_module_length(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)}: {lines} lines"


def test_function_length() -> None:
    long = []
    for path in _product_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} {length}")
    assert not long


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
