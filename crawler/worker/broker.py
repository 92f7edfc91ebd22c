"""The Dramatiq broker: Redis, from ``[worker]`` of the deployment config."""

from __future__ import annotations

import os
from typing import Any

from crawler.config import Config

#: Dramatiq's scale for ``maintenance_chance`` (commands per million).
MAINTENANCE_SCALE = 1_000_000


def maintenance_chance(heartbeat_timeout_s: int) -> int:
    """How many broker commands in a million also look for dead workers' messages.

    Dramatiq's default (1,000, about one in a thousand) hands a dead worker's audit on
    only after some thousand polls of an idle worker (one a second at most): ~20 minutes.
    Here the check is made about once per heartbeat timeout by an idle worker instead; it
    is a few Redis commands on a small keyspace.
    """
    return max(1_000, min(MAINTENANCE_SCALE, MAINTENANCE_SCALE // max(1, heartbeat_timeout_s)))


def broker_options(cfg: Config) -> dict[str, Any]:
    """Keyword arguments of ``RedisBroker`` (the password, if any, from the environment)."""
    w = cfg.worker
    opts: dict[str, Any] = {
        "url": w.redis_url,
        "namespace": f"sitewatch-{w.queue}",
        "heartbeat_timeout": w.heartbeat_timeout * 1000,
        "maintenance_chance": maintenance_chance(w.heartbeat_timeout),
    }
    password = os.environ.get(w.password_env) if w.password_env else None
    if password:
        opts["password"] = password
    return opts


def make_broker(cfg: Config) -> Any:
    """A ``dramatiq.brokers.redis.RedisBroker``, made the global broker."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    opts = broker_options(cfg)
    url = opts.pop("url")
    password = opts.pop("password", None)
    import redis

    pool = redis.ConnectionPool.from_url(url, password=password)
    broker = RedisBroker(client=redis.Redis(connection_pool=pool), **opts)
    dramatiq.set_broker(broker)
    return broker
