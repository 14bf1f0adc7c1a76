"""A response body read in bounded pieces, decompressed here in bounded steps.

httpx decompresses each network read whole: 100 KiB of gzip can expand to 100 MiB in one piece,
before any bound of ChatLunar's could look at it. So the body is read raw (``iter_raw``) and
gzip and deflate are decompressed here, at most ``STEP`` bytes of output at a time; a body
without a content-encoding (the normal case) passes through untouched. ChatLunar asks for no
other encoding (see ``ACCEPT_ENCODING``); one that a server sends all the same (br, zstd, several
codings) is left to httpx, which decodes each read whole: its total is still bounded, the size
of one decoded read is not.

``read_body`` reads a whole body (a non-streamed answer, an error) up to a bound and stops
there: a larger body is never read to its end.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator
from typing import NamedTuple

import httpx

STEP = 64 * 1024
"""The most bytes one decompression step gives out: one network read of httpcore's."""

ACCEPT_ENCODING = "gzip, deflate"
"""The encodings ChatLunar decompresses in bounded steps, the only ones it asks for."""


def body_reads(response: httpx.Response) -> Iterator[bytes]:
    """The decoded body of ``response``, in pieces of at most ``STEP`` bytes when compressed."""
    decompressor = _decompressor(response)
    if decompressor is _RAW:
        return response.iter_raw()
    if isinstance(decompressor, _Decompressor):
        return _decompressed(response.iter_raw(), decompressor)
    return response.iter_bytes()


def abody_reads(response: httpx.Response) -> AsyncIterator[bytes]:
    """Async twin of ``body_reads``."""
    decompressor = _decompressor(response)
    if decompressor is _RAW:
        return response.aiter_raw()
    if isinstance(decompressor, _Decompressor):
        return _adecompressed(response.aiter_raw(), decompressor)
    return response.aiter_bytes()


class Body(NamedTuple):
    """A body read up to a bound: its bytes (only their start, to quote, when cut short), and
    whether they are all of it."""

    content: bytes
    whole: bool


def read_body(response: httpx.Response, limit: int) -> Body:
    """At most ``limit`` bytes of the decoded body; reading stops once it passes them."""
    pieces: list[bytes] = []
    size = 0
    for data in body_reads(response):
        pieces.append(data)
        size += len(data)
        if size > limit:
            return _kept(response, Body(_start(pieces, limit), whole=False))
    return _kept(response, Body(b"".join(pieces), whole=True))


async def aread_body(response: httpx.Response, limit: int) -> Body:
    """Async twin of ``read_body``."""
    pieces: list[bytes] = []
    size = 0
    async for data in abody_reads(response):
        pieces.append(data)
        size += len(data)
        if size > limit:
            return _kept(response, Body(_start(pieces, limit), whole=False))
    return _kept(response, Body(b"".join(pieces), whole=True))


def _start(pieces: list[bytes], limit: int) -> bytes:
    """The first ``STEP`` bytes (at most ``limit``): all an error quotes of a body cut short."""
    kept: list[bytes] = []
    size = 0
    for piece in pieces:
        kept.append(piece)
        size += len(piece)
        if size >= STEP:
            break
    return b"".join(kept)[: min(STEP, limit)]


def _kept(response: httpx.Response, body: Body) -> Body:
    # What response.read() would have set: .content and .text then serve what was read (the
    # errors quote them), and a body cut short is never read again.
    response._content = body.content
    return body


class _Decompressor:
    """gzip or deflate; deflate as zlib's wrapped format or raw, whichever the body starts with
    (servers send both under that name, as httpx allows)."""

    __slots__ = ("_encoding", "_inner")

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._inner: zlib._Decompress | None = None

    def steps(self, raw: bytes) -> Iterator[bytes]:
        inner = self._inner
        if inner is None:
            inner = self._inner = zlib.decompressobj(self._wbits(raw))
        try:
            data = inner.decompress(raw, STEP)
            while data:
                yield data
                data = inner.decompress(inner.unconsumed_tail, STEP)
        except zlib.error as error:
            raise httpx.DecodingError(f"{self._encoding}: {error}") from error

    def _wbits(self, first: bytes) -> int:
        if self._encoding != "deflate":
            return zlib.MAX_WBITS | 16  # gzip
        wrapped = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
        return zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS


_RAW = "raw"
_HTTPX = "httpx"


def _decompressor(response: httpx.Response) -> _Decompressor | str:
    """``_RAW``: read as it comes; ``_HTTPX``: let httpx decode; else the body's decompressor."""
    if response.is_stream_consumed:
        return _HTTPX  # read already (a MockTransport's answer): httpx serves what it holds
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if not encoding or encoding == "identity":
        return _RAW
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _Decompressor("deflate" if encoding == "deflate" else "gzip")
    return _HTTPX


def _decompressed(raws: Iterator[bytes], decompressor: _Decompressor) -> Iterator[bytes]:
    for raw in raws:
        yield from decompressor.steps(raw)


async def _adecompressed(
    raws: AsyncIterator[bytes], decompressor: _Decompressor
) -> AsyncIterator[bytes]:
    async for raw in raws:
        for data in decompressor.steps(raw):
            yield data
