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
