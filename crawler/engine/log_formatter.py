"""Scrapy's log formatter without the "Crawled (200) <GET …>" message of every response.

Scrapy's engine asks the formatter for that message on every download and hands it to
``logging`` at DEBUG level. An audit logs at INFO at most (``--verbose``), so the message
was never written, but it was built every time: the formatter's dict, the referer lookup,
a ``LogRecord``: 0.12 s of the 5.1 s that a cProfile of the audit process's crawl of the
PostgreSQL manual counted. The audit's settings switch this formatter on by name
(``crawler.engine.scrapy_settings``).
"""

from __future__ import annotations

from typing import Any

from scrapy.logformatter import LogFormatter


class QuietLogFormatter(LogFormatter):
    def crawled(self, request: Any, response: Any, spider: Any) -> None:  # type: ignore[override]
        return None
