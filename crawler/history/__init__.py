"""The history: every audit's run, pages, links and findings, the finding state across
runs, email deliveries, the re-run cache's tables, and the scale-out's claims and per-site
lock, in one database: a SQLite file (the default) or PostgreSQL, through SQLAlchemy Core,
its schema migrated by Alembic on open.

Modules: ``schema`` (tables), ``engine`` (URL -> engine), ``migrate`` (+ ``migrations/``,
``legacy``: the schema before Alembic), ``store`` (the ``Store`` API, with ``deliveries``
and ``locks``), ``runs`` (an audit's run lifecycle), ``fetch_cache_db`` (the re-run cache's
rows).
"""

from __future__ import annotations

from crawler.history.connection import STALE_AFTER
from crawler.history.engine import DEFAULT_PASSWORD_ENV, HistoryURLError
from crawler.history.locks import SiteBusy
from crawler.history.owners import RunOwner
from crawler.history.rows import FINISHED, Delivery, DeliveryEvent, RunRow, StoredRefs, StoreError
from crawler.history.store import Store

__all__ = [
    "DEFAULT_PASSWORD_ENV",
    "FINISHED",
    "STALE_AFTER",
    "Delivery",
    "DeliveryEvent",
    "HistoryURLError",
    "RunOwner",
    "RunRow",
    "SiteBusy",
    "Store",
    "StoreError",
    "StoredRefs",
]
