"""``RedisRateLimiter``: one request budget for every process and machine that shares a Redis.

langchain-core's ``InMemoryRateLimiter`` counts per process, so a fleet of N workers sends N
times the budget. This limiter keeps its token bucket in Redis instead: each acquire is one
round trip, a Lua script that refills the bucket by Redis's own clock, takes a token if there is
one and otherwise answers how long until there will be one.

Redis is a dependency of the budget, never of the calls: when it cannot be reached the limiter
logs one warning, counts in the process until Redis answers again, and tries it again every
``retry_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING

from langchain_core.rate_limiters import BaseRateLimiter

from ._redis_client import NOT_ASKED, RedisLink, RedisStore, require_redis

if TYPE_CHECKING:
    import redis
    import redis.asyncio

DEFAULT_KEY = "langchain_lunar:rate:default"

# KEYS[1]: the bucket, a hash {tokens, ts}. ARGV: tokens per second, bucket size.
# TIME is Redis's clock, so the clocks of the clients never matter. A missing bucket is a full
# one; the key expires once it would be full again, so idle budgets leave nothing behind. A
# denied take writes nothing: the next one refills from the same timestamp. Scripts that write
# after TIME need effects replication, the default since Redis 5.
_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local size = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = size
elseif now > ts then
  tokens = math.min(size, tokens + (now - ts) * rate)
end
if tokens < 1 then
  return tostring((1 - tokens) / rate)
end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((size - tokens) / rate * 1000) + 1000)
return 'granted'
"""


