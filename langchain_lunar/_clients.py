"""ChatLunar's httpx clients, shared by the instances with the same connection settings.

One sync client per ``PoolKey`` in the process; one async client per ``PoolKey`` and event loop
(a client's connections belong to the loop that opened them).

Lifetime: each ChatLunar instance has a ``ClientPool``, which takes a share of a client on first
use. ``close()`` gives the shares back; a client is closed when no instance holds a share. An
instance never closed keeps its clients open for the life of the process (as langchain-anthropic
caches its clients), for the next instances to reuse. An async client is also closed when its
loop shuts down (the end of ``asyncio.run()``), since nothing can use it afterwards; if the loop
was closed without shutting down, its sockets are closed at the next look-up in another loop.
A forked child process starts with no clients: it must not use its parent's connections.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import ssl
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any, Generic, NamedTuple, TypeVar

import httpx

from ._loop_end import close_at_shutdown

_Loop = asyncio.AbstractEventLoop
_Client = TypeVar("_Client", httpx.Client, httpx.AsyncClient)


class PoolKey(NamedTuple):
    """Everything a ChatLunar client is built from; instances with equal keys share clients.

    A new connection setting (a proxy, say) must become a field here, so that instances never
    share a client one of them would have built differently. Timeouts are not here: every
    request carries its own.
    """

    # As the openai SDK: enough for heavy concurrency on one model.
    max_connections: int = 1000
    max_keepalive_connections: int = 100

    def new_sync_client(self) -> httpx.Client:
        return httpx.Client(limits=self._limits(), verify=_ssl_context(self))

    def new_async_client(self) -> httpx.AsyncClient:
        from ._pool_reclaim import reclaim_orphans  # first use only: keeps the import light

        client = httpx.AsyncClient(limits=self._limits(), verify=_ssl_context(self))
        # Cancelled requests would leave connections in the pool for good (httpcore #1093).
        reclaim_orphans(client)
        return client

    def _limits(self) -> httpx.Limits:
        return httpx.Limits(
            max_connections=self.max_connections,
            max_keepalive_connections=self.max_keepalive_connections,
        )


@functools.cache
def _ssl_context(key: PoolKey) -> ssl.SSLContext:
    # httpx builds one per client by default, reading and parsing the whole CA bundle, which
    # every new event loop would pay again. (Keyed, so that future TLS settings in the key apply.)
    return httpx.create_ssl_context()


class ClientPool:
    """One ChatLunar instance's share of the shared httpx clients.

    ``sync_client()`` and ``async_client()`` cost an attribute read or a dict look-up once the
    instance has its client. ``close()`` and ``aclose()`` give the shares back (closing clients
    no other instance holds); a later call takes a share again. Pickling and ``deepcopy`` give
    a new, empty share, equal to this one.
    """

    __slots__ = ("__weakref__", "_async", "_key", "_sync")

    def __init__(self, key: PoolKey) -> None:
        self._key = key
        self._sync: httpx.Client | None = None
        # Read without the lock on every async request; only ever replaced or changed whole
        # (one item at a time) under it.
        self._async: dict[_Loop, httpx.AsyncClient] = {}
        with _lock:
            _pools[id(self)] = self

    def __reduce__(self) -> tuple[type[ClientPool], tuple[PoolKey]]:
        return ClientPool, (self._key,)

    # Shares of the same clients are interchangeable; so ChatLunar instances with equal fields
    # are equal (pydantic compares private attributes too), a pickled one to its original.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClientPool):
            return NotImplemented
        return self._key == other._key

    __hash__ = None  # type: ignore[assignment]

    def sync_client(self) -> httpx.Client:
        client = self._sync
        if client is None:
            with _lock:
                if self._sync is None:
                    self._sync = _acquire(_sync_clients, self._key, self._key.new_sync_client)
                client = self._sync
        return client

    def async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = self._take_async(loop)
        return client

    def _take_async(self, loop: _Loop) -> httpx.AsyncClient:
        with _lock:
            dead = _take_closed_loops()
            held = {known: c for known, c in self._async.items() if not known.is_closed()}
            client = held.get(loop)
            if client is None:
                client = _acquire(_loop_clients(loop).shared, self._key, self._key.new_async_client)
                held[loop] = client
            self._async = held
        for stale in dead:
            _release_sockets(stale)
        return client

    def close(self) -> None:
        """Give back this instance's shares, closing the clients no other instance holds.

        An async client whose event loop is still open is closed on that loop, soon.
        """
        sync, unheld, dead = self._give_back()
        if sync is not None:
            sync.close()
        for stale in dead:
            _release_sockets(stale)
        for loop, client in unheld:
            _close_later(loop, client)

    async def aclose(self) -> None:
        """Like ``close()``, but waits for the running loop's client to close."""
        running = asyncio.get_running_loop()
        sync, unheld, dead = self._give_back()
        if sync is not None:
            sync.close()
        for stale in dead:
            _release_sockets(stale)
        for loop, client in unheld:
            if loop is running:
                await _aclose_retired(loop, client)
            else:
                _close_later(loop, client)

    def _give_back(
        self,
    ) -> tuple[httpx.Client | None, list[tuple[_Loop, httpx.AsyncClient]], list[httpx.AsyncClient]]:
        """Release every share. Return the sync and async clients that no instance holds any
        more, and the clients of closed loops (whose sockets are to be released)."""
        with _lock:
            dead = _take_closed_loops()
            sync, self._sync = self._sync, None
            held, self._async = self._async, {}
            unheld_sync = None
            if sync is not None and _release(_sync_clients, self._key, sync):
                unheld_sync = sync
            unheld = []
            for loop, client in held.items():
                entry = _loops.get(loop)
                if entry is not None and _release(entry.shared, self._key, client):
                    entry.retired.add(client)
                    unheld.append((loop, client))
        return unheld_sync, unheld, dead


