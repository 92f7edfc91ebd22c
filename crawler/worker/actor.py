"""The one Dramatiq actor: ``audit_site(site_id, period)``.

Declared on a broker by both sides: the scheduler sends messages to it, ``sitewatch
worker`` runs it. A message carries only the site's ID and the period (the fire time it
belongs to, ISO 8601); the worker finds the site in its own deployment config.
"""

from __future__ import annotations

import logging
from typing import Any

from crawler.config import Config

log = logging.getLogger("sitewatch.worker")

ACTOR_NAME = "audit_site"
#: Dramatiq's own time limit is a backstop above ``worker.time_limit`` (the child is
#: stopped at that limit by ``crawler.app.processes.run_command``).
TIME_LIMIT_MARGIN_S = 900


class AuditFailed(Exception):
    """The audit's child failed: Dramatiq retries the message (``worker.max_retries``)."""


def declare(broker: Any, config_path: str, cfg: Config) -> Any:
    """The ``audit_site`` actor on ``broker`` for the deployment config at ``config_path``."""
    import dramatiq

    w = cfg.worker

    def audit_site(site_id: str, period: str) -> None:
        from crawler.worker.job import run_job

        outcome = run_job(config_path, site_id, period)
        if outcome.action == "busy":
            log.info(
                "%s %s: busy (%s); looked at again in %d s",
                site_id,
                period,
                outcome.reason,
                w.busy_delay,
            )
            actor.send_with_options(args=(site_id, period), delay=w.busy_delay * 1000)
        elif outcome.action == "failed" and outcome.retry:
            raise AuditFailed(f"{site_id} {period}: {outcome.reason}")

    actor = dramatiq.actor(
        actor_name=ACTOR_NAME,
        broker=broker,
        queue_name=w.queue,
        max_retries=w.max_retries,
        time_limit=(w.time_limit + TIME_LIMIT_MARGIN_S) * 1000,
        min_backoff=60_000,
        max_backoff=3_600_000,
    )(audit_site)
    return actor
