"""Shared cooldowns: when a model answers 429 or 503 with a wait, every ChatLunar that shares
the store skips that model until the wait is over, instead of asking it again.

A cooldown is kept per model, ``base_url`` and API key (by its SHA-256, never in clear), as the
moment it ends in epoch seconds. ``InProcessCooldowns`` keeps them for one process (the
default: one store for every instance); ``RedisCooldowns`` for every process and machine that
shares a Redis. The retry plan (``langchain_lunar._retry``) reads the store before each attempt
and writes it after each such failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    from redis.commands.core import AsyncScript, Script

__all__ = ["CooldownStore", "InProcessCooldowns", "RedisCooldowns"]

logger = logging.getLogger("langchain_lunar")

NO_KEY = "no-key"
"""Stands for the key in the cooldown keys of calls sent without one."""

DEFAULT_PREFIX = "langchain_lunar:cooldown:"


@runtime_checkable
class CooldownStore(Protocol):
    """Where cooldowns are kept: ``key`` (a string naming a model at a ``base_url`` for an API
    key) -> the moment its cooldown ends, in epoch seconds (``time.time()``'s clock).

    A store keeps the later of two coolings of one key, and must never raise: a store that
    cannot reach its backend answers from what it knows (or None), so a call never fails for
    it. The sync methods serve ``invoke`` and ``stream``, the async ones ``ainvoke`` and
    ``astream``, and must not block the event loop.
    """

    def until(self, key: str) -> float | None:
        """When ``key``'s cooldown ends, in epoch seconds; None when it is not cooling."""
        ...

    def cool(self, key: str, until: float) -> None:
        """Record that ``key`` cools down until ``until`` (epoch seconds), unless it already
        cools down until later."""
        ...

    async def auntil(self, key: str) -> float | None:
        """Async ``until``."""
        ...

    async def acool(self, key: str, until: float) -> None:
        """Async ``cool``."""
        ...


class InProcessCooldowns:
    """Cooldowns shared by the ChatLunar instances of one process; thread-safe.

    ChatLunar's default store is one instance for the whole process (``cooldowns`` unset), so
    every instance skips a model another has seen cooling. A check is a dict look-up. Expired
    cooldowns are dropped as they are read, and swept when many have piled up.

    Copies (``copy``, ``deepcopy``) are the same store; a pickled store comes back as the
    unpickling process's own store if it was the default, else as a new, empty one.
    """

    __slots__ = ("__weakref__", "_lock", "_until")

    _SWEEP_AT = 4096

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()
        _in_process_stores.add(self)

    def until(self, key: str) -> float | None:
        """When ``key``'s cooldown ends, in epoch seconds; None when it is not cooling."""
        until = self._until.get(key)  # read without the lock: one dict look-up is atomic
        if until is None or until > time.time():
            return until
        with self._lock:
            if self._until.get(key) == until:
                del self._until[key]
        return None

    def cool(self, key: str, until: float) -> None:
        """Record that ``key`` cools down until ``until``, unless it already does until later."""
        with self._lock:
            current = self._until.get(key)
            if current is None or until > current:
                self._until[key] = until
            if len(self._until) > self._SWEEP_AT:
                now = time.time()
                self._until = {k: u for k, u in self._until.items() if u > now}

    async def auntil(self, key: str) -> float | None:
        """Async ``until`` (a dict look-up: it does not wait)."""
        return self.until(key)

    async def acool(self, key: str, until: float) -> None:
        """Async ``cool`` (it does not wait)."""
        self.cool(key, until)

    def clear(self) -> None:
        """Forget every cooldown."""
        with self._lock:
            self._until = {}

    def __len__(self) -> int:
        now = time.time()
        return sum(1 for until in list(self._until.values()) if until > now)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} cooling)"

    # A store is shared state, like a connection pool: a copy of a ChatLunar shares it.
    def __copy__(self) -> InProcessCooldowns:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> InProcessCooldowns:
        return self

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (default_cooldowns if self is _PROCESS_COOLDOWNS else InProcessCooldowns), ()


_in_process_stores: weakref.WeakSet[InProcessCooldowns] = weakref.WeakSet()
_PROCESS_COOLDOWNS = InProcessCooldowns()


def default_cooldowns() -> InProcessCooldowns:
    """The process-wide store: ChatLunar's default ``cooldowns``."""
    return _PROCESS_COOLDOWNS


def _renew_locks() -> None:
    # Another thread may have held a lock at the fork; the child's copy would stay locked.
    for store in list(_in_process_stores):
        store._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_locks)


@dataclass(frozen=True, slots=True)
class CooldownScope:
    """One call's view of a store: its keys name the call's ``base_url`` and API key."""

    store: CooldownStore
    prefix: str
    """``{base_url}|{sha256 of the key, or NO_KEY}|``; the model's name completes a key."""

    def key(self, model: str) -> str:
        return self.prefix + model


