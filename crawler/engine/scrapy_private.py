"""Every use of a private Scrapy name, in one place.

Scrapy is pinned to ``~=2.19.0`` (pyproject.toml). The rest of the audit uses Scrapy's
public, documented API; what is left here has no public equivalent. Each item says what it
is, why the audit needs it and since which Scrapy version it exists in this form.
``tests/test_scrapy_private.py`` checks every item against the installed Scrapy (the name
exists, the signature and the behaviour the audit relies on are the same) and fails naming
the item, so an upgrade that moves or changes one is caught at once, not in a crawl.

Items (all used by ``crawler.http.handler`` only, the audit's own download handler):

``BaseStreamingDownloadHandler`` (``scrapy.core.downloader.handlers._base_streaming``)
    The base class of Scrapy's asyncio download handlers (aiohttp, httpx) since Scrapy 2.14.
    It sends the ``headers_received`` and ``bytes_received`` signals, honours
    ``StopDownload``, ``download_maxsize`` and ``download_warnsize`` and makes the
    response; a subclass only moves bytes through five hooks (``_make_request``,
    ``_extract_headers``, ``_build_base_response_args``, ``_iter_body_chunks``,
    ``_is_dataloss_exception``). Scrapy's public handler API (``download_request``) would
    mean copying all of that.

``BaseResponseArgs`` (``_base_streaming._BaseResponseArgs``)
    The TypedDict that ``_build_base_response_args`` returns (status, url, headers,
    protocol, optional certificate and ip_address); only a type hint, since Scrapy 2.14.

``make_ssl_context`` (``scrapy.utils.ssl._make_ssl_context``)
    An ``ssl.SSLContext`` built from Scrapy's settings (``DOWNLOAD_VERIFY_CERTIFICATES``,
    TLS versions, ciphers), as Scrapy's own asyncio handlers make theirs; since Scrapy 2.14.
    Imported at the first ``https`` request (loading the CA bundle costs start-up time).

No longer private (replaced by public API, 2026-12): ``Downloader._process_queue`` (the
spider's dispatch already keeps each host's limit; Scrapy's own Downloader is used),
``RobotsTxtMiddleware._parsers`` / ``_robots_error`` (crawler.engine.robots_middleware waits on
its own futures around the public ``robot_parser``), ``HttpCompressionMiddleware.
_split_encodings`` (crawler.engine.compression splits the header itself).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.core.downloader.handlers._base_streaming import (
    BaseStreamingDownloadHandler,
    _BaseResponseArgs,
)

if TYPE_CHECKING:
    import ssl

    from scrapy.settings import BaseSettings

__all__ = [
    "BaseResponseArgs",
    "BaseStreamingDownloadHandler",
    "make_ssl_context",
]

BaseResponseArgs = _BaseResponseArgs

#: Where each item lives in Scrapy (module, name), for the upgrade test and error messages.
ORIGINS: dict[str, tuple[str, str]] = {
    "BaseStreamingDownloadHandler": (
        "scrapy.core.downloader.handlers._base_streaming",
        "BaseStreamingDownloadHandler",
    ),
    "BaseResponseArgs": ("scrapy.core.downloader.handlers._base_streaming", "_BaseResponseArgs"),
    "make_ssl_context": ("scrapy.utils.ssl", "_make_ssl_context"),
}
#: The hooks a ``BaseStreamingDownloadHandler`` subclass must define (Scrapy 2.19).
STREAMING_HOOKS = frozenset(
    {
        "_make_request",
        "_extract_headers",
        "_build_base_response_args",
        "_iter_body_chunks",
        "_is_dataloss_exception",
    }
)


def make_ssl_context(settings: BaseSettings) -> ssl.SSLContext:
    """Scrapy's SSL context for its settings (imported on first use)."""
    from scrapy.utils.ssl import _make_ssl_context

    return _make_ssl_context(settings)
