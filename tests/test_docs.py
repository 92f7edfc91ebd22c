"""The README's documented commands and options are the real ones."""

from __future__ import annotations

import re
from pathlib import Path

import click
from click.testing import CliRunner

from crawler.app.cli import LAZY_COMMANDS, main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _usage_block() -> str:
    m = re.search(r"```\nsitewatch audit \[START_URL.*?```", README, re.S)
    assert m, "README has no usage block for sitewatch audit"
    return m.group(0)


def test_readme_usage_lists_every_audit_option() -> None:
    audit = main.commands["audit"]
    real = {opt for p in audit.params for opt in getattr(p, "opts", []) if opt.startswith("--")}
    documented = set(re.findall(r"--[a-z][a-z-]+", _usage_block()))
    assert documented <= real, documented - real
    assert real - {"--help", "--no-history"} <= documented | {"--verbose"}, real - documented


def _command_names() -> list[str]:
    names = main.list_commands(click.Context(main))
    assert set(LAZY_COMMANDS) | {"audit"} == set(names)
    return names


def test_readme_names_every_command() -> None:
    for name in _command_names():
        assert f"sitewatch {name}" in README or name == "audit", name


def test_help_runs_for_every_command() -> None:
    runner = CliRunner()
    for name in _command_names():
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output


def test_readme_set_up_is_two_commands() -> None:
    block = re.search(r"## Set-up: two commands\n\n```sh\n(.*?)```", README, re.S)
    assert block
    commands = [ln.split("#")[0].strip() for ln in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]
