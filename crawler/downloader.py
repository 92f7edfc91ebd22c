"""Scrapy's Downloader with its per-host concurrency limit enforced.

In Scrapy 2.19 under the asyncio reactor, ``Downloader._process_queue`` starts each queued
request as an asyncio task and only counts it as transferring once that task runs. Its
loop ``while slot.queue and slot.free_transfer_slots() > 0`` therefore empties the whole
queue at once: with 30 pages queued for one host and ``CONCURRENT_REQUESTS_PER_DOMAIN=2``,
the host saw 14 requests at the same time (tests/test_politeness.py). Here a request counts
as transferring from the moment it leaves the queue. (With a download delay the loop
stopped after one request anyway, so delays were honoured.)
"""

from __future__ import annotations

from time import monotonic

from scrapy.core.downloader import Downloader, Slot
from scrapy.utils.asyncio import call_later
from scrapy.utils.defer import _schedule_coro


class PoliteDownloader(Downloader):
    def _process_queue(self, slot: Slot) -> None:
        if slot.latercall:
            return  # processing resumes when the delay's timer fires
        now = monotonic()
        delay = slot.download_delay()
        if delay:
            penalty = delay - now + slot.lastseen
            if penalty > 0:
                slot.latercall = call_later(penalty, self._latercall, slot)
                return
        while slot.queue and slot.free_transfer_slots() > 0:
            slot.lastseen = now
            request, queue_dfd = slot.queue.popleft()
            # Count it now; Downloader._download adds it again (a set) and removes it
            # when the download ends, then calls this method for the next request.
            slot.transferring.add(request)
            _schedule_coro(self._wait_for_download(slot, request, queue_dfd))
            if delay:
                self._process_queue(slot)  # sets the timer for the next request
                break
