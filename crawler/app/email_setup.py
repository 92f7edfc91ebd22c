"""The email settings of a site's config: the one place that reads the crawler's ``Config``
for ``reports.delivery`` (which takes plain settings and never reads crawler config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from checks.changes import FlakyPolicy
from checks.owners import Owner, owners_from_config
from reports.delivery import EmailSetup, SmtpSettings
from reports.email_build import EmailSettings


def setup_from_config(cfg: Any) -> EmailSetup:
    """What ``reports.delivery`` needs of ``cfg`` (a ``crawler.config.Config``)."""
    e, smtp = cfg.email, cfg.email.smtp
    host = ""
    if cfg.site.start_urls:
        host = urlsplit(cfg.site.start_urls[0]).hostname or ""
    from_addr = e.from_addr or f"sitewatch@{host or 'localhost'}"
    fallback = Owner(name="", emails=(e.fallback_to,), language="sv") if e.fallback_to else None
    return EmailSetup(
        site_name=cfg.site.name or host,
        owners=owners_from_config(cfg.owners),
        fallback=fallback,
        email=EmailSettings(
            from_addr=from_addr,
            report_url=e.report_url,
            max_items=e.max_items,
            send_all_clear=e.send_all_clear,
        ),
        smtp=SmtpSettings(
            host=smtp.host,
            port=smtp.port,
            security=smtp.security,
            user=smtp.user,
            timeout=smtp.timeout,
            retries=smtp.retries,
            ca_file=smtp.ca_file,
        )
        if smtp.host
        else None,
        password_env=smtp.password_env,
        outbox=Path(e.outbox),
        flaky=FlakyPolicy(runs=cfg.history.flaky_runs, hours=cfg.history.flaky_hours),
        db_path=Path(cfg.history.db),
    )
