"""Closing what belongs to an event loop when that loop shuts down."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable


def close_at_shutdown(
    loop: asyncio.AbstractEventLoop, aclose: Callable[[], Awaitable[object]]
) -> AsyncGenerator[None, None] | None:
    """Make ``loop``, the running loop, await ``aclose()`` when it shuts down, while it can
    still run it.

    asyncio has no hook for a loop's end, but ``shutdown_asyncgens()`` (called by
    ``asyncio.run()`` and ``asyncio.Runner``) closes every async generator that has started on
    the loop, running its ``finally``. So this starts one, synchronously, up to its ``yield``.

    Returns the generator, which the caller keeps referenced for as long as what it closes
    lives (a collected generator is closed, so ``aclose()`` would run early); or None when the
    loop does not track async generators, and something else must close.
    """
    hooks = sys.get_asyncgen_hooks()
    if getattr(hooks.firstiter, "__self__", None) is not loop:
        return None
    closer = _awaiting_shutdown(aclose)
    try:
        closer.asend(None).__await__().send(None)
    except StopIteration:
        return closer
    raise AssertionError("unreachable: _awaiting_shutdown yields at once")  # pragma: no cover


async def _awaiting_shutdown(
    aclose: Callable[[], Awaitable[object]],
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await aclose()