def cooldown_scope(
    store: CooldownStore, base_url: str, headers: Mapping[str, str]
) -> CooldownScope:
    """The scope of a call to ``base_url`` with ``headers`` (the headers it sends, lower-case).

    The key is the one the server sees: ``x-api-key`` (the ``api_key``, unless a header of the
    user's replaced it), else ``authorization``. Only its SHA-256 is kept.
    """
    credential = headers.get("x-api-key") or headers.get("authorization")
    digest = hashlib.sha256(credential.encode()).hexdigest() if credential else NO_KEY
    return CooldownScope(store, f"{base_url}|{digest}|")


# KEYS[1]: a cooldown, its end in epoch seconds by Redis's clock. Both scripts read Redis's own
# clock (TIME), so the clocks of the clients never matter: they send and receive durations.
# ARGV[1]: seconds from now. Keeps the later end; the key expires with the cooldown. Scripts
# that write after TIME need effects replication, the default since Redis 5.
_COOL = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local wait = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]))
if current ~= nil and current >= now + wait then
  return 0
end
redis.call('SET', KEYS[1], string.format('%.6f', now + wait), 'PX', math.ceil(wait * 1000))
return 1
"""

# The seconds left of KEYS[1]'s cooldown, or nil when it is not cooling.
_LEFT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local ends = tonumber(redis.call('GET', KEYS[1]))
if ends == nil or ends <= now then
  return nil
end
return string.format('%.6f', ends - now)
"""

_INSTALL_HINT = 'RedisCooldowns needs the redis package: pip install "langchain-lunar[redis]"'


