"""Load, merge and validate sitewatch configuration.

``load_config(path, overrides)`` reads a TOML file, deep-merges it over
``crawler.config.defaults.DEFAULTS`` and then the command-line ``overrides`` (a nested dict of
the same shape; ``None`` values mean "not given" and are skipped), validates every key
and returns a :class:`Config`: a tree of frozen dataclasses whose field names are the
TOML keys, with tuples instead of lists.

Merging: tables merge key by key; any other value (lists included, so ``owners`` and
``site.start_urls``) replaces the one below it.

Bad input of any kind raises :class:`ConfigError` and nothing else. The error names the
file the offending value came from (``"<command line>"`` for overrides), the dotted key
(``site.exclude[2]``, ``owners[1].emial``) and a reason.

Normalisation done while validating: scheme and host of URL prefixes (``site.scopes``,
``links.watched``, ``freshness.max_age_by_prefix`` keys, owner ``match`` prefixes) are
lower-cased and an empty path becomes ``/``; bare watched host names are lower-cased;
duplicate list entries are dropped.
"""

from __future__ import annotations

import copy
import difflib
import fnmatch
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields, is_dataclass
from email.utils import parseaddr
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from checks.models import Check, Severity
from checks.policy import Policy
from crawler.config.defaults import DEFAULTS

__all__ = [
    "COMMAND_LINE",
    "REPORT_FORMATS",
    "Config",
    "ConfigError",
    "CrawlConfig",
    "EmailConfig",
    "FreshnessConfig",
    "FrozenMap",
    "HistoryConfig",
    "LinksConfig",
    "OwnerConfig",
    "ReportConfig",
    "ScheduleConfig",
    "SeverityConfig",
    "SiteConfig",
    "SmtpConfig",
    "WebConfig",
    "WorkerConfig",
    "load_config",
]

#: The ``file`` of errors in ``overrides``.
COMMAND_LINE = "<command line>"
REPORT_FORMATS = ("html", "json", "csv", "junit", "md")
SMTP_SECURITY = ("starttls", "ssl", "none")
SCHEDULE_BACKENDS = ("local", "dramatiq")
OWNER_LANGUAGES = ("sv", "en")
#: Keys that look like a secret: rejected wherever they appear.
_PASSWORD_KEYS = frozenset({"password", "passwd", "pass", "smtp_password", "secret"})


# --------------------------------------------------------------------------- errors


