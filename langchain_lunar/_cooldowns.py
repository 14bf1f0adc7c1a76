"""Shared cooldowns: when a model answers 429 or 503 with a wait, every ChatLunar that shares
the store skips that model until the wait is over, instead of asking it again.

A cooldown is kept per model, ``base_url`` and API key (by its SHA-256, never in clear), as the
moment it ends in epoch seconds. ``InProcessCooldowns`` keeps them for one process (the
default: one store for every instance); ``RedisCooldowns`` for every process and machine that
shares a Redis. The retry plan (``langchain_lunar._retry``) reads the store before each attempt
and writes it after each such failure.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from ._redis_client import NOT_ASKED, RedisLink, RedisStore, require_redis

if TYPE_CHECKING:
    import redis
    import redis.asyncio

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
    it. ChatLunar records no cooldown longer than its ``max_cooldown``; the stores here also
    ignore an end that is not a finite number. The sync methods serve ``invoke`` and
    ``stream``, the async ones ``ainvoke`` and ``astream``, and must not block the event loop.
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
        if not math.isfinite(until):  # inf or NaN would cool for ever, or never end
            return
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


class CooldownScope(NamedTuple):
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

_COOL_SCRIPT, _LEFT_SCRIPT = 0, 1  # their indexes in the link's scripts

# The longest wait sent to Redis: its expiry (PX) must be an integer of milliseconds that
# Redis can add to its clock, and an error there would count as Redis being down.
_LONGEST_WAIT = 366 * 86400.0


class RedisCooldowns(RedisStore):
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
            lazily: a sync client on first use, an async one per event loop, closed when that
            loop shuts down. Default: ``redis://localhost:6379/0`` when no client is given.
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
        require_redis("RedisCooldowns")
        self.prefix = prefix
        self._link = RedisLink(
            f"RedisCooldowns(prefix={prefix!r})",
            "keeping cooldowns in this process only",
            (_COOL, _LEFT),
            url=url,
            client=client,
            async_client=async_client,
            timeout=timeout,
            retry_interval=retry_interval,
        )
        self._warned_no_sync = False

    def until(self, key: str) -> float | None:
        """When ``key``'s cooldown ends, in epoch seconds by this machine's clock; None when it
        is not cooling."""
        full = self.prefix + key
        if self._can_run_sync():
            left = self._link.run(_LEFT_SCRIPT, [full], [])
            if left is not NOT_ASKED:
                return _later(_ends(left), _PROCESS_COOLDOWNS.until(full))
        return _PROCESS_COOLDOWNS.until(full)

    def cool(self, key: str, until: float) -> None:
        """Record that ``key`` cools down until ``until`` (epoch seconds by this machine's
        clock), unless it already does until later."""
        full = self.prefix + key
        _PROCESS_COOLDOWNS.cool(full, until)
        wait = _redis_wait(until)
        if wait is not None and self._can_run_sync():
            self._link.run(_COOL_SCRIPT, [full], [wait])

    async def auntil(self, key: str) -> float | None:
        """Async ``until``."""
        full = self.prefix + key
        left = await self._link.arun(_LEFT_SCRIPT, [full], [])
        if left is not NOT_ASKED:
            return _later(_ends(left), _PROCESS_COOLDOWNS.until(full))
        return _PROCESS_COOLDOWNS.until(full)

    async def acool(self, key: str, until: float) -> None:
        """Async ``cool``."""
        full = self.prefix + key
        _PROCESS_COOLDOWNS.cool(full, until)
        wait = _redis_wait(until)
        if wait is not None:
            await self._link.arun(_COOL_SCRIPT, [full], [wait])

    def __repr__(self) -> str:
        # Not the URL: it may hold a password.
        return f"{type(self).__name__}(prefix={self.prefix!r})"

    def _can_run_sync(self) -> bool:
        if self._link.has_sync_client:
            return True
        if not self._warned_no_sync:
            self._warned_no_sync = True
            logger.warning(
                "Redis cooldowns %r were given only async_client: sync calls keep cooldowns in "
                "this process (pass client= or url= too)",
                self.prefix,
            )
        return False


def _redis_wait(until: float) -> str | None:
    """The seconds from now to ``until`` as the cooling script takes them; None when there is
    nothing to record (an end past, or not a finite number)."""
    wait = until - time.time()
    if not wait > 0 or not math.isfinite(wait):
        return None
    return f"{min(wait, _LONGEST_WAIT):.6f}"


def _ends(left: bytes | str | None) -> float | None:
    """The end of a cooldown by this machine's clock, from the seconds Redis says are left
    (None for a value no client of ours wrote)."""
    if left is None:
        return None
    try:
        ends = time.time() + float(left)
    except (TypeError, ValueError):
        return None
    return ends if math.isfinite(ends) else None


def _later(first: float | None, second: float | None) -> float | None:
    if first is None:
        return second
    if second is None:
        return first
    return max(first, second)
