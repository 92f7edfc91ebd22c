"""Reading, merging and validating: ``load_config`` and the validator walking ``_SCHEMA``."""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from crawler.config.defaults import DEFAULTS
from crawler.config.model import (
    _PASSWORD_KEYS,
    COMMAND_LINE,
    Config,
    ConfigError,
    CrawlConfig,
    EmailConfig,
    FreshnessConfig,
    HistoryConfig,
    LinksConfig,
    OwnerConfig,
    ReportConfig,
    ScheduleConfig,
    SeverityConfig,
    SiteConfig,
    SmtpConfig,
    WebConfig,
    WorkerConfig,
    _dotted,
    _Invalid,
    _show,
    _suggest,
)
from crawler.config.schema import (
    _KEY_HOMES,
    _OWNER_FIELDS,
    _SCHEMA,
)

# --------------------------------------------------------------------------- loading


#: Tables a site file (``schedule.sites``) may not set: they belong to the deployment.
SITE_FILE_FORBIDDEN = ("history", "schedule", "worker")


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    site_file: str | os.PathLike[str] | None = None,
) -> Config:
    """Defaults, then the TOML file at ``path``, then ``site_file`` (one of its
    ``schedule.sites``, see ``crawler.app.sites``), then ``overrides``; validated."""
    label: str | None = None
    try:
        label = None if path is None else os.fspath(path)
        site_label = None if site_file is None else os.fspath(site_file)
        return _load(label, overrides, site_label)
    except ConfigError:
        raise
    except Exception as exc:  # never a traceback for bad input
        raise ConfigError(label, None, f"could not be loaded: {type(exc).__name__}: {exc}") from exc


def _load(
    label: str | None, overrides: Mapping[str, Any] | None, site_label: str | None = None
) -> Config:
    merged: dict[str, Any] = copy.deepcopy(DEFAULTS)
    origin: dict[tuple[str, ...], str] = {}
    if label is not None:
        data = _read_toml(label)
        _merge(merged, data, (), label, origin, skip_none=False)
    if site_label is not None:
        data = _read_toml(site_label)
        for key in SITE_FILE_FORBIDDEN:
            if key in data:
                raise ConfigError(
                    site_label,
                    key,
                    "a site file may not set this table: it belongs to the deployment's "
                    f"config{f' ({label})' if label else ''}, shared by every site",
                )
        _merge(merged, data, (), site_label, origin, skip_none=False)
    if overrides is not None:
        if not isinstance(overrides, Mapping):
            raise ConfigError(COMMAND_LINE, None, f"expected a table, got {_show(overrides)}")
        _merge(merged, overrides, (), COMMAND_LINE, origin, skip_none=True)
    validated = _Validator(origin, label).run(merged)
    return _build(validated, label)


