"""The configuration's shape: frozen dataclasses whose field names are the TOML keys,
the errors bad input raises, and the small value helpers they share."""

from __future__ import annotations

import difflib
import fnmatch
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from checks.models import Check, Severity
from checks.policy import Policy
from crawler.config.defaults import DEFAULTS

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