class RedisCooldowns:
    """Cooldowns in Redis, shared by every process and machine that uses the same Redis.

    A check is one round trip (a Lua script, run with EVALSHA); so is recording a cooldown,
    which keeps the later of two ends and expires with the cooldown. The ends are kept by
    Redis's clock, so the clocks of the machines need not agree.

    If Redis is down or unreachable, calls are never failed: the store logs one warning on the
    ``langchain_lunar`` logger, keeps cooldowns in this process meanwhile (in the process-wide
    store, under this ``prefix``), and tries Redis again every ``retry_interval`` seconds; it
    logs once when Redis is back. Every cooldown recorded is also kept in the process, so a
    process still knows its cooldowns while Redis is away. Clients built from ``url`` time out
    after ``timeout`` seconds and do not retry, so a dead Redis costs a call at most that long
    once per ``retry_interval``.

    Needs the ``redis`` package: ``pip install "langchain-lunar[redis]"``.

    Example::

        from langchain_lunar import ChatLunar, RedisCooldowns

        cooldowns = RedisCooldowns(url="redis://redis.internal:6379/0")
        llm = ChatLunar(model="gpt-4o-mini", fallbacks=["claude-3-haiku"], cooldowns=cooldowns)

    Args:
        url: The Redis URL (``redis://``, ``rediss://`` or ``unix://``) to build clients from,
            lazily: a sync client on first use, an async one per event loop. Default:
            ``redis://localhost:6379/0`` when no client is given.
        client: A ready ``redis.Redis`` for sync calls; used as it is (its own timeouts and
            retries apply) and never closed by the store. Without ``async_client`` and ``url``,
            async calls run its round trips in a worker thread.
        async_client: A ready ``redis.asyncio.Redis`` for async calls, used as it is, on the
            event loop it belongs to, and never closed by the store.
        prefix: Put before every key; stores with the same Redis and prefix share cooldowns.
        timeout: Seconds to connect and to wait for an answer, for clients built from ``url``.
        retry_interval: Seconds between attempts to reach Redis again after it failed.

    Raises:
        ImportError: The ``redis`` package is not installed.
        ValueError: A setting is out of range.
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        client: redis.Redis | None = None,
        async_client: redis.asyncio.Redis | None = None,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 0.5,
        retry_interval: float = 5.0,
    ) -> None:
        try:
            import redis  # noqa: F401
        except ImportError as error:
            raise ImportError(_INSTALL_HINT) from error
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, not {timeout!r}")
        if not retry_interval >= 0:
            raise ValueError(f"retry_interval must be >= 0, not {retry_interval!r}")
        if url is None and client is None and async_client is None:
            url = "redis://localhost:6379/0"
        self.url = url
        self.prefix = prefix
        self.timeout = float(timeout)
        self.retry_interval = float(retry_interval)
        self._client = client
        self._async_client = async_client
        self._lock = threading.Lock()
        self._built_client: redis.Redis | None = None
        self._scripts: tuple[Script, Script] | None = None  # (cool, left)
        self._given_async_scripts: tuple[AsyncScript, AsyncScript] | None = None
        # A client's connections belong to the loop that opened them; a dead loop drops its own.
        self._loop_scripts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
            weakref.WeakKeyDictionary()
        )
        # Set while Redis is failing: when the next attempt to reach it may be made.
        self._retry_at: float | None = None
        self._warned_no_sync = False

    def until(self, key: str) -> float | None:
        """When ``key``'s cooldown ends, in epoch seconds by this machine's clock; None when it
        is not cooling."""
        full = self.prefix + key
        scripts = self._sync_scripts()
        mode = self._mode() if scripts is not None else "local"
        if scripts is not None and mode != "local":
            try:
                left = scripts[1](keys=[full])
            except (OSError, _redis_error()) as error:
                self._failed(error, probe=mode == "probe")
            else:
                self._answered(probe=mode == "probe")
                return _later(_ends(left), _PROCESS_COOLDOWNS.until(full))
        return _PROCESS_COOLDOWNS.until(full)

    def cool(self, key: str, until: float) -> None:
        """Record that ``key`` cools down until ``until`` (epoch seconds by this machine's
        clock), unless it already does until later."""
        full = self.prefix + key
        _PROCESS_COOLDOWNS.cool(full, until)
        wait = until - time.time()
        if wait <= 0:
            return
        scripts = self._sync_scripts()
        mode = self._mode() if scripts is not None else "local"
        if scripts is None or mode == "local":
            return
        try:
            scripts[0](keys=[full], args=[f"{wait:.6f}"])
        except (OSError, _redis_error()) as error:
            self._failed(error, probe=mode == "probe")
        else:
            self._answered(probe=mode == "probe")

    async def auntil(self, key: str) -> float | None:
        """Async ``until``."""
        full = self.prefix + key
        mode = self._mode()
        if mode != "local":
            try:
                scripts = self._async_scripts()
                if scripts is None:
                    # Only a sync client was given: its blocking round trip runs off the loop.
                    left = await asyncio.to_thread(self._given_sync_scripts()[1], keys=[full])
                else:
                    left = await scripts[1](keys=[full])
            except (OSError, _redis_error()) as error:
                self._failed(error, probe=mode == "probe")
            else:
                self._answered(probe=mode == "probe")
                return _later(_ends(left), _PROCESS_COOLDOWNS.until(full))
        return _PROCESS_COOLDOWNS.until(full)

    async def acool(self, key: str, until: float) -> None:
        """Async ``cool``."""
        full = self.prefix + key
        _PROCESS_COOLDOWNS.cool(full, until)
        wait = until - time.time()
        if wait <= 0:
            return
        mode = self._mode()
        if mode == "local":
            return
        args = [f"{wait:.6f}"]
        try:
            scripts = self._async_scripts()
            if scripts is None:
                await asyncio.to_thread(self._given_sync_scripts()[0], keys=[full], args=args)
            else:
                await scripts[0](keys=[full], args=args)
        except (OSError, _redis_error()) as error:
            self._failed(error, probe=mode == "probe")
        else:
            self._answered(probe=mode == "probe")

    def close(self) -> None:
        """Close the sync client the store built from ``url``; the next use builds another.

        Clients passed as ``client`` or ``async_client`` are never closed.
        """
        with self._lock:
            built, self._built_client = self._built_client, None
            if built is not None:
                self._scripts = None
        if built is not None:
            built.close()

    async def aclose(self) -> None:
        """Close the clients the store built from ``url``: the sync one and the running loop's.

        Clients passed as ``client`` or ``async_client`` are never closed.
        """
        self.close()
        with self._lock:
            entry = self._loop_scripts.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry.client.aclose()

    def __repr__(self) -> str:
        # Not the URL: it may hold a password.
        return f"{type(self).__name__}(prefix={self.prefix!r})"

    # A store is shared state, like a connection pool: a copy of a ChatLunar shares it.
    def __copy__(self) -> RedisCooldowns:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> RedisCooldowns:
        return self

    # --- Redis's health ----------------------------------------------------------------------

    def _mode(self) -> Literal["redis", "probe", "local"]:
        """Whether this round trip goes to Redis: as usual, as the one probe after a failure,
        or not (Redis failed less than ``retry_interval`` ago)."""
        if self._retry_at is None:  # the usual case, without the lock
            return "redis"
        with self._lock:
            if self._retry_at is None:
                return "redis"
            now = time.monotonic()
            if now < self._retry_at:
                return "local"
            # One caller probes; the others keep to the process until it has an answer.
            self._retry_at = now + self.retry_interval
            return "probe"

    def _failed(self, error: BaseException, *, probe: bool) -> None:
        with self._lock:
            first = self._retry_at is None
            if first or probe:
                self._retry_at = time.monotonic() + self.retry_interval
        if first:
            logger.warning(
                "Redis cooldowns %r cannot reach Redis (%s: %s); keeping cooldowns in this "
                "process only, and trying Redis again every %g s",
                self.prefix,
                type(error).__name__,
                error,
                self.retry_interval,
            )

    def _answered(self, *, probe: bool) -> None:
        # Only a probe ends an outage: an answer to a round trip begun before it does not.
        if not probe:
            return
        with self._lock:
            back = self._retry_at is not None
            self._retry_at = None
        if back:
            logger.warning("Redis cooldowns %r reach Redis again", self.prefix)

    # --- Clients, built on first use ---------------------------------------------------------

    def _sync_scripts(self) -> tuple[Script, Script] | None:
        """The sync client's scripts; None when only an async client was given."""
        scripts = self._scripts
        if scripts is not None:
            return scripts
        with self._lock:
            if self._scripts is None:
                client = self._client
                if client is None:
                    if self.url is None:
                        if not self._warned_no_sync:
                            self._warned_no_sync = True
                            logger.warning(
                                "Redis cooldowns %r were given only async_client: sync calls "
                                "keep cooldowns in this process (pass client= or url= too)",
                                self.prefix,
                            )
                        return None
                    import redis
                    from redis.retry import Retry

                    client = self._built_client = redis.Redis.from_url(
                        self.url, **self._client_settings(Retry)
                    )
                self._scripts = (client.register_script(_COOL), client.register_script(_LEFT))
            return self._scripts

    def _given_sync_scripts(self) -> tuple[Script, Script]:
        scripts = self._sync_scripts()
        assert scripts is not None  # only called when a sync client was given
        return scripts

    def _async_scripts(self) -> tuple[AsyncScript, AsyncScript] | None:
        """The running loop's scripts; None when only a sync client was given."""
        if self._async_client is not None:
            if self._given_async_scripts is None:
                client = self._async_client
                self._given_async_scripts = (
                    client.register_script(_COOL),
                    client.register_script(_LEFT),
                )
            return self._given_async_scripts
        if self.url is None:
            return None
        loop = asyncio.get_running_loop()
        entry = self._loop_scripts.get(loop)
        if entry is None:
            import redis.asyncio
            from redis.asyncio.retry import Retry

            built = redis.asyncio.Redis.from_url(self.url, **self._client_settings(Retry))
            entry = _LoopClient(
                built, built.register_script(_COOL), built.register_script(_LEFT), None
            )
            entry.closer = _close_at_shutdown(loop, built)
            with self._lock:
                self._loop_scripts[loop] = entry
        return entry.cool, entry.left

    def _client_settings(self, retry: Any) -> dict[str, Any]:
        from redis.backoff import NoBackoff

        # No retries: redis-py 6+ retries 3 times with backoff by default, which would stall
        # every call on a dead Redis; the store's own retry_interval takes over instead.
        return {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            "retry": retry(NoBackoff(), 0),
        }


