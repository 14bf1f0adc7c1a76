"""Keep an httpx async connection pool whole when requests are cancelled.

httpcore 1.0 shields its clean-up from cancellation with anyio cancel scopes, which do not stop
asyncio's own ``Task.cancel()`` (nor so ``asyncio.wait_for()`` and ``asyncio.timeout()``). A
cancellation that lands on one of a few awaits can leave a connection in the pool that no
request owns and that never becomes idle, its socket open (httpcore issues #830 and #1093):

- a new connection, when the cancellation lands as the request takes the connection's state
  lock, just after connecting: it stays NEW, which the pool neither reuses nor closes;
- an ACTIVE one, when a second cancellation lands while the first is closing the response;
- a request the pool keeps for ever, with its ACTIVE connection, when the cancellation lands
  while the response is being closed (at the end of a stream, say).

Each takes a slot of ``max_connections`` and a file descriptor until the process ends; once
the slots are gone, every request waits for the pool timeout. ``reclaim_orphans(client)``
changes the client's pools so that closing a response always finishes (in a task of its own
if the caller is cancelled meanwhile), and so that each time the pool assigns connections it
also closes those that no request owns and that are neither idle nor closed.

Only httpcore 1.x pools of the layout this was written against are changed; others (httpx2's
httpcore2, a future httpcore) are left as they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import httpcore
import httpx

try:
    from httpcore._async.connection_pool import PoolByteStream
except ImportError:  # another layout: nothing to change
    PoolByteStream = None  # type: ignore[assignment, misc]

__all__ = ["reclaim_orphans"]


def reclaim_orphans(client: httpx.AsyncClient) -> None:
    """Make ``client``'s connection pools reclaim what cancelled requests leave behind."""
    for transport in [client._transport, *client._mounts.values()]:
        pool: Any = getattr(transport, "_pool", None)
        if _fits(pool):
            pool.__class__ = _reclaiming(type(pool))


def _fits(pool: object) -> bool:
    return (
        PoolByteStream is not None
        and httpcore.__version__.startswith("1.")
        and isinstance(pool, httpcore.AsyncConnectionPool)
        and isinstance(getattr(pool, "_requests", None), list)
        and isinstance(getattr(pool, "_connections", None), list)
    )


def _reclaiming(pool_class: type[Any]) -> type[Any]:
    """``pool_class`` with ``_Reclaiming``'s methods (the pool and its proxy subclasses)."""
    if issubclass(pool_class, _Reclaiming):
        return pool_class
    made = _classes.get(pool_class)
    if made is None:
        name = pool_class.__name__
        made = _classes[pool_class] = type(name, (_Reclaiming, pool_class), {})
    return made


class _Reclaiming(httpcore.AsyncConnectionPool):
    """The methods mixed into a pool's class; never instantiated itself."""

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        response = await super().handle_async_request(request)
        stream = response.stream
        if type(stream) is PoolByteStream:
            # Same object, same iteration: only its aclose() changes.
            stream.__class__ = _ClosingToTheEnd
        return response

    def _assign_requests_to_connections(self) -> list[Any]:
        # Called, without awaiting, whenever a request comes or goes: the orphans are found
        # before any task can give one a request again.
        owned = {id(request.connection) for request in self._requests}
        orphans = [
            connection
            for connection in self._connections
            if id(connection) not in owned
            and not connection.is_idle()
            and not connection.is_closed()
        ]
        for connection in orphans:
            self._connections.remove(connection)
        closing: list[Any] = super()._assign_requests_to_connections()
        return orphans + closing

    async def _close_connections(self, closing: list[Any]) -> None:
        if closing:
            await _to_the_end(super()._close_connections(closing))


if PoolByteStream is not None:

    class _ClosingToTheEnd(PoolByteStream):
        """A response stream whose closing finishes even if the closer is cancelled."""

        async def aclose(self) -> None:
            if not self._closed:
                await _to_the_end(PoolByteStream.aclose(self))


async def _to_the_end(closing: Coroutine[Any, Any, None]) -> None:
    """Await ``closing`` in a task of its own, which a cancellation of the caller does not stop:
    the caller is cancelled at once, the closing goes on."""
    task = asyncio.ensure_future(closing)
    _running.add(task)
    task.add_done_callback(_running.discard)
    await asyncio.shield(task)


_classes: dict[type[Any], type[Any]] = {}
# Tasks closing responses or connections; asyncio keeps only weak references to tasks.
_running: set[asyncio.Task[None]] = set()
