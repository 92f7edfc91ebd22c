"""Content-Encoding decoding that never unpacks more than the spider reads.

Scrapy's ``HttpCompressionMiddleware`` drops a response whose decoded body would exceed
``DOWNLOAD_MAXSIZE`` (the errback gets ``IgnoreRequest``) and, without that limit, would
unpack a gzip bomb (10 MB on the wire, 10 GB of zeros) into memory. For the spider's own
requests (``meta["sw_cap"]``: the byte budget of the probe) this middleware decodes at most
``sw_cap`` bytes and cuts the rest, exactly as the spider cuts an over-long plain body: a
page bigger than ``crawl.max_page_bytes`` is judged on its first ``max_page_bytes`` bytes,
however it was encoded. A stream that is cut or corrupt keeps what decoded before the
damage; one that yields nothing at all fails like Scrapy's (a ``connection`` verdict).

Other requests (robots.txt) go through Scrapy's own code, bounded by ``DOWNLOAD_MAXSIZE``.
"""

from __future__ import annotations

import io
import zlib
from typing import Any

from scrapy import Request
from scrapy.downloadermiddlewares.httpcompression import (
    ACCEPTED_ENCODINGS,
    HttpCompressionMiddleware,
)
from scrapy.http import Response, TextResponse
from scrapy.responsetypes import responsetypes

_CHUNK = 65536
#: The codings decoded here: those Scrapy announces in Accept-Encoding (brotli and zstd only
#: when their module is installed), and gzip's old name.
DECODABLE = frozenset({*ACCEPTED_ENCODINGS, b"x-gzip"})


class CappedHttpCompressionMiddleware(HttpCompressionMiddleware):
    def process_response(
        self, request: Request, response: Response, spider: Any = None
    ) -> Request | Response:
        cap = request.meta.get("sw_cap")
        encodings = response.headers.getlist("Content-Encoding")
        if cap is None or request.method == "HEAD" or not encodings:
            return super().process_response(request, response)
        to_decode, to_keep = split_encodings(encodings)
        body = response.body
        cut = False
        for encoding in to_decode:
            body, cut_here = decode_capped(body, encoding, cap)
            cut = cut or cut_here
        if cut:
            request.meta["sw_truncated"] = True
        response.headers["Content-Encoding"] = to_keep
        cls = responsetypes.from_args(headers=response.headers, url=response.url, body=body)
        kwargs: dict[str, Any] = {"body": body}
        if issubclass(cls, TextResponse):
            kwargs["encoding"] = None
        response = response.replace(cls=cls, **kwargs)
        if not to_keep:
            del response.headers["Content-Encoding"]
        return response


def split_encodings(headers: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """The codings of the ``Content-Encoding`` headers to undo, last applied first, and
    those left on (from the first one that cannot be decoded on; RFC 9110 8.4)."""
    codings = [c.strip().lower() for header in headers for c in header.split(b",")]
    undo = len(codings)
    while undo and codings[undo - 1] in DECODABLE:
        undo -= 1
    return codings[undo:][::-1], codings[:undo]


def decode_capped(body: bytes, encoding: bytes, cap: int) -> tuple[bytes, bool]:
    """``body`` decoded, at most ``cap`` bytes of it, and whether it was cut there."""
    if encoding in (b"gzip", b"x-gzip"):
        out = _zlib(body, cap, (zlib.MAX_WBITS | 32,))
    elif encoding == b"deflate":
        out = _zlib(body, cap, (zlib.MAX_WBITS, -zlib.MAX_WBITS))
    elif encoding == b"br":
        out = _brotli(body, cap)
    elif encoding == b"zstd":
        out = _zstd(body, cap)
    else:  # pragma: no cover - split_encodings only passes the ones above
        return body, False
    return bytes(out[:cap]), len(out) > cap


def _zlib(body: bytes, cap: int, wbits_options: tuple[int, ...]) -> bytearray:
    """zlib/gzip (several gzip members too); raises zlib.error only if nothing decodes."""
    out = bytearray()
    for i, wbits in enumerate(wbits_options):
        try:
            _inflate_into(out, body, cap, wbits)
            return out
        except zlib.error:
            if out:
                return out  # keep what decoded before the damage
            if i == len(wbits_options) - 1:
                raise
    return out


def _inflate_into(out: bytearray, data: bytes, cap: int, wbits: int) -> None:
    d = zlib.decompressobj(wbits)
    while len(out) <= cap:
        chunk = d.decompress(data, min(_CHUNK, cap + 1 - len(out)))
        out += chunk
        if d.eof:
            data = d.unused_data
            if not data:
                return
            d = zlib.decompressobj(wbits)  # the next gzip member
            continue
        data = d.unconsumed_tail
        if not data and not chunk:
            return  # input exhausted: a cut stream ends here


def _brotli(body: bytes, cap: int) -> bytearray:
    try:
        import brotli
    except ImportError:  # pragma: no cover - Scrapy accepts either
        import brotlicffi as brotli  # type: ignore[no-redef]

    d = brotli.Decompressor()
    out = bytearray(d.process(body, output_buffer_limit=min(_CHUNK, cap + 1)))
    while len(out) <= cap and not d.is_finished():
        chunk = d.process(b"", output_buffer_limit=min(_CHUNK, cap + 1 - len(out)))
        if not chunk:
            break
        out += chunk
    return out


def _zstd(body: bytes, cap: int) -> bytearray:
    try:
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        from backports import zstd  # type: ignore[no-redef]

    out = bytearray()
    with zstd.ZstdFile(io.BytesIO(body)) as f:
        while len(out) <= cap:
            try:
                chunk = f.read(min(_CHUNK, cap + 1 - len(out)))
            except EOFError:
                break
            if not chunk:
                break
            out += chunk
    return out
