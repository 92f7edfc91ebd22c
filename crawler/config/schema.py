"""The validators table: one validator per configuration key (``_SCHEMA``, ``_OWNER_FIELDS``)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from checks.models import Check, Severity
from crawler.config.model import (
    OWNER_LANGUAGES,
    REPORT_FORMATS,
    SCHEDULE_BACKENDS,
    SMTP_SECURITY,
    FrozenMap,
    _Invalid,
    _is_glob,
    _netloc,
    _parse_fail_on,
    _show,
    _suggest,
)

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