def _read_toml(label: str) -> dict[str, Any]:
    p = Path(label)
    try:
        if p.is_dir():
            raise ConfigError(label, None, "is a directory, not a config file")
        raw = p.read_bytes()
    except ConfigError:
        raise
    except FileNotFoundError:
        raise ConfigError(label, None, "no such file") from None
    except PermissionError:
        raise ConfigError(label, None, "permission denied (cannot read the file)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(label, None, f"cannot read the file: {exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(label, None, f"not UTF-8 text (bad byte at line {line})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(label, None, f"invalid TOML: {exc}") from None


def _merge(
    base: dict[str, Any],
    new: Mapping[Any, Any],
    prefix: tuple[str, ...],
    source: str,
    origin: dict[tuple[str, ...], str],
    *,
    skip_none: bool,
) -> None:
    for key, value in new.items():
        if not isinstance(key, str):
            raise ConfigError(source, _dotted(prefix) or None, f"key {key!r} is not a string")
        if value is None and skip_none:
            continue
        path = (*prefix, key)
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value, path, source, origin, skip_none=skip_none)
        else:
            base[key] = copy.deepcopy(_thaw(value))
            # A replaced subtree: forget where its old leaves came from.
            for known in [k for k in origin if k[: len(path)] == path]:
                del origin[known]
            origin[path] = source


def _thaw(value: Any) -> Any:
    """Mappings to dicts (so overrides may pass a FrozenMap or any Mapping)."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    return value


class _Validator:
    def __init__(self, origin: Mapping[tuple[str, ...], str], label: str | None) -> None:
        self.origin = origin
        self.label = label

    def error(self, path: tuple[str | int, ...], reason: str) -> ConfigError:
        """An error for ``path``, naming the source that set the value there."""
        keys = tuple(seg for seg in path if isinstance(seg, str))
        for i in range(len(keys), 0, -1):
            if keys[:i] in self.origin:
                return ConfigError(self.origin[keys[:i]], _dotted(path) or None, reason)
        return ConfigError(self.label, _dotted(path) or None, reason)

    def run(self, merged: dict[str, Any]) -> dict[str, Any]:
        self.merged = merged
        out = self.table(merged, _SCHEMA, ())
        self.schedule(out["schedule"])
        return out

    def unknown(self, path: tuple[str | int, ...], key: str, valid: list[str]) -> ConfigError:
        if key.lower() in _PASSWORD_KEYS:
            return self.error(
                (*path, key),
                "passwords must not be stored in a config file; put the SMTP password in "
                "the environment variable named by email.smtp.password_env "
                f"(here {self.password_env()})",
            )
        if key in _KEY_HOMES:  # a valid key, in the wrong table
            hint = f" (did you mean {' or '.join(repr(h) for h in _KEY_HOMES[key])}?)"
        else:
            hint = _suggest(key, valid)
        return self.error((*path, key), f"unknown key{hint}")

    def password_env(self) -> str:
        try:
            name = self.merged["email"]["smtp"]["password_env"]
        except (KeyError, TypeError):
            name = None
        return name if isinstance(name, str) else DEFAULTS["email"]["smtp"]["password_env"]

    def table(
        self, value: Any, schema: Mapping[str, Any], path: tuple[str | int, ...]
    ) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(path, f"expected a table, got {_show(value)}")
        valid = list(schema)
        for key in value:
            if key not in schema:
                raise self.unknown(path, key, valid)
        defaults: Mapping[str, Any] = DEFAULTS
        for seg in path:
            defaults = defaults[seg]  # type: ignore[index]
        out: dict[str, Any] = {}
        for key, check in schema.items():
            raw = value[key] if key in value else copy.deepcopy(defaults[key])
            sub = (*path, key)
            if key == "owners" and not path:
                out[key] = self.owners(raw)
            elif isinstance(check, Mapping):
                out[key] = self.table(raw, check, sub)
            else:
                try:
                    out[key] = check(raw)
                except _Invalid as exc:
                    raise self.error((*sub, *exc.subpath), exc.reason) from None
        return out

    def owners(self, value: Any) -> tuple[dict[str, Any], ...]:
        if not isinstance(value, list | tuple):
            raise self.error(
                ("owners",), f"expected a list of tables ([[owners]]), got {_show(value)}"
            )
        out = []
        valid = list(_OWNER_FIELDS)
        for i, owner in enumerate(value):
            path: tuple[str | int, ...] = ("owners", i)
            if not isinstance(owner, Mapping):
                raise self.error(path, f"expected a table ([[owners]]), got {_show(owner)}")
            for key in owner:
                if key not in _OWNER_FIELDS:
                    raise self.unknown(path, key, valid)
            item: dict[str, Any] = {}
            for key, (check, required) in _OWNER_FIELDS.items():
                if key not in owner:
                    if required:
                        raise self.error((*path, key), "missing (every owner needs it)")
                    continue
                try:
                    item[key] = check(owner[key])
                except _Invalid as exc:
                    raise self.error((*path, key, *exc.subpath), exc.reason) from None
            out.append(item)
        return tuple(out)

    def schedule(self, sched: dict[str, Any]) -> None:
        path = ("schedule",)
        try:
            tz = ZoneInfo(sched["timezone"])
        except Exception as exc:  # ZoneInfoNotFoundError, ValueError, OSError
            raise self.error(
                (*path, "timezone"),
                f"unknown time zone {sched['timezone']!r} (use an IANA name such as "
                f"'Europe/Stockholm'): {exc}",
            ) from None
        default = DEFAULTS["schedule"]
        if all(sched[k] == default[k] for k in ("day_of_week", "hour", "minute")):
            return  # the default schedule is valid (tested): no APScheduler import for it
        from apscheduler.triggers.cron import CronTrigger

        for key in ("day_of_week", "hour", "minute"):
            try:
                CronTrigger(**{key: sched[key]}, timezone=tz)
            except Exception as exc:
                raise self.error((*path, key), f"invalid cron value: {exc}") from None
        try:
            CronTrigger(
                day_of_week=sched["day_of_week"],
                hour=sched["hour"],
                minute=sched["minute"],
                timezone=tz,
            )
        except Exception as exc:
            raise self.error(path, f"invalid schedule: {exc}") from None


def _build(v: dict[str, Any], source: str | None) -> Config:
    email = dict(v["email"])
    email["smtp"] = SmtpConfig(**email["smtp"])
    return Config(
        site=SiteConfig(**v["site"]),
        crawl=CrawlConfig(**v["crawl"]),
        freshness=FreshnessConfig(**v["freshness"]),
        links=LinksConfig(**v["links"]),
        severity=SeverityConfig(**v["severity"]),
        report=ReportConfig(**v["report"]),
        history=HistoryConfig(**v["history"]),
        email=EmailConfig(**email),
        schedule=ScheduleConfig(**v["schedule"]),
        owners=tuple(OwnerConfig(**o) for o in v["owners"]),
        web=WebConfig(**v["web"]),
        worker=WorkerConfig(**v["worker"]),
        source=source,
    )
