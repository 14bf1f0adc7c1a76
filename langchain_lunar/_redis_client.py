"""``RedisLink``: the Redis side of a store that a fleet shares (``RedisCooldowns``,
``RedisRateLimiter``), kept out of the way of the calls when Redis is not.

A link runs its store's Lua scripts: on a sync client, and on one async client per event loop
(a client's connections belong to the loop that opened them). Clients built from a URL are built
on first use, time out quickly and do not retry. When a round trip fails, the link logs one
warning and answers ``NOT_ASKED`` to every round trip until ``retry_interval`` has passed; then
one caller probes Redis, and the link logs once when Redis answers again. The store answers
``NOT_ASKED`` from what its process knows. ``RedisStore`` is what the stores share besides.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple

from ._loop_end import close_at_shutdown

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    from redis.commands.core import AsyncScript, Script
    from typing_extensions import Self  # typing.Self needs Python 3.11

logger = logging.getLogger("langchain_lunar")

DEFAULT_URL = "redis://localhost:6379/0"


def require_redis(store: str) -> None:
    """Raise a clear ImportError, naming ``store``, if the ``redis`` package is missing."""
    try:
        import redis  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f'{store} needs the redis package: pip install "langchain-lunar[redis]"'
        ) from error


class _NotAsked:
    def __repr__(self) -> str:
        return "NOT_ASKED"


NOT_ASKED: Final = _NotAsked()
"""What a round trip answers when Redis was not asked or did not answer."""


class RedisLink:
    """Runs ``scripts`` on Redis for the store named ``owner``; see the module's docstring.

    Args:
        owner: The store, as the log lines name it (never holding the URL: it may hold a
            password).
        meanwhile: What the store does while Redis is away, for the warning.
        scripts: The Lua sources; a round trip names one by its index.
        url, client, async_client, timeout, retry_interval: As the stores document them.

    Raises:
        ValueError: ``timeout`` or ``retry_interval`` is out of range.
    """

    def __init__(
        self,
        owner: str,
        meanwhile: str,
        scripts: Sequence[str],
        *,
        url: str | None,
        client: redis.Redis | None,
        async_client: redis.asyncio.Redis | None,
        timeout: float,
        retry_interval: float,
    ) -> None:
        from redis.exceptions import RedisError

        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, not {timeout!r}")
        if not retry_interval >= 0:
            raise ValueError(f"retry_interval must be >= 0, not {retry_interval!r}")
        if url is None and client is None and async_client is None:
            url = DEFAULT_URL
        self.owner = owner
        self.url = url
        self.timeout = float(timeout)
        self.retry_interval = float(retry_interval)
        self._meanwhile = meanwhile
        self._sources = tuple(scripts)
        self._errors = (OSError, RedisError)
        self._client = client
        self._async_client = async_client
        self._lock = threading.Lock()
        self._built_client: redis.Redis | None = None
        self._sync_scripts: tuple[Script, ...] | None = None
        self._given_async_scripts: tuple[AsyncScript, ...] | None = None
        self._loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
            weakref.WeakKeyDictionary()
        )
        # Set while Redis is failing: when the next attempt to reach it may be made.
        self._retry_at: float | None = None

    @property
    def has_sync_client(self) -> bool:
        """Whether ``run`` can reach Redis: False when only an async client was given."""
        return self._client is not None or self.url is not None

    def run(self, script: int, keys: list[str], args: list[Any]) -> Any:
        """Run ``scripts[script]`` on the sync client: its reply, or ``NOT_ASKED``.

        Only when ``has_sync_client``.
        """
        mode = self._mode()
        if mode == "local":
            return NOT_ASKED
        try:
            reply = self._scripts()[script](keys=keys, args=args)
        except self._errors as error:
            self._failed(error, probe=mode == "probe")
            return NOT_ASKED
        self._answered(probe=mode == "probe")
        return reply

    async def arun(self, script: int, keys: list[str], args: list[Any]) -> Any:
        """Async ``run``, on the running loop's client; with only a sync client given, its
        blocking round trip runs in a worker thread."""
        mode = self._mode()
        if mode == "local":
            return NOT_ASKED
        try:
            scripts = self._async_scripts()
            if scripts is None:
                reply = await asyncio.to_thread(self._scripts()[script], keys=keys, args=args)
            else:
                reply = await scripts[script](keys=keys, args=args)
        except self._errors as error:
            self._failed(error, probe=mode == "probe")
            return NOT_ASKED
        self._answered(probe=mode == "probe")
        return reply

    def close(self) -> None:
        """Close the sync client built from ``url``; the next round trip builds another."""
        with self._lock:
            built, self._built_client = self._built_client, None
            if built is not None:
                self._sync_scripts = None
        if built is not None:
            built.close()

    async def aclose(self) -> None:
        """Close the clients built from ``url``: the sync one and the running loop's."""
        self.close()
        with self._lock:
            entry = self._loop_clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry.client.aclose()

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
        # Logging, not warnings.warn: an outage is an operations event, for the logs that are
        # watched; and a warnings filter set to "error" would turn it into the failed call that
        # the fallback exists to prevent.
        if first:
            logger.warning(
                "%s cannot reach Redis (%s: %s); %s, and trying Redis again every %g s",
                self.owner,
                type(error).__name__,
                error,
                self._meanwhile,
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
            logger.warning("%s reaches Redis again", self.owner)

    # --- Clients, built on first use ---------------------------------------------------------

    def _scripts(self) -> tuple[Script, ...]:
        """The sync client's scripts (there is a sync client: see ``has_sync_client``)."""
        scripts = self._sync_scripts
        if scripts is not None:
            return scripts
        with self._lock:
            if self._sync_scripts is None:
                client = self._client
                if client is None:
                    import redis
                    from redis.retry import Retry

                    assert self.url is not None  # see has_sync_client
                    # Through Any: redis 5.0 declares that from_url returns None.
                    from_url: Any = redis.Redis.from_url
                    built: redis.Redis = from_url(self.url, **self._client_settings(Retry))
                    client = self._built_client = built
                self._sync_scripts = tuple(map(client.register_script, self._sources))
            return self._sync_scripts

    def _async_scripts(self) -> tuple[AsyncScript, ...] | None:
        """The running loop's scripts; None when only a sync client was given."""
        if self._async_client is not None:
            if self._given_async_scripts is None:
                register = self._async_client.register_script
                self._given_async_scripts = tuple(map(register, self._sources))
            return self._given_async_scripts
        if self.url is None:
            return None
        loop = asyncio.get_running_loop()
        entry = self._loop_clients.get(loop)
        if entry is None:
            import redis.asyncio
            from redis.asyncio.retry import Retry

            built = redis.asyncio.Redis.from_url(self.url, **self._client_settings(Retry))
            entry = _LoopClient(
                built,
                tuple(map(built.register_script, self._sources)),
                close_at_shutdown(loop, built.aclose),
            )
            with self._lock:
                self._loop_clients[loop] = entry
        return entry.scripts

    def _client_settings(self, retry: Any) -> dict[str, Any]:
        from redis.backoff import NoBackoff

        # No retries: redis-py 6+ retries 3 times with backoff by default, which would stall
        # every call on a dead Redis; the link's own retry_interval takes over instead.
        return {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            "retry": retry(NoBackoff(), 0),
        }


class RedisStore:
    """What the stores on a ``RedisLink`` (``self._link``) share: closing their clients, and
    copies that are the store itself (a store is shared state, like a connection pool, so a
    copy of a ChatLunar shares it)."""

    _link: RedisLink

    def close(self) -> None:
        """Close the sync client built from ``url``; the next use builds another.

        Clients passed as ``client`` or ``async_client`` are never closed.
        """
        self._link.close()

    async def aclose(self) -> None:
        """Close the clients built from ``url``: the sync one and the running loop's.

        Clients passed as ``client`` or ``async_client`` are never closed.
        """
        await self._link.aclose()

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self


class _LoopClient(NamedTuple):
    """An async client built from ``url`` for one event loop, and its scripts."""

    client: redis.asyncio.Redis
    scripts: tuple[AsyncScript, ...]
    # Kept referenced: the loop closes it when it shuts down, which closes the client.
    closer: AsyncGenerator[None, None] | None
