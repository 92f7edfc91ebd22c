"""What the workspace app holds: config, signing, owners, the clock, one Store per thread.

The history ``Store`` is not thread-safe; the server handles requests in threads, so each
thread opens its own (kept for the thread's life, closed with the app).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from checks.models import Finding
from checks.owners import Owner, owner_for, owners_from_config
from checks.suppress import Key, Suppression, newest_by_key
from crawler.audit import site_name
from crawler.config import Config
from crawler.history.decisions import OpenFinding
from crawler.history.runs import open_store
from crawler.history.store import Store
from crawler.web.tokens import Signing

#: The identity of the fallback recipient (findings on pages no owner matches).
FALLBACK = "*"


@dataclass
class WebState:
    cfg: Config
    signing: Signing
    admin_open: bool = False
    clock: Callable[[], float] = time.time
    _local: threading.local = field(default_factory=threading.local)
    _stores: list[Store] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.site = site_name(self.cfg)
        self.owners: tuple[Owner, ...] = owners_from_config(self.cfg.owners)
        fb = self.cfg.email.fallback_to
        self.fallback = Owner(name=FALLBACK, emails=(fb,), language="sv") if fb else None

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    def store(self) -> Store:
        s: Store | None = getattr(self._local, "store", None)
        if s is None:
            s = open_store(self.cfg)
            self._local.store = s
            with self._lock:
                self._stores.append(s)
        return s

    def close(self) -> None:
        with self._lock:
            stores, self._stores = self._stores, []
        for s in stores:
            s.close()

    # --- owners -------------------------------------------------------------------------

    def owner_named(self, name: str) -> Owner | None:
        if self.fallback is not None and name == FALLBACK:
            return self.fallback
        return next((o for o in self.owners if o.name == name), None)

    def owner_of(self, page: str) -> Owner | None:
        return owner_for(page, self.owners) or self.fallback

    def mine(self, owner: Owner, items: Iterable[OpenFinding]) -> list[OpenFinding]:
        return [i for i in items if self.owner_of(i.finding.page) == owner]

    def decisions(self) -> dict[Key, Suppression]:
        return newest_by_key(self.store().decisions_for(self.site))

    def titles(self, pages: Iterable[str]) -> dict[str, str]:
        store = self.store()
        rid = store.last_run(self.site)
        if rid is None:
            return {}
        return {url: p.title for url, p in store.pages(rid, set(pages)).items()}


def find(items: Iterable[OpenFinding], fid: str) -> Finding | None:
    from reports.workspace_view import finding_id

    return next((i.finding for i in items if finding_id(i.finding.key) == fid), None)
