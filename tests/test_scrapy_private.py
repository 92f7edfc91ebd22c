"""The private Scrapy names the audit relies on (crawler/engine/scrapy_private.py), checked against
the installed Scrapy. A Scrapy upgrade that moves, renames or changes one fails here with
a message naming the item, before any crawl would break in a stranger way.

Also checked: the undocumented (but not underscored) downloader attributes the robots.txt
middleware sets a host's Crawl-delay through, and the public names that replaced private
ones (so a replacement cannot silently drift from what Scrapy does).
"""

from __future__ import annotations

import importlib
import inspect
import ssl
import typing
from typing import Any

import pytest
import scrapy
from scrapy.utils.test import get_crawler

from crawler.engine import scrapy_private

UPGRADE = (
    "Scrapy {version}: crawler/engine/scrapy_private.py item {item!r} ({where}) {problem}. "
    "Read the item's docstring there and Scrapy's changelog, then adapt the wrapper "
    "(or replace the "
    "item by public API) before changing the scrapy pin in pyproject.toml."
)


def fail(item: str, problem: str) -> None:
    module, name = scrapy_private.ORIGINS.get(item, ("scrapy", item))
    pytest.fail(
        UPGRADE.format(
            version=scrapy.__version__, item=item, where=f"{module}.{name}", problem=problem
        )
    )


def origin(item: str) -> Any:
    module, name = scrapy_private.ORIGINS[item]
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        fail(item, f"no longer exists ({exc})")


def params(func: Any) -> list[str]:
    return list(inspect.signature(func).parameters)


@pytest.mark.parametrize("item", sorted(scrapy_private.ORIGINS))
def test_every_item_exists_and_is_the_one_wrapped(item: str) -> None:
    found = origin(item)
    wrapped = getattr(scrapy_private, item)
    if item in ("BaseStreamingDownloadHandler", "BaseResponseArgs"):
        assert wrapped is found
    else:  # a lazy function: its body imports the name; the source names it
        assert scrapy_private.ORIGINS[item][1] in inspect.getsource(wrapped)
    assert set(scrapy_private.__all__) == set(scrapy_private.ORIGINS)


def test_streaming_handler_hooks_are_unchanged() -> None:
    base = origin("BaseStreamingDownloadHandler")
    hooks = set(getattr(base, "__abstractmethods__", ()))
    if hooks != scrapy_private.STREAMING_HOOKS:
        fail(
            "BaseStreamingDownloadHandler",
            f"has abstract hooks {sorted(hooks)}, not {sorted(scrapy_private.STREAMING_HOOKS)}",
        )
    expected = {
        "_make_request": ["self", "request", "timeout"],
        "_extract_headers": ["response"],
        "_build_base_response_args": ["response", "request", "headers"],
        "_iter_body_chunks": ["response"],
        "_is_dataloss_exception": ["exc"],
        "download_request": ["self", "request"],
        "__init__": ["self", "crawler"],
    }
    for name, names in expected.items():
        got = params(getattr(base, name))
        if got != names:
            fail("BaseStreamingDownloadHandler", f"hook {name} takes {got}, not {names}")
    # The audit's handler defines every hook (it would not be instantiable otherwise).
    from crawler.http.handler import HttpDownloadHandler

    assert not getattr(HttpDownloadHandler, "__abstractmethods__", set())
    assert issubclass(HttpDownloadHandler, base)


def test_response_args_keys() -> None:
    args = origin("BaseResponseArgs")
    keys = set(typing.get_type_hints(args, include_extras=False, localns=_hint_names()))
    wanted = {"status", "url", "headers", "certificate", "ip_address", "protocol"}
    if keys != wanted:
        fail("BaseResponseArgs", f"has keys {sorted(keys)}, not {sorted(wanted)}")


def _hint_names() -> dict[str, Any]:
    from ipaddress import IPv4Address, IPv6Address
    from typing import NotRequired

    from scrapy.http import Headers

    return {
        "Headers": Headers,
        "IPv4Address": IPv4Address,
        "IPv6Address": IPv6Address,
        "NotRequired": NotRequired,
    }


def test_ssl_context_follows_scrapys_settings() -> None:
    if params(origin("make_ssl_context")) != ["settings"]:
        fail("make_ssl_context", f"takes {params(origin('make_ssl_context'))}")
    verified = scrapy_private.make_ssl_context(
        get_crawler(settings_dict={"DOWNLOAD_VERIFY_CERTIFICATES": True}).settings
    )
    lax = scrapy_private.make_ssl_context(
        get_crawler(settings_dict={"DOWNLOAD_VERIFY_CERTIFICATES": False}).settings
    )
    if not isinstance(verified, ssl.SSLContext) or verified.verify_mode != ssl.CERT_REQUIRED:
        fail("make_ssl_context", "no longer gives a verifying context for the setting")
    if lax.verify_mode != ssl.CERT_NONE:
        fail("make_ssl_context", "ignores DOWNLOAD_VERIFY_CERTIFICATES = False")


def test_downloader_attributes_for_crawl_delay() -> None:
    """crawler.engine.robots_middleware sets a host's delay through these (not underscored, but
    undocumented): ``Downloader.get_slot_key``, ``.slots``, ``.per_slot_settings`` and
    ``Slot.delay``."""
    from scrapy import Request
    from scrapy.core.downloader import Downloader, Slot

    crawler = get_crawler(settings_dict={"DOWNLOAD_DELAY": 0.5})
    downloader = Downloader(crawler)
    try:
        key = downloader.get_slot_key(Request("http://127.0.0.1:8000/x"))
        assert key == "127.0.0.1"
        assert isinstance(downloader.slots, dict)
        assert isinstance(downloader.per_slot_settings, dict)
        slot = Slot(concurrency=2, delay=0.5, jitter=0)
        slot.delay = 1.5
        assert slot.download_delay() == 1.5
    finally:
        downloader.close()


def test_public_replacements_match_scrapy() -> None:
    """crawler.engine.compression splits Content-Encoding as Scrapy's middleware does; the
    robots.txt middleware's public hook is still the coroutine ``robot_parser``."""
    from scrapy.downloadermiddlewares.httpcompression import HttpCompressionMiddleware
    from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware

    from crawler.engine.compression import split_encodings

    cases = [
        [b"gzip"],
        [b"gzip, br"],
        [b"foo, gzip"],
        [b"gzip", b"foo"],
        [b"GZIP , Deflate"],
        [b"gzip, foo, br, x-gzip"],
        [b"identity"],
        [b""],
        [],
    ]
    scrapys = getattr(HttpCompressionMiddleware, "_split_encodings", None)
    if scrapys is not None:  # only a reference: the audit no longer calls it
        assert [split_encodings(c) for c in cases] == [scrapys(c) for c in cases]
    assert split_encodings([b"foo, gzip"]) == ([b"gzip"], [b"foo"])
    assert inspect.iscoroutinefunction(RobotsTxtMiddleware.robot_parser)
    assert params(RobotsTxtMiddleware.robot_parser) == ["self", "request"]