class ConfigError(Exception):
    """Bad configuration: which file, which dotted key, and why."""

    def __init__(self, file: str | None, key: str | None, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        super().__init__(file, key, reason)

    def __str__(self) -> str:
        where = f"config error in {self.file}" if self.file else "config error"
        if self.key:
            return f"{where}: {self.key}: {self.reason}"
        return f"{where}: {self.reason}"


class _Invalid(Exception):
    """A validator's complaint; ``subpath`` is relative to the value it was given."""

    def __init__(self, reason: str, subpath: tuple[str | int, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.subpath = subpath

    def at(self, *segments: str | int) -> _Invalid:
        return _Invalid(self.reason, (*segments, *self.subpath))


# --------------------------------------------------------------------------- values


class FrozenMap(Mapping[str, Any]):
    """A small immutable, hashable, picklable mapping (for tables with free keys)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", dict(data or {}))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._data) == dict(other)
        return NotImplemented

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenMap is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (self._data,))

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


@dataclass(frozen=True)
class SiteConfig:
    name: str
    start_urls: tuple[str, ...]
    scopes: tuple[str, ...]
    exclude: tuple[str, ...]


@dataclass(frozen=True)
class CrawlConfig:
    max_pages: int
    max_depth: int
    concurrency: int
    per_host_concurrency: int
    delay: float
    timeout: float
    retries: int
    max_retry_after: float
    max_redirects: int
    obey_robots: bool
    user_agent: str
    check_external: bool
    max_page_bytes: int
    max_pages_per_pattern: int
    max_path_segments: int
    sitemaps: tuple[str, ...]
    robots_sitemaps: bool
    #: Seconds: a meta refresh this quick is followed like a redirect (``crawler.pages.refresh``).
    max_refresh_delay: int = 3
    #: Parse worker processes: "auto" (one per CPU, at most 4) or a count (0: none).
    parse_workers: int | str = "auto"


@dataclass(frozen=True)
class FreshnessConfig:
    max_age_days: int
    #: URL prefix -> days (a :class:`FrozenMap`).
    max_age_by_prefix: Mapping[str, int]


@dataclass(frozen=True)
class LinksConfig:
    watched: tuple[str, ...]
    unverified_statuses: tuple[int, ...]
    soft_404_phrases: tuple[str, ...]
    check_fragments: bool
    cache_max_age: int
    redirect_to_home: bool
    redirect_to_home_ok: tuple[str, ...]
    pdf_max_bytes: int


@dataclass(frozen=True)
class SeverityConfig:
    stale_page: Severity
    missing_review_date: Severity
    broken_link: Severity
    redirect: Severity
    missing_pdf: Severity
    unverified_link: Severity
    unlinked_page: Severity

    def as_mapping(self) -> dict[Check, Severity]:
        return {check: getattr(self, check.value) for check in Check}


@dataclass(frozen=True)
class ReportConfig:
    out_dir: str
    formats: tuple[str, ...]
    #: A level ("error"), check names ("stale_page,broken_link") or a tuple of them;
    #: parsed by :meth:`Config.fail_threshold`.
    fail_on: str | tuple[str, ...]


@dataclass(frozen=True)
class HistoryConfig:
    db: str
    #: Empty: the SQLite file ``db``. Else ``sqlite:///path`` or ``postgresql://user@host/db``.
    url: str
    #: Name of the environment variable holding the database password (never the password).
    password_env: str
    flaky_runs: int
    flaky_hours: int
    #: Answer a re-run of an unchanged site from the previous run (``crawler.rerun.replay``).
    replay: bool = True


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str
    user: str
    #: Name of the environment variable holding the password (never the password).
    password_env: str
    timeout: float
    retries: int
    ca_file: str


@dataclass(frozen=True)
class EmailConfig:
    from_addr: str
    fallback_to: str
    report_url: str
    send_all_clear: bool
    max_items: int
    outbox: str
    smtp: SmtpConfig


@dataclass(frozen=True)
class ScheduleConfig:
    day_of_week: str
    hour: int | str
    minute: int | str
    timezone: str
    misfire_grace_time: int
    time_limit: int
    #: "local" (audits in children of the scheduler) or "dramatiq" (enqueue only).
    backend: str = "local"
    #: Site config files (as written; resolved by ``crawler.app.sites``).
    sites: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkerConfig:
    redis_url: str
    #: Name of the environment variable holding the Redis password (never the password).
    password_env: str
    queue: str
    time_limit: int
    max_retries: int
    heartbeat_timeout: int
    busy_delay: int


@dataclass(frozen=True)
class OwnerConfig:
    #: URL prefixes or fnmatch globs (anything containing ``*``, ``?`` or ``[``).
    match: tuple[str, ...]
    name: str
    emails: tuple[str, ...]
    language: str = "sv"
    #: Link to the page in the CMS editor; ``{url}`` is replaced by the page URL.
    edit_url: str | None = None

    def matches(self, url: str) -> bool:
        """Whether this owner is responsible for the page at ``url``."""
        for pattern in self.match:
            if _is_glob(pattern):
                if fnmatch.fnmatchcase(url, pattern):
                    return True
            elif _lower_scheme_host(url).startswith(pattern):
                return True
        return False


@dataclass(frozen=True)
class WebConfig:
    """``sitewatch web``: the editors' workspace (see crawler/web/)."""

    #: The workspace's public address; empty: emails carry no workspace links.
    base_url: str = DEFAULTS["web"]["base_url"]
    #: Name of the environment variable holding the signing key (never the key).
    secret_env: str = DEFAULTS["web"]["secret_env"]
    #: werkzeug password hash (scrypt/pbkdf2) for the admin view; empty: no admin login.
    admin_password_hash: str = DEFAULTS["web"]["admin_password_hash"]
    #: Days a workspace link in an email stays valid.
    token_days: int = DEFAULTS["web"]["token_days"]
    #: Weeks an acknowledged finding is left out of the email.
    acknowledge_weeks: int = DEFAULTS["web"]["acknowledge_weeks"]


@dataclass(frozen=True)
class Config:
    site: SiteConfig
    crawl: CrawlConfig
    freshness: FreshnessConfig
    links: LinksConfig
    severity: SeverityConfig
    report: ReportConfig
    history: HistoryConfig
    email: EmailConfig
    schedule: ScheduleConfig
    owners: tuple[OwnerConfig, ...]
    web: WebConfig = WebConfig()
    worker: WorkerConfig = WorkerConfig(**DEFAULTS["worker"])
    #: The file this was loaded from (None: defaults and overrides only). Not a config key.
    source: str | None = None

    def policy(self) -> Policy:
        """What the checks need from this configuration."""
        return Policy(
            max_age_days=self.freshness.max_age_days,
            max_age_by_prefix=dict(self.freshness.max_age_by_prefix),
            severities=self.severity.as_mapping(),
            watched=self.links.watched,
            unverified_statuses=frozenset(self.links.unverified_statuses),
            soft_404_phrases=self.links.soft_404_phrases,
            redirect_to_home=self.links.redirect_to_home,
            redirect_to_home_ok=self.links.redirect_to_home_ok,
        )

    def fail_threshold(self) -> tuple[Severity | None, frozenset[Check]]:
        """``report.fail_on`` parsed: a level (or None) and a set of checks.

        A finding fails the run when its severity ranks at or above the level, or when
        its check is in the set. ``(None, frozenset())`` means nothing fails the run.
        """
        level, checks = _parse_fail_on(self.report.fail_on)
        return level, checks

    def effective_scopes(self) -> tuple[str, ...]:
        """``site.scopes``, or else each start URL's directory (``…/dir/``)."""
        if self.site.scopes:
            return self.site.scopes
        out: list[str] = []
        for url in self.site.start_urls:
            scope = _directory_prefix(url)
            if scope not in out:
                out.append(scope)
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """The merged, validated values as plain data (same shape as ``DEFAULTS``)."""
        out = _plain(self)
        out.pop("source", None)
        return out


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


# --------------------------------------------------------------------------- helpers


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            text = seg if _BARE_KEY.match(seg) else json.dumps(seg, ensure_ascii=False)
            out += f".{text}" if out else text
    return out


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 80 else value[:77] + "...")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "None"
    return f"a value of type {type(value).__name__}"


def _suggest(word: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def _lower_scheme_host(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    return urlunsplit(parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower()))


def _netloc(host: str, port: int | None) -> str:
    host = host.lower()
    if ":" in host:
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


def _directory_prefix(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path or "/"
    path = path[: path.rfind("/") + 1]
    netloc = _netloc(parts.hostname or "", parts.port)
    return urlunsplit((parts.scheme.lower(), netloc, path, "", ""))


def _parse_fail_on(value: str | tuple[str, ...]) -> tuple[Severity | None, frozenset[Check]]:
    items = value.split(",") if isinstance(value, str) else list(value)
    level: Severity | None = None
    checks: set[Check] = set()
    levels = [s.value for s in Severity]
    names = [c.value for c in Check]
    for raw in items:
        if not isinstance(raw, str):
            raise _Invalid(f"expected a level or check names, got {_show(raw)}")
        item = raw.strip()
        if not item:
            continue
        if item in levels:
            if level is not None and level.value != item:
                raise _Invalid(f"more than one level ({level.value!r}, {item!r})")
            level = Severity(item)
        elif item in names:
            checks.add(Check(item))
        else:
            raise _Invalid(
                f"{item!r} is neither a level ({', '.join(levels)}) nor a check "
                f"({', '.join(names)}){_suggest(item, levels + names)}"
            )
    if isinstance(value, str) and level is None and not checks:
        raise _Invalid(f"expected a level ({', '.join(levels)}) or check names, got {value!r}")
    return level, frozenset(checks)


def _redact(text: str) -> str:
    """Strip a password from a URL's user info, should one have slipped in."""
    if "@" not in text or "://" not in text:
        return text
    try:
        parts = urlsplit(text)
        if parts.password is None:
            return text
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return text


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in fields(value):
            item = getattr(value, f.name)
            if isinstance(value, OwnerConfig) and item is None:
                continue  # TOML has no null: an absent optional key
            out[f.name] = _plain(item)
        return out
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {_redact(str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return _redact(value)
    return value


# --------------------------------------------------------------------------- validators

_Validate = Callable[[Any], Any]


def _int(minimum: int | None = None, maximum: int | None = None) -> _Validate:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"expected an integer, got {_show(value)}")
        _range(value, minimum, maximum)
        return value

    return check


def _float(minimum: float | None = None, *, above: float | None = None) -> _Validate:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid(f"expected a number, got {_show(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise _Invalid(f"expected a finite number, got {value!r}")
        if above is not None and not value > above:
            raise _Invalid(f"must be greater than {above:g}, got {value!r}")
        _range(value, minimum, None)
        return float(value)

    return check


def _range(value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        raise _Invalid(f"must be between {minimum} and {maximum}, got {value!r}")
    if minimum is not None and value < minimum:
        raise _Invalid(f"must be at least {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise _Invalid(f"must be at most {maximum}, got {value!r}")


def _parse_workers(value: Any) -> int | str:
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f'expected "auto" or a number of workers, got {_show(value)}')
    _range(value, 0, 64)
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_show(value)}")
    return value


def _str(*, nonempty: bool = False, pathlike: bool = False) -> _Validate:
    def check(value: Any) -> str:
        if pathlike and isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str):
            raise _Invalid(f"expected a string, got {_show(value)}")
        if nonempty and not value.strip():
            raise _Invalid("must not be empty")
        return value

    return check


def _choice(choices: tuple[str, ...]) -> _Validate:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise _Invalid(f"expected a string, got {_show(value)}")
        if value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise _Invalid(
                f"expected one of {allowed}, got {value!r}{_suggest(value, list(choices))}"
            )
        return value

    return check


def _severity(value: Any) -> Severity:
    return Severity(_choice(tuple(s.value for s in Severity))(value))


def _list(item: _Validate, *, comma_string: bool = False, nonempty: bool = False) -> _Validate:
    def check(value: Any) -> tuple[Any, ...]:
        if comma_string and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple):
            raise _Invalid(f"expected a list, got {_show(value)}")
        if nonempty and not value:
            raise _Invalid("must not be an empty list")
        out: list[Any] = []
        for i, raw in enumerate(value):
            try:
                checked = item(raw)
            except _Invalid as exc:
                raise exc.at(i) from None
            if checked not in out:
                out.append(checked)
        return tuple(out)

    return check


def _str_or_list(item: _Validate) -> _Validate:
    as_list = _list(item, nonempty=True)

    def check(value: Any) -> tuple[Any, ...]:
        if isinstance(value, str):
            return (item(value),)
        if isinstance(value, list | tuple):
            return as_list(value)
        raise _Invalid(f"expected a string or a list of strings, got {_show(value)}")

    return check


def _url_parts(value: Any, what: str = "an http(s) URL") -> Any:
    if not isinstance(value, str):
        raise _Invalid(f"expected {what}, got {_show(value)}")
    if not value or any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise _Invalid(f"expected {what} without spaces, got {value!r}")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as exc:
        raise _Invalid(f"not a valid URL ({exc}): {value!r}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise _Invalid(f"expected {what} with a host (http://host/...), got {value!r}")
    return parts


def _url(value: Any) -> str:
    _url_parts(value)
    return value


def _url_prefix(value: Any) -> str:
    parts = _url_parts(value, "an http(s) URL prefix")
    if parts.fragment:
        raise _Invalid(f"a URL prefix cannot have a #fragment, got {value!r}")
    return urlunsplit(
        parts._replace(
            scheme=parts.scheme.lower(),
            netloc=_netloc(parts.hostname or "", parts.port),
            path=parts.path or "/",
        )
    )


def _optional_url(value: Any) -> str:
    if value == "":
        return value
    return _url(value)


_HOST_LABEL = re.compile(r"^(?!-)[\w-]{1,63}(?<!-)$")


def _watched(value: Any) -> str:
    if isinstance(value, str) and "/" not in value and ":" not in value and value:
        host = value.lower().rstrip(".")
        labels = host.split(".")
        if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
            raise _Invalid(f"not a valid host name: {value!r}")
        return host
    try:
        return _url_prefix(value)
    except _Invalid as exc:
        reason = f"expected an http(s) URL prefix or a bare host name, got {_show(value)}"
        if "URL (" in exc.reason or "#fragment" in exc.reason:
            reason = exc.reason
        raise _Invalid(reason) from None


def _regex(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a regular expression string, got {_show(value)}")
    if not value:
        raise _Invalid("an empty pattern would exclude every URL")
    try:
        re.compile(value)
    except (re.error, RecursionError, OverflowError) as exc:
        raise _Invalid(f"invalid regular expression {value!r}: {exc}") from None
    return value


_ADDRESS = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;.]+$")


def _address(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected an email address, got {_show(value)}")
    _, addr = parseaddr(value)
    if not _ADDRESS.match(addr) or ("<" not in value and addr != value.strip()):
        raise _Invalid(f"not an email address: {value!r}")
    return value


def _optional_address(value: Any) -> str:
    if value == "":
        return value
    return _address(value)


def _env_name(value: Any) -> str:
    # The value is never echoed: a password pasted here by mistake must not reach a log.
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise _Invalid(
            "expected the name of an environment variable (letters, digits, _), such as "
            "SITEWATCH_SMTP_PASSWORD; the password itself goes in that variable, never in "
            "the config file (the value given is not shown)"
        )
    return value


def _redis_url(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a Redis URL (redis://host:port/db), got {_show(value)}")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as exc:
        raise _Invalid(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise _Invalid(f"expected a redis://, rediss:// or unix:// URL, got {_show(value)}")
    if parts.password:  # the value is not echoed: it holds a secret
        raise _Invalid(
            "the URL holds a password: put it in the environment variable named by "
            "worker.password_env instead (the value given is not shown)"
        )
    return value


def _queue_name(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
        raise _Invalid(f"expected a queue name (letters, digits, _ and -), got {_show(value)}")
    return value


def _history_url(value: Any) -> str:
    # Never echoed whole: a password pasted into the URL must not reach a log.
    if not isinstance(value, str):
        raise _Invalid(f"expected a string, got {_show(value)}")
    if value == "":
        return value
    from crawler.history.engine import HistoryURLError, resolve

    try:
        resolve(value, "")
    except HistoryURLError as e:
        raise _Invalid(str(e)) from None
    return value


def _status(value: Any) -> int:
    return _int(100, 999)(value)


def _phrase(value: Any) -> str:
    text = _str()(value)
    if not text.strip():
        raise _Invalid("an empty phrase would match every page")
    return text


def _max_age_by_prefix(value: Any) -> FrozenMap:
    if not isinstance(value, Mapping):
        raise _Invalid(f"expected a table of URL prefix = days, got {_show(value)}")
    out: dict[str, int] = {}
    for prefix, days in value.items():
        try:
            key = _url_prefix(prefix)
            out[key] = _int(1)(days)
        except _Invalid as exc:
            raise exc.at(str(prefix)) from None
    return FrozenMap(out)


def _fail_on(value: Any) -> str | tuple[str, ...]:
    if isinstance(value, str):
        _parse_fail_on(value)
        return ",".join(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            try:
                _parse_fail_on((item,))
            except _Invalid as exc:
                raise exc.at(i) from None
        items = tuple(dict.fromkeys(item.strip() for item in value if item.strip()))
        _parse_fail_on(items)
        return items
    raise _Invalid(
        f"expected a level (error, warning, info) or a list of check names, got {_show(value)}"
    )


def _cron_field(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _Invalid(f"expected an integer or a cron expression string, got {_show(value)}")
    return value


def _day_of_week(value: Any) -> str:
    text = _str(nonempty=True)(value)
    if any(ch.isdigit() for ch in text):
        raise _Invalid(f"use day names (mon, tue, ... sun), not numbers, got {text!r}")
    return text


def _match(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a URL prefix or a glob, got {_show(value)}")
    if _is_glob(value):
        return value
    try:
        return _url_prefix(value)
    except _Invalid:
        raise _Invalid(
            f"expected a URL prefix (https://host/path/) or a glob with * ? [, got {value!r}"
        ) from None


def _edit_url(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a URL string, got {_show(value)}")
    try:
        filled = value.format(url="https://example.org/page")
    except (KeyError, IndexError, ValueError, AttributeError):
        raise _Invalid(
            f"the only placeholder allowed is {{url}} (write {{{{ }}}} for braces), got {value!r}"
        ) from None
    _url_parts(filled)
    return value


def _password_hash(value: Any) -> str:
    # Never echoed: a clear-text password pasted here by mistake must not reach a log.
    if value == "":
        return value
    if not isinstance(value, str) or not re.fullmatch(
        r"(scrypt|pbkdf2):[A-Za-z0-9:]+\$[^$\s]+\$[0-9a-f]+", value
    ):
        raise _Invalid(
            "expected a password hash such as werkzeug's generate_password_hash() makes "
            "('scrypt:32768:8:1$salt$hex'; see `sitewatch web --hash-password`), never the "
            "password itself (the value given is not shown)"
        )
    return value


_OWNER_FIELDS: dict[str, tuple[_Validate, bool]] = {
    # key: (validator, required)
    "match": (_str_or_list(_match), True),
    "name": (_str(nonempty=True), True),
    "emails": (_str_or_list(_address), True),
    "language": (_choice(OWNER_LANGUAGES), False),
    "edit_url": (_edit_url, False),
}

_SCHEMA: dict[str, Any] = {
    "site": {
        "name": _str(),
        "start_urls": _list(_url),
        "scopes": _list(_url_prefix),
        "exclude": _list(_regex),
    },
    "crawl": {
        "max_pages": _int(1),
        "max_depth": _int(0),
        "concurrency": _int(1),
        "per_host_concurrency": _int(1),
        "delay": _float(0),
        "timeout": _float(above=0),
        "retries": _int(0),
        "max_retry_after": _float(0),
        "max_redirects": _int(0),
        "obey_robots": _bool,
        "user_agent": _str(nonempty=True),
        "check_external": _bool,
        "max_page_bytes": _int(1),
        "max_pages_per_pattern": _int(1),
        "max_path_segments": _int(1),
        "sitemaps": _list(_url),
        "robots_sitemaps": _bool,
        "max_refresh_delay": _int(0),
        "parse_workers": _parse_workers,
    },
    "freshness": {
        "max_age_days": _int(1),
        "max_age_by_prefix": _max_age_by_prefix,
    },
    "links": {
        "watched": _list(_watched),
        "unverified_statuses": _list(_status),
        "soft_404_phrases": _list(_phrase),
        "check_fragments": _bool,
        "cache_max_age": _int(0, 365),
        "redirect_to_home": _bool,
        "redirect_to_home_ok": _list(_watched),
        "pdf_max_bytes": _int(0),
    },
    "severity": {check.value: _severity for check in Check},
    "report": {
        "out_dir": _str(nonempty=True, pathlike=True),
        "formats": _list(_choice(REPORT_FORMATS), comma_string=True),
        "fail_on": _fail_on,
    },
    "history": {
        "db": _str(nonempty=True, pathlike=True),
        "url": _history_url,
        "password_env": _env_name,
        "flaky_runs": _int(1),
        "flaky_hours": _int(0),
        "replay": _bool,
    },
    "email": {
        "from_addr": _optional_address,
        "fallback_to": _optional_address,
        "report_url": _optional_url,
        "send_all_clear": _bool,
        "max_items": _int(1),
        "outbox": _str(nonempty=True, pathlike=True),
        "smtp": {
            "host": _str(),
            "port": _int(1, 65535),
            "security": _choice(SMTP_SECURITY),
            "user": _str(),
            "password_env": _env_name,
            "timeout": _float(above=0),
            "retries": _int(0),
            "ca_file": _str(pathlike=True),
        },
    },
    "schedule": {
        "day_of_week": _day_of_week,
        "hour": _cron_field,
        "minute": _cron_field,
        "timezone": _str(nonempty=True),
        "misfire_grace_time": _int(1),
        "time_limit": _int(1),
        "backend": _choice(SCHEDULE_BACKENDS),
        "sites": _list(_str(nonempty=True, pathlike=True)),
    },
    "worker": {
        "redis_url": _redis_url,
        "password_env": _env_name,
        "queue": _queue_name,
        "time_limit": _int(1),
        "max_retries": _int(0, 100),
        "heartbeat_timeout": _int(1),
        "busy_delay": _int(1),
    },
    "web": {
        "base_url": _optional_url,
        "secret_env": _env_name,
        "admin_password_hash": _password_hash,
        "token_days": _int(1, 366),
        "acknowledge_weeks": _int(1, 52),
    },
    "owners": None,  # validated by _Validator.owners
}


def _all_keys(schema: Mapping[str, Any], prefix: str = "") -> dict[str, list[str]]:
    """Bare key -> dotted names of every place it is valid (for "did you mean")."""
    out: dict[str, list[str]] = {}
    for key, sub in schema.items():
        dotted = f"{prefix}.{key}" if prefix else key
        out.setdefault(key, []).append(dotted)
        if isinstance(sub, Mapping):
            for k, v in _all_keys(sub, dotted).items():
                out.setdefault(k, []).extend(v)
    return out


_KEY_HOMES = _all_keys(_SCHEMA)


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
