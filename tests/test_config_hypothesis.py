"""Property: whatever a config file holds, ``load_config`` returns a ``Config`` or raises
``ConfigError`` naming the file, and nothing else escapes.

Configs are random nested tables written as TOML by the small emitter below (tomli_w is
not a dependency): wholly random trees, and the documented defaults with random leaves
replaced, keys misspelt and tables swapped for scalars, so the validator's every branch
sees bad values, not only the unknown-key check. The same trees go in as command-line
overrides, which must fail naming ``<command line>``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import os
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawler.config import COMMAND_LINE, Config, ConfigError, load_config
from crawler.config.defaults import DEFAULTS

# --------------------------------------------------------------------------- TOML emitter


def toml_key(key: str) -> str:
    return toml_string(key)


def toml_string(s: str) -> str:
    # JSON's escapes are TOML basic-string escapes; TOML also wants DEL escaped. Other
    # characters stay raw (TOML is UTF-8; \uD83D-style surrogate escapes are not TOML).
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007F")


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def to_toml(data: dict[str, Any]) -> str:
    """Top-level scalars first, then one [table] per table (inline tables below that)."""
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            lines.append(f"[{toml_key(k)}]")
            lines.extend(f"{toml_key(kk)} = {toml_value(vv)}" for kk, vv in v.items())
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- strategies

ALL_KEYS = sorted(
    {k for t in DEFAULTS.values() if isinstance(t, dict) for k in t}
    | set(DEFAULTS)
    | set(DEFAULTS["email"]["smtp"])
    | {"match", "name", "emails", "language", "edit_url", "password"}
)
keys = st.one_of(
    st.sampled_from(ALL_KEYS),
    st.text(max_size=12),
    st.sampled_from(ALL_KEYS).map(lambda k: k[:-1] + "x" if k else "x"),
)
texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "http://",
            "https://www.umea.se/internationellt/",
            "http://[::1/",
            "http://umea.se:99999/",
            "javascript:alert(1)",
            "mon-fri",
            "*/5",
            "25",
            "Europe/Stockholm",
            "Mars/Olympus",
            "error",
            "warning,stale_page",
            "stale_page,broken_linkk",
            "html,json",
            "a@b.se",
            "Karin <karin@umea.se>",
            "not an address",
            "(unclosed",
            "https://cms.example/edit?url={url}",
            "https://cms.example/edit?{nope}",
            "{",
            "SITEWATCH_SMTP_PASSWORD",
            "1BAD",
        ]
    ),
)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 24, 60, 65536, 10**12]),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
    st.dates(),
    st.datetimes(timezones=st.none() | st.just(dt.UTC)),
    st.times(),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
    ),
    max_leaves=12,
)
random_trees = st.dictionaries(keys, values, max_size=6)


def _leaves(tree: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(tree, dict):
        out = [path] if path else []
        for k, v in tree.items():
            out.extend(_leaves(v, (*path, k)))
        return out
    return [path]


DEFAULT_PATHS = _leaves(DEFAULTS)
#: Mostly scalars and lists of them, so the value validators (URLs, cron, time zones,
#: regexes, addresses, ranges) see bad values, not only the type checks.
leaf_values = st.one_of(texts, scalars, st.lists(st.one_of(texts, scalars), max_size=4), values)
OWNER_KEYS = ["match", "name", "emails", "language", "edit_url"]
owners = st.dictionaries(
    st.one_of(st.sampled_from(OWNER_KEYS), keys),
    st.one_of(texts, st.lists(texts, max_size=3), scalars),
    max_size=6,
)


@st.composite
def mutated_defaults(draw: st.DrawFn) -> dict[str, Any]:
    """The documented defaults with a few paths replaced by random values or removed."""
    tree = copy.deepcopy(DEFAULTS)
    tree["site"]["start_urls"] = ["https://www.umea.se/internationellt/"]
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(DEFAULT_PATHS))
        parent = tree
        for k in path[:-1]:
            parent = parent.get(k) if isinstance(parent, dict) else None
            if not isinstance(parent, dict):
                break
        else:
            action = draw(st.sampled_from(["replace"] * 6 + ["delete", "rename"]))
            if action == "replace":
                parent[path[-1]] = draw(leaf_values)
            elif action == "delete":
                parent.pop(path[-1], None)
            elif path[-1] in parent:
                parent[draw(keys)] = parent.pop(path[-1])
    if draw(st.booleans()):
        tree["owners"] = draw(st.lists(owners, max_size=3))
    return tree


configs = st.one_of(random_trees, mutated_defaults())

SETTINGS = settings(
    max_examples=int(os.environ.get("SITEWATCH_HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


# --------------------------------------------------------------------------- properties


def check_file(path: Path, data: dict[str, Any]) -> None:
    text = to_toml(data)
    parsed = tomllib.loads(text)  # the emitter writes valid TOML for every tree
    assert json.dumps(parsed, default=str, sort_keys=True) == json.dumps(
        data, default=str, sort_keys=True
    ) or _has_nan(data), "the test's TOML emitter is wrong"
    path.write_text(text, encoding="utf-8")
    try:
        cfg = load_config(path)
    except ConfigError as e:
        assert e.file == str(path), (e.file, str(e))
        assert str(e).startswith(f"config error in {path}"), str(e)
        assert e.reason
    else:
        assert isinstance(cfg, Config)
        cfg.to_dict()  # a valid config can be shown back


def _has_nan(v: Any) -> bool:
    if isinstance(v, float):
        return math.isnan(v)
    if isinstance(v, dict):
        return any(_has_nan(x) for x in v.values())
    if isinstance(v, list):
        return any(_has_nan(x) for x in v)
    return False


@SETTINGS
@given(data=configs)
def test_any_config_file_loads_or_raises_config_error(tmp_path_factory, data) -> None:
    path = tmp_path_factory.mktemp("cfg") / "site.toml"
    check_file(path, data)


@SETTINGS
@given(data=configs)
def test_any_overrides_load_or_raise_config_error(data) -> None:
    try:
        cfg = load_config(overrides=data)
    except ConfigError as e:
        assert e.file == COMMAND_LINE, (e.file, str(e))
        assert e.reason
    else:
        assert isinstance(cfg, Config)


@SETTINGS
@given(text=st.text(max_size=300))
def test_any_text_loads_or_raises_config_error(tmp_path_factory, text) -> None:
    path = tmp_path_factory.mktemp("cfg") / "site.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as e:
        assert e.file == str(path)


def test_emitter_round_trips_the_defaults() -> None:
    assert tomllib.loads(to_toml(DEFAULTS)) == DEFAULTS
