"""Hand freed heap memory back to the operating system (glibc's ``malloc_trim``).

An audit allocates and frees a page body (tens of KB) per response; glibc keeps the freed
space in its heap, between longer-lived objects, so the process's resident size keeps the
high-water mark of every body ever held. ``malloc_trim(0)`` releases the free pages inside
the heap (measured: see docs/performance.md, "Memory"). A no-op where there is no glibc.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

_trim: Callable[[int], int] | None = None
_loaded = False


def trim() -> None:
    """Release free heap pages to the operating system, if the C library can."""
    global _trim, _loaded
    if not _loaded:
        _loaded = True
        try:
            # The process's own symbols, libc's among them: ``find_library("c")`` would run
            # ``ldconfig -p`` in a child, at the end of the crawl.
            _trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _trim = None
    if _trim is not None:
        _trim(0)