class RedisRateLimiter(RedisStore, BaseRateLimiter):
    """A token-bucket rate limiter whose bucket lives in Redis, shared by every process using it.

    Each request takes one token; the bucket holds at most ``max_bucket_size`` tokens (the
    burst) and refills at ``requests_per_second``. Every limiter with the same Redis and ``key``
    draws from the same bucket, whatever process or machine it runs in, so a fleet of workers
    stays within one budget. Give each budget its own ``key``, and the same settings to every
    limiter that shares a key. A bucket nobody has used yet, or for a while, is full.

    One acquire is one round trip to Redis (a Lua script, run with EVALSHA, reading Redis's
    own clock). A blocking acquire that finds the bucket empty sleeps for exactly the time the
    script says the next token needs, then tries again.

    If Redis is down or unreachable, calls are never failed: the limiter logs one warning on the
    ``langchain_lunar`` logger, limits in this process alone with a token bucket of the same
    rate and size (so the fleet may exceed the budget while Redis is away), and tries Redis
    again every ``retry_interval`` seconds; it logs once when Redis is back. Clients built from
    ``url`` time out after ``timeout`` seconds and do not retry, so a dead Redis delays one call
    per ``retry_interval`` by about that long, and no other.

    Needs Redis 5 or later and the ``redis`` package: ``pip install "langchain-lunar[redis]"``.

    Example::

        from langchain_lunar import ChatLunar, RedisRateLimiter

        limiter = RedisRateLimiter(
            url="redis://redis.internal:6379/0",
            requests_per_second=5,
            max_bucket_size=10,
        )
        llm = ChatLunar(model="gpt-4o-mini", rate_limiter=limiter)

    Args:
        requests_per_second: Tokens added to the bucket per second; greater than 0.
        max_bucket_size: The most tokens the bucket holds, i.e. the largest burst; at least 1.
        key: The Redis key of the bucket; limiters with the same key share a budget.
        url: The Redis URL (``redis://``, ``rediss://`` or ``unix://``) to build clients from,
            lazily: a sync client on first ``acquire()`` (see ``close()``), an async one per event
            loop on first ``aacquire()``, closed when that loop shuts down. Default:
            ``redis://localhost:6379/0`` when no client is given.
        client: A ready ``redis.Redis`` for ``acquire()``; used as it is (its own timeouts and
            retries apply) and never closed by the limiter. Without ``async_client`` and
            ``url``, ``aacquire()`` runs its round trip in a worker thread.
        async_client: A ready ``redis.asyncio.Redis`` for ``aacquire()``, used as it is, on the
            event loop it belongs to, and never closed by the limiter.
        timeout: Seconds to connect and to wait for an answer, for clients built from ``url``.
        retry_interval: Seconds between attempts to reach Redis again after it failed.

    Raises:
        ImportError: The ``redis`` package is not installed.
        ValueError: A setting is out of range, or ``acquire()`` was called with only an
            ``async_client``.
    """

    def __init__(
        self,
        *,
        requests_per_second: float = 1,
        max_bucket_size: float = 1,
        key: str = DEFAULT_KEY,
        url: str | None = None,
        client: redis.Redis | None = None,
        async_client: redis.asyncio.Redis | None = None,
        timeout: float = 0.5,
        retry_interval: float = 5.0,
    ) -> None:
        require_redis("RedisRateLimiter")
        if not requests_per_second > 0:
            raise ValueError(f"requests_per_second must be > 0, not {requests_per_second!r}")
        if not max_bucket_size >= 1:
            raise ValueError(f"max_bucket_size must be >= 1, not {max_bucket_size!r}")
        self.requests_per_second = float(requests_per_second)
        self.max_bucket_size = float(max_bucket_size)
        self.key = key
        self._link = RedisLink(
            f"RedisRateLimiter(key={key!r})",
            "limiting in this process only",
            (_TOKEN_BUCKET,),
            url=url,
            client=client,
            async_client=async_client,
            timeout=timeout,
            retry_interval=retry_interval,
        )
        self._local = _LocalBucket(self.requests_per_second, self.max_bucket_size)

    def acquire(self, *, blocking: bool = True) -> bool:
        """Attempt to take a token from the shared bucket.

        This method blocks until a token is available if `blocking` is set to `True`,
        sleeping each time for as long as the next token needs.

        If `blocking` is set to `False`, the method will immediately return the result
        of the attempt to take a token.

        Args:
            blocking: If `True`, the method will block until a token is available.
                If `False`, the method will return immediately with the result of
                the attempt.

        Returns:
            `True` if a token was taken, `False` otherwise.
        """
        while True:
            wait = self._take()
            if wait is None:
                return True
            if not blocking:
                return False
            time.sleep(wait)

    async def aacquire(self, *, blocking: bool = True) -> bool:
        """Attempt to take a token from the shared bucket. Async version.

        This method waits until a token is available if `blocking` is set to `True`,
        sleeping each time for as long as the next token needs.

        If `blocking` is set to `False`, the method will immediately return the result
        of the attempt to take a token.

        Args:
            blocking: If `True`, the method will wait until a token is available.
                If `False`, the method will return immediately with the result of
                the attempt.

        Returns:
            `True` if a token was taken, `False` otherwise.
        """
        while True:
            wait = await self._atake()
            if wait is None:
                return True
            if not blocking:
                return False
            await asyncio.sleep(wait)

    def __repr__(self) -> str:
        # Not the URL: it may hold a password.
        return f"{type(self).__name__}(key={self.key!r})"

    # --- One take: None when granted, else the seconds until a token will be there -----------

    def _take(self) -> float | None:
        if not self._link.has_sync_client:
            raise ValueError(
                "RedisRateLimiter was given only async_client, so acquire() has no Redis "
                "client: pass client= or url= too, or call aacquire()"
            )
        reply = self._link.run(0, [self.key], self._args())
        return self._local.take() if reply is NOT_ASKED else _parse(reply)

    async def _atake(self) -> float | None:
        reply = await self._link.arun(0, [self.key], self._args())
        return self._local.take() if reply is NOT_ASKED else _parse(reply)

    def _args(self) -> list[float]:
        return [self.requests_per_second, self.max_bucket_size]


class _LocalBucket:
    """The same token bucket in this process alone, for while Redis cannot be reached."""

    def __init__(self, rate: float, size: float) -> None:
        self._rate = rate
        self._size = size
        self._tokens = size
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> float | None:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._size, self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens < 1:
                return (1 - self._tokens) / self._rate
            self._tokens -= 1
            return None


def _parse(reply: bytes | str) -> float | None:
    """The script's answer: None for a token, else the seconds until there will be one."""
    text = reply.decode() if isinstance(reply, bytes) else reply
    return None if text == "granted" else float(text)