class _Shared(Generic[_Client]):
    """A shared client and how many ``ClientPool`` hold it."""

    __slots__ = ("client", "holders")

    def __init__(self, client: _Client) -> None:
        self.client: _Client = client
        self.holders = 0


class _LoopClients:
    """The async clients of one event loop."""

    __slots__ = ("closer", "retired", "shared")

    def __init__(self) -> None:
        self.shared: dict[PoolKey, _Shared[httpx.AsyncClient]] = {}
        # No instance holds these any more; being closed on the loop.
        self.retired: set[httpx.AsyncClient] = set()
        # Kept referenced: the loop closes it when it shuts down, which closes the clients.
        self.closer: AsyncGenerator[None, None] | None = None

    def all_clients(self) -> list[httpx.AsyncClient]:
        return [*(s.client for s in self.shared.values()), *self.retired]


# One lock for the registry and for every ClientPool's slow path; never held while waiting.
_lock = threading.Lock()
_sync_clients: dict[PoolKey, _Shared[httpx.Client]] = {}
_loops: dict[_Loop, _LoopClients] = {}
# Every ClientPool, for a forked child to empty. (By id: equal pools are distinct here.)
_pools: weakref.WeakValueDictionary[int, ClientPool] = weakref.WeakValueDictionary()
# Tasks closing retired clients; asyncio keeps only weak references to tasks.
_closing_tasks: set[asyncio.Task[None]] = set()


def _acquire(
    shared: dict[PoolKey, _Shared[_Client]], key: PoolKey, new: Callable[[], _Client]
) -> _Client:
    entry = shared.get(key)
    if entry is None:
        entry = shared[key] = _Shared(new())
    entry.holders += 1
    return entry.client


def _release(shared: dict[PoolKey, _Shared[_Client]], key: PoolKey, client: _Client) -> bool:
    """Give back one share of ``client``; True if it was the last one (it is then removed)."""
    entry = shared.get(key)
    # Absent or another client: the loop shut down and closed it already.
    if entry is None or entry.client is not client:
        return False
    entry.holders -= 1
    if entry.holders:
        return False
    del shared[key]
    return True


def _forget_parent_clients() -> None:
    # The child's requests would interleave with the parent's on the same sockets. The
    # inherited clients are dropped, not closed: closing could wait on a lock held at the
    # fork; the collector closes the child's copies of their sockets.
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    _sync_clients.clear()
    _loops.clear()
    _closing_tasks.clear()
    for pool in list(_pools.values()):
        pool._sync = None
        pool._async = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_clients)


