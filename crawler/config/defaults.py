"""The one defaults module: every configuration key and its default value.

``config/default.toml`` documents the same values for humans; a test keeps the two equal.
A site's config file is merged over this (see ``crawler.config``).

Tuning knobs an operator may change are settings here too (``crawl.parse_workers``,
``history.replay``), not environment variables or module globals. What stays a module
constant is either a protocol or safety limit (``crawler.http.http1.MAX_HEAD``,
``crawler.pages.sitemap_parse.MAX_ENTRIES``, ``crawler.pages.pdf_links.CHILD_MEMORY``) or an
internal trade-off measured against the benchmark bars, whose value does not change what an audit
finds (``crawler.state.spill.MEMORY_REFS``/``BATCH``, ``crawler.engine.frontier.FRONTIER``,
``crawler.state.crawl_state.INLINE_REFS``; tests vary them to prove that).
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    "owners": [],
    "site": {"name": "", "start_urls": [], "scopes": [], "exclude": []},
    "crawl": {
        "max_pages": 5000,
        "max_depth": 20,
        "concurrency": 16,
        "per_host_concurrency": 4,
        "delay": 0.0,
        "timeout": 20.0,
        "retries": 2,
        "max_retry_after": 30.0,
        "max_redirects": 10,
        "obey_robots": True,
        "user_agent": "sitewatch/0.1 (+link and freshness audit)",
        "check_external": True,
        "max_page_bytes": 10000000,
        "max_pages_per_pattern": 50,
        "max_path_segments": 15,
        "max_refresh_delay": 3,
        "sitemaps": [],
        "robots_sitemaps": False,
        "parse_workers": "auto",
    },
    "freshness": {"max_age_days": 365, "max_age_by_prefix": {}},
    "links": {
        "watched": [],
        "unverified_statuses": [401, 403, 429, 999],
        "soft_404_phrases": [
            "sidan kunde inte hittas",
            "sidan finns inte",
            "hittade inte sidan",
            "page not found",
            "404 not found",
            "this page does not exist",
        ],
        "check_fragments": True,
        "cache_max_age": 7,
        "pdf_max_bytes": 20000000,
        "redirect_to_home": True,
        "redirect_to_home_ok": [],
    },
    "severity": {
        "stale_page": "error",
        "missing_review_date": "warning",
        "broken_link": "error",
        "redirect": "warning",
        "missing_pdf": "error",
        "unverified_link": "warning",
        "unlinked_page": "info",
    },
    "report": {
        "out_dir": "out",
        "formats": ["html", "json", "csv", "junit", "md"],
        "fail_on": "error",
    },
    "history": {
        "db": "var/sitewatch.db",
        "url": "",
        "password_env": "SITEWATCH_DB_PASSWORD",
        "flaky_runs": 2,
        "flaky_hours": 24,
        "replay": True,
    },
    "email": {
        "from_addr": "",
        "fallback_to": "",
        "report_url": "",
        "send_all_clear": False,
        "max_items": 40,
        "outbox": "out/outbox",
        "smtp": {
            "host": "",
            "port": 587,
            "security": "starttls",
            "user": "",
            "password_env": "SITEWATCH_SMTP_PASSWORD",
            "timeout": 30.0,
            "retries": 3,
            "ca_file": "",
        },
    },
    "web": {
        "base_url": "",
        "secret_env": "SITEWATCH_WEB_SECRET",
        "admin_password_hash": "",
        "token_days": 28,
        "acknowledge_weeks": 4,
    },
    "schedule": {
        "day_of_week": "mon",
        "hour": 7,
        "minute": 0,
        "timezone": "Europe/Stockholm",
        "misfire_grace_time": 86400,
        "time_limit": 7200,
        "backend": "local",
        "sites": [],
    },
    "worker": {
        "redis_url": "redis://127.0.0.1:6379/0",
        "password_env": "SITEWATCH_REDIS_PASSWORD",
        "queue": "sitewatch",
        "time_limit": 21600,
        "max_retries": 3,
        "heartbeat_timeout": 60,
        "busy_delay": 300,
    },
}
