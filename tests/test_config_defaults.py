"""config/default.toml, crawler/config/defaults.py and the Config dataclasses stay in step."""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest

from crawler.config import Config, OwnerConfig, load_config
from crawler.config import model as config_module
from crawler.config.defaults import DEFAULTS

DEFAULT_TOML = Path(__file__).resolve().parents[1] / "config" / "default.toml"

_HEADER = re.compile(r"^\[([A-Za-z0-9_.]+)\]\s*(#.*)?$")
_KEY = re.compile(r"^([A-Za-z0-9_-]+)\s*=")


def leaf_keys(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in table.items():
        path = (*prefix, key)
        if isinstance(value, dict) and key != "max_age_by_prefix":
            out.extend(leaf_keys(value, path))
        else:
            out.append(path)
    return out


def documented_keys(text: str) -> set[tuple[str, ...]]:
    """Keys with a comment above them, above their block of keys, or above their table.

    A key is documented when, walking up from it over non-blank lines (other keys and
    the continuation lines of multi-line values), a comment line is reached before a
    blank line or the table header; or when the table header has a comment directly
    above it.
    """
    lines = text.splitlines()
    table: tuple[str, ...] = ()
    table_documented = False
    found: set[tuple[str, ...]] = set()
    for i, line in enumerate(lines):
        stripped = line.strip()
        header = _HEADER.match(stripped)
        if header:
            table = tuple(header.group(1).split("."))
            table_documented = i > 0 and lines[i - 1].lstrip().startswith("#")
            continue
        key = _KEY.match(line)  # keys start in column 0 in default.toml
        if not key:
            continue
        documented = table_documented
        j = i - 1
        while j >= 0 and not documented:
            above = lines[j].strip()
            if not above or _HEADER.match(above):
                break
            if above.startswith("#"):
                documented = True
            j -= 1
        if documented:
            found.add((*table, key.group(1)))
    return found


def test_default_toml_equals_defaults():
    with DEFAULT_TOML.open("rb") as fh:
        assert tomllib.load(fh) == DEFAULTS


def test_every_default_key_is_documented():
    documented = documented_keys(DEFAULT_TOML.read_text(encoding="utf-8"))
    missing = [".".join(k) for k in leaf_keys(DEFAULTS) if k not in documented]
    assert not missing, f"keys without a comment in config/default.toml: {missing}"


def test_documented_keys_helper_notices_a_bare_key():
    text = "[a]\n# doc\nx = 1\ny = 2\n\nz = 3\n"
    assert documented_keys(text) == {("a", "x"), ("a", "y")}
    assert documented_keys("# table doc\n[a]\nz = 3\n") == {("a", "z")}


def _nested_dataclass(cls: type, name: str) -> type | None:
    hint = typing.get_type_hints(cls, vars(config_module))[name]
    if dataclasses.is_dataclass(hint):
        return hint
    return None


def _check_fields(cls: type, table: dict[str, Any], where: str) -> list[str]:
    problems = []
    names = {f.name for f in dataclasses.fields(cls)} - {"source"}
    for key in sorted(set(table) - names):
        problems.append(f"{where}{key} is not a field of {cls.__name__}")
    for key in sorted(names - set(table)):
        problems.append(f"{cls.__name__}.{key} is not a key in DEFAULTS[{where or 'root'}]")
    for key, value in table.items():
        if key in names and isinstance(value, dict) and key != "max_age_by_prefix":
            sub = _nested_dataclass(cls, key)
            if sub is None:
                problems.append(f"{where}{key} is a table but {cls.__name__}.{key} is not")
            else:
                problems.extend(_check_fields(sub, value, f"{where}{key}."))
    return problems


def test_every_default_key_is_a_dataclass_field():
    assert _check_fields(Config, DEFAULTS, "") == []


def test_owner_keys_in_the_default_toml_example_are_owner_fields():
    """The commented [[owners]] example in default.toml names exactly OwnerConfig's fields."""
    text = DEFAULT_TOML.read_text(encoding="utf-8")
    example = re.search(r"^# \[\[owners\]\]\n((?:# .*\n)+)", text, re.MULTILINE)
    assert example, "default.toml should show a commented [[owners]] example"
    body = "".join(line[2:] + "\n" for line in example.group(1).splitlines())
    owner = tomllib.loads(body)
    assert set(owner) == {f.name for f in dataclasses.fields(OwnerConfig)}
    # and the example, uncommented, is a valid owner
    loaded = load_config(overrides={"owners": [owner]})
    assert loaded.owners[0].name == owner["name"]


@pytest.mark.parametrize("path", leaf_keys(DEFAULTS), ids=".".join)
def test_every_default_value_is_accepted_by_itself(path):
    """Each default passes validation when given explicitly (as a command-line override)."""
    value: Any = DEFAULTS
    for key in path:
        value = value[key]
    overrides: dict[str, Any] = {}
    node = overrides
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    assert load_config(overrides=overrides).to_dict() == DEFAULTS
