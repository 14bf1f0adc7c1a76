"""What follows ``[DONE]``: read for a short, bounded time, never waited on.

Once ``[DONE]`` has come the answer is whole and the caller has its last chunk. A well-behaved
server then ends the body (the chunked terminator, the end of its content-length, or a close),
and reading that end is what lets the connection go back to the pool. A hostile or broken one
may keep the connection open, or go on sending: the drain stops after ``DRAIN_SECONDS`` or
``DRAIN_BYTES``, whichever comes first, and the response is closed with its connection.

- ``DRAIN_SECONDS`` (0.25 s): a well-behaved server writes the body's end right after
  ``[DONE]``; even when its TCP stack holds that write back for an acknowledgement (Nagle's
  algorithm), it arrives within about one round trip. Waiting longer would cost more than
  the new connection it saves (a TCP and TLS handshake: a few round trips).
- ``DRAIN_BYTES`` (64 KiB, one read of httpcore's): the body's end is at most a few bytes; a
  server that sends more after ``[DONE]`` is not one whose connection is worth keeping.

A read that blocks is ended by the stream watchdog of ``_chunk_timeout``, which shuts the
socket down at the drain's deadline. Where there is no socket to shut down (HTTP/2, a transport
of the user's, trio), there is no drain: the response is closed at once (under HTTP/2 that
leaves the connection in the pool; under HTTP/1 it closes the connection).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from time import monotonic
from typing import Any

import httpx

from langchain_lunar._chunk_timeout import watch_async, watch_sync
from langchain_lunar._streaming import BaseAssembler

DRAIN_SECONDS = 0.25
DRAIN_BYTES = 64 * 1024


def drain_sync(
    reads: Iterator[bytes], response: httpx.Response, assembler: BaseAssembler[Any]
) -> None:
    """Read the rest of ``response`` after ``[DONE]``, within the bounds of the module doc.

    What comes is fed to ``assembler``, which ignores it (with one warning, if it is events).
    """
    guard = watch_sync(response, DRAIN_SECONDS)
    if not guard.can_cut:
        return
    try:
        left = DRAIN_BYTES
        for data in reads:
            assembler.feed(data)
            left -= len(data)
            if left <= 0 or monotonic() >= guard.deadline:
                return
    except httpx.HTTPError:
        pass  # the watchdog's cut, or the server's: the answer was whole already
    finally:
        guard.release()  # watching ends with the loop (or the response's close)


async def drain_async(
    reads: AsyncIterator[bytes], response: httpx.Response, assembler: BaseAssembler[Any]
) -> None:
    """Async twin of ``drain_sync``."""
    guard = watch_async(response, DRAIN_SECONDS)
    if not guard.can_cut:
        return
    try:
        left = DRAIN_BYTES
        async for data in reads:
            assembler.feed(data)
            left -= len(data)
            if left <= 0 or monotonic() >= guard.deadline:
                return
    except httpx.HTTPError:
        pass  # the watchdog's cut, or the server's: the answer was whole already
    finally:
        guard.release()  # watching ends with the loop (or the response's close)