@dataclass(slots=True)
class _LoopClient:
    """An async client built from ``url`` for one event loop, and its scripts."""

    client: redis.asyncio.Redis
    cool: AsyncScript
    left: AsyncScript
    # Kept referenced: the loop closes it when it shuts down, which closes the client.
    closer: AsyncGenerator[None, None] | None


def _close_at_shutdown(
    loop: asyncio.AbstractEventLoop, client: redis.asyncio.Redis
) -> AsyncGenerator[None, None] | None:
    """Make ``loop`` close ``client`` when it shuts down, while it can still run it.

    asyncio has no hook for a loop's end, but ``shutdown_asyncgens()`` (called by
    ``asyncio.run()`` and ``asyncio.Runner``) closes every async generator that has started
    on the loop, running its ``finally``. So start one, synchronously, up to its ``yield``.
    (As ``langchain_lunar._clients`` does for the httpx clients.)
    """
    hooks = sys.get_asyncgen_hooks()
    if getattr(hooks.firstiter, "__self__", None) is not loop:
        return None  # the loop does not track async generators: the collector closes it
    closer = _closing(client)
    try:
        closer.asend(None).__await__().send(None)
    except StopIteration:
        return closer
    raise AssertionError("unreachable: _closing yields at once")  # pragma: no cover


async def _closing(client: redis.asyncio.Redis) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await client.aclose()


def _redis_error() -> type[Exception]:
    from redis.exceptions import RedisError

    return RedisError


def _ends(left: bytes | str | None) -> float | None:
    """The end of a cooldown by this machine's clock, from the seconds Redis says are left."""
    return time.time() + float(left) if left is not None else None


def _later(first: float | None, second: float | None) -> float | None:
    if first is None:
        return second
    if second is None:
        return first
    return max(first, second)
