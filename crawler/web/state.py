"""What the workspace app holds: config, signing, owners, the clock, a pool of Stores.

The history ``Store`` is not thread-safe and the server handles each request in a thread
of its own, so a request takes a Store from the pool (opening one when none is idle) and
gives it back when it ends (``release``); the pool keeps at most ``POOL`` idle Stores.
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
from crawler.config import Config
from crawler.engine.audit import site_name
from crawler.history.decisions import OpenFinding
from crawler.history.runs import open_store
from crawler.history.store import Store
from crawler.web.tokens import Signing

#: Idle Stores kept between requests.
POOL = 4
#: The identity of the fallback recipient (findings on pages no owner matches).
FALLBACK = "*"


@dataclass
class WebState:
    cfg: Config
    signing: Signing
    admin_open: bool = False
    clock: Callable[[], float] = time.time
    _idle: list[Store] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)

    def __post_init__(self) -> None:
        self.site = site_name(self.cfg)
        self.owners: tuple[Owner, ...] = owners_from_config(self.cfg.owners)
        fb = self.cfg.email.fallback_to
        self.fallback = Owner(name=FALLBACK, emails=(fb,), language="sv") if fb else None

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    def store(self) -> Store:
        """This request's Store (the same one for the whole request)."""
        s: Store | None = getattr(self._local, "store", None)
        if s is None:
            with self._lock:
                s = self._idle.pop() if self._idle else None
            if s is None:
                s = open_store(self.cfg)
            self._local.store = s
        return s

    def release(self) -> None:
        """End of a request: its Store back to the pool (closed if the pool is full)."""
        s: Store | None = getattr(self._local, "store", None)
        self._local.store = None
        if s is None:
            return
        with self._lock:
            if len(self._idle) < POOL:
                self._idle.append(s)
                return
        s.close()

    def close(self) -> None:
        self.release()
        with self._lock:
            stores, self._idle = self._idle, []
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
    from reports.email_workspace import finding_id

    return next((i.finding for i in items if finding_id(i.finding.key) == fid), None)
