"""The spider's own dispatch: its requests go to Scrapy's downloader without the scheduler.

Scrapy's engine passes every request through its scheduler (priority queues, signals) and
every response through its scraper (spider middlewares, a queue of tasks per response)
before the spider's callback: ~16 % of the audit process's CPU on the PostgreSQL manual,
for nothing the audit uses (the spider deduplicates, orders and follows redirects itself).
Here the spider hands each request to :meth:`ExecutionEngine.download_async`: downloader
middlewares (robots.txt included), download slots with their per-host concurrency and
delays, the download handler and the ``response_received`` signal all stay Scrapy's.

What the scheduler and the engine's back-out did, :class:`Dispatch` does:

- at most ``total`` (``CONCURRENT_REQUESTS``) downloads at a time, and at most ``total``
  answers being handled (the scraper's bound on responses waiting for the spider);
- at most ``per_slot`` (``CONCURRENT_REQUESTS_PER_DOMAIN``) downloads per download slot,
  so one slow host cannot take every download; the rest of a slot's requests wait here;
- within a slot, requests with a higher ``priority`` first (the spider's link checks
  before its page crawls), in the order they came; slots with room take turns.

Each request runs in its own task: the download, then ``answer(request, response or
exception)``. When nothing is waiting, downloading or being handled, ``idle()`` is called.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from scrapy import Request


class Dispatch:
    def __init__(
        self,
        engine: Any,
        total: int,
        per_slot: int,
        answer: Callable[[Request, Any], Awaitable[None]],
        idle: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._slot_key = engine.downloader.get_slot_key
        self._total = max(1, total)
        self._per_slot = max(1, per_slot)
        self._answer = answer
        self._idle = idle
        #: slot key -> (higher-priority requests, the others), waiting for room.
        self._waiting: dict[str, tuple[deque[Request], deque[Request]]] = {}
        #: slot key -> downloads under way.
        self._active: dict[str, int] = {}
        #: Slots with waiting requests and room for one more download (an ordered set).
        self._ready: dict[str, None] = {}
        self.downloading = 0
        self.handling = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def busy(self) -> bool:
        return bool(self.downloading or self.handling or self._waiting)

    def submit(self, request: Request) -> None:
        """Queue ``request``; it starts when its slot and the totals have room."""
        key = self._slot_key(request)
        queues = self._waiting.get(key)
        if queues is None:
            queues = self._waiting[key] = (deque(), deque())
        queues[0 if request.priority > 0 else 1].append(request)
        if self._active.get(key, 0) < self._per_slot:
            self._ready[key] = None

    def pump(self) -> None:
        """Start what may start now."""
        ready = self._ready
        while ready and self.downloading < self._total and self.handling < self._total:
            key = next(iter(ready))
            del ready[key]
            first, rest = self._waiting[key]
            request = first.popleft() if first else rest.popleft()
            active = self._active.get(key, 0) + 1
            self._active[key] = active
            if not first and not rest:
                del self._waiting[key]
            elif active < self._per_slot:
                ready[key] = None  # to the end: the other slots' turn first
            self.downloading += 1
            task = asyncio.ensure_future(self._run(request, key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def cancel(self) -> None:
        """Stop every task (the crawl is closing)."""
        for task in list(self._tasks):
            task.cancel()
        self._waiting.clear()
        self._ready.clear()

    async def _run(self, request: Request, key: str) -> None:
        result: Any
        try:
            result = await self._engine.download_async(request)
        except Exception as exc:  # handed to the spider's errback
            result = exc
        finally:
            self.downloading -= 1
            active = self._active[key] - 1
            if active:
                self._active[key] = active
            else:
                del self._active[key]
            if key in self._waiting:
                self._ready[key] = None
        self.handling += 1
        self.pump()
        try:
            await self._answer(request, result)
        finally:
            self.handling -= 1
            self.pump()
        if not self.busy:
            self._idle()
