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

from crawler.config.load import load_config
from crawler.config.model import (
    COMMAND_LINE,
    REPORT_FORMATS,
    Config,
    ConfigError,
    CrawlConfig,
    EmailConfig,
    FreshnessConfig,
    FrozenMap,
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
)

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