@atexit.register
def _close_sync_clients() -> None:
    # The clients of instances never closed end with the process; close their sockets
    # properly rather than leave them to the collector (a ResourceWarning each).
    with _lock:
        clients = [shared.client for shared in _sync_clients.values()]
    for client in clients:
        client.close()


def _loop_clients(loop: _Loop) -> _LoopClients:
    """The running ``loop``'s entry, created with its closer on first use; under ``_lock``."""
    entry = _loops.get(loop)
    if entry is None:
        entry = _loops[loop] = _LoopClients()
        # Without a closer (a loop that does not track async generators), the sweep of closed
        # loops releases the sockets.
        entry.closer = close_at_shutdown(loop, functools.partial(_close_loop_clients, loop))
    return entry


async def _close_loop_clients(loop: _Loop) -> None:
    """Close ``loop``'s clients, as it shuts down."""
    with _lock:
        entry = _loops.get(loop)
        # The entry stays until the loop is closed, so that a late look-up in the loop makes a
        # client the sweep will find.
        clients = entry.all_clients() if entry is not None else []
        if entry is not None:
            entry.shared.clear()
            entry.retired.clear()
    for client in clients:
        await client.aclose()


def _close_later(loop: _Loop, client: httpx.AsyncClient) -> None:
    """Close a retired async client on its loop; at once if the loop is closed."""
    if not loop.is_closed():
        try:
            loop.call_soon_threadsafe(_start_aclose, loop, client)
            return
        except RuntimeError:  # closed meanwhile
            pass
    _release_sockets(client)
    with _lock:
        entry = _loops.get(loop)
        if entry is not None:
            entry.retired.discard(client)


def _start_aclose(loop: _Loop, client: httpx.AsyncClient) -> None:
    task = loop.create_task(_aclose_retired(loop, client))
    _closing_tasks.add(task)
    task.add_done_callback(_closing_tasks.discard)


async def _aclose_retired(loop: _Loop, client: httpx.AsyncClient) -> None:
    # Closing twice (here and at shutdown) is harmless: aclose() does nothing the second time.
    await client.aclose()
    with _lock:
        entry = _loops.get(loop)
        if entry is not None:
            entry.retired.discard(client)


def _take_closed_loops() -> list[httpx.AsyncClient]:
    """Remove the entries of closed loops; return their clients. Under ``_lock``."""
    clients = []
    for loop in [known for known in _loops if known.is_closed()]:
        clients += _loops.pop(loop).all_clients()
    return clients


def _release_sockets(client: httpx.AsyncClient) -> None:
    """Close the sockets of an async client whose event loop is closed.

    ``aclose()`` needs the loop. So does an asyncio transport's ``close()`` or ``abort()``: it
    only schedules the callback that closes the socket (``_call_connection_lost``), and on a
    closed loop raises "Event loop is closed" instead. Without that callback the socket stays
    open until the transport is garbage-collected, with a ResourceWarning. So run it directly.
    """
    for transport in _asyncio_transports(client):
        if getattr(transport, "_sock", None) is None:
            continue  # already closed
        lost = getattr(transport, "_call_connection_lost", None)
        if lost is None:
            continue  # not one of asyncio's own transports (uvloop): left to the collector
        # RuntimeError: the protocol could not wake its waiters on the closed loop; the socket
        # is closed all the same (the callback closes it in a `finally`).
        with contextlib.suppress(RuntimeError):
            lost(None)


def _asyncio_transports(client: httpx.AsyncClient) -> Iterator[Any]:
    """The asyncio transports under ``client``'s connections (httpx -> httpcore -> anyio)."""
    for transport in [client._transport, *client._mounts.values()]:
        pool = getattr(transport, "_pool", None)
        for connection in getattr(pool, "connections", ()):
            # HTTP/1.1 or HTTP/2 connection, through proxy wrappers; None while connecting.
            while connection is not None and not hasattr(connection, "_network_stream"):
                connection = getattr(connection, "_connection", None)
            stream: Any = getattr(getattr(connection, "_network_stream", None), "_stream", None)
            while hasattr(stream, "transport_stream"):  # TLS layers
                stream = stream.transport_stream
            asyncio_transport = getattr(stream, "_transport", None)
            if asyncio_transport is not None:
                yield asyncio_transport
