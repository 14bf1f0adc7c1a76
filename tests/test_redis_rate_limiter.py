"""RedisRateLimiter against a real redis-server: one budget for every limiter, thread, task and
process that shares a key; a dead Redis never fails a call.

Timing is never a goal here. Counts are checked against the hard bound of a token bucket read
on Redis's own clock: grants <= burst + rate * (Redis time after - Redis time before).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import multiprocessing
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio

import langchain_lunar
from langchain_lunar import ChatLunar, RedisRateLimiter
from langchain_lunar.testing import RedisServer

MakeLimiter = Callable[..., RedisRateLimiter]


@pytest.fixture
def make_limiter(redis_server: RedisServer) -> Iterator[MakeLimiter]:
    """Builds limiters on the test's Redis, and closes their sync clients after the test (an
    async client closes with its event loop)."""
    made: list[RedisRateLimiter] = []

    def make(**settings: Any) -> RedisRateLimiter:
        made.append(RedisRateLimiter(url=redis_server.url, **settings))
        return made[-1]

    yield make
    for limiter in made:
        limiter.close()


def redis_time(server: RedisServer) -> float:
    """Redis's clock, in seconds (the clock the limiter's script refills by)."""
    with redis.Redis.from_url(server.url) as client:
        seconds, micros = client.time()
    return seconds + micros / 1e6


def bound(burst: float, rate: float, start: float, end: float) -> float:
    """The most tokens a full bucket can give between two readings of Redis's clock."""
    return burst + rate * (end - start)


def fallback_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "cannot reach Redis" in r.getMessage()]


def back_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "reaches Redis again" in r.getMessage()]


# --- One budget --------------------------------------------------------------------------------


def test_burst_then_rate(redis_server: RedisServer, make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(requests_per_second=20, max_bucket_size=5)
    start = redis_time(redis_server)
    assert [limiter.acquire(blocking=False) for _ in range(5)] == [True] * 5
    # Blocking acquires for half a second: each sleeps what the script says the next token needs.
    granted = 5
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        assert limiter.acquire() is True
        granted += 1
    end = redis_time(redis_server)
    assert granted <= bound(5, 20, start, end)
    assert granted >= 5 + 20 * 0.5 * 0.4  # the rate is reached, loosely


def test_non_blocking_returns_false_when_empty_and_blocking_waits(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter(requests_per_second=5, max_bucket_size=2)
    assert limiter.acquire(blocking=False) is True
    assert limiter.acquire(blocking=False) is True
    assert limiter.acquire(blocking=False) is False
    assert limiter.acquire(blocking=False) is False
    tic = time.monotonic()
    assert limiter.acquire() is True  # waits for the next token, about 0.2 s
    assert time.monotonic() - tic > 0.05


def test_two_limiters_with_one_key_share_the_bucket(
    redis_server: RedisServer, make_limiter: MakeLimiter
) -> None:
    first = make_limiter(key="budget", max_bucket_size=4)
    second = make_limiter(key="budget", max_bucket_size=4)
    start = redis_time(redis_server)
    granted = [limiter.acquire(blocking=False) for _ in range(5) for limiter in (first, second)]
    end = redis_time(redis_server)
    assert 4 <= sum(granted) <= bound(4, 1, start, end)
    assert granted[:4] == [True] * 4  # both limiters drew from it
    # Another key is another budget, still full.
    other = make_limiter(key="other budget", max_bucket_size=4)
    assert [other.acquire(blocking=False) for _ in range(4)] == [True] * 4


def _worker(
    url: str,
    barrier: Any,  # multiprocessing's Barrier and Queue proxies have no importable class
    results: Any,
    window: float,
) -> None:
    limiter = RedisRateLimiter(
        url=url, key="fleet", requests_per_second=10, max_bucket_size=3, timeout=2
    )
    barrier.wait(timeout=60)
    granted = 0
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        granted += limiter.acquire()
    results.put(granted)


def test_processes_share_one_budget(redis_server: RedisServer) -> None:
    processes, window = 3, 1.0
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes + 1)
    results = context.Queue()
    workers = [
        context.Process(target=_worker, args=(redis_server.url, barrier, results, window))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        start = redis_time(redis_server)
        barrier.wait(timeout=60)  # all processes have a limiter; they start together
        granted = [results.get(timeout=60) for _ in workers]
        end = redis_time(redis_server)
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    assert all(worker.exitcode == 0 for worker in workers)
    # Per-process buckets would give each process about as much as this bound allows all of them.
    assert sum(granted) <= bound(3, 10, start, end)
    assert sum(granted) >= 3 + 10 * window * 0.4
    assert all(n >= 1 for n in granted)


async def test_async_burst_rate_and_shared_with_sync(
    redis_server: RedisServer, make_limiter: MakeLimiter
) -> None:
    slow = make_limiter(key="slow", max_bucket_size=2)
    assert [await slow.aacquire(blocking=False) for _ in range(2)] == [True] * 2
    assert await slow.aacquire(blocking=False) is False
    assert slow.acquire(blocking=False) is False  # the sync side sees the same bucket
    await slow.aclose()

    limiter = make_limiter(requests_per_second=20, max_bucket_size=3)
    start = redis_time(redis_server)
    assert [await limiter.aacquire(blocking=False) for _ in range(3)] == [True] * 3
    granted = 3
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        assert await limiter.aacquire() is True
        granted += 1
    end = redis_time(redis_server)
    assert 3 + 20 * 0.5 * 0.4 <= granted <= bound(3, 20, start, end)
    await limiter.aclose()


async def test_async_tasks_share_the_bucket(
    redis_server: RedisServer, make_limiter: MakeLimiter
) -> None:
    limiter = make_limiter(requests_per_second=1, max_bucket_size=4)
    start = redis_time(redis_server)
    granted = await asyncio.gather(*(limiter.aacquire(blocking=False) for _ in range(10)))
    end = redis_time(redis_server)
    assert 4 <= sum(granted) <= bound(4, 1, start, end)
    await limiter.aclose()


def test_async_in_successive_event_loops(
    redis_server: RedisServer, make_limiter: MakeLimiter
) -> None:
    # Each asyncio.run() is a new loop: the limiter must not reuse a dead loop's connections.
    limiter = make_limiter(requests_per_second=1, max_bucket_size=3)
    results = [asyncio.run(limiter.aacquire(blocking=False)) for _ in range(4)]
    assert results[:3] == [True] * 3
    assert results[3] is False
    # Each loop closed its connection as it shut down: only this check's own remains.
    with redis.Redis.from_url(redis_server.url) as client:
        deadline = time.monotonic() + 1
        while len(client.client_list()) > 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # the server sees a close at its next turn
        assert len(client.client_list()) == 1


def test_given_clients_are_used_and_not_closed(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    limiter = RedisRateLimiter(client=client, key="given", max_bucket_size=2)
    assert limiter.acquire(blocking=False) is True
    # With only a sync client, aacquire runs its round trip in a thread, on the same bucket.
    assert asyncio.run(limiter.aacquire(blocking=False)) is True
    assert limiter.acquire(blocking=False) is False
    limiter.close()
    assert client.exists("given") == 1  # still open, and the bucket is where it was asked

    async def with_async_client() -> tuple[bool, bool]:
        async_client = redis.asyncio.Redis.from_url(redis_server.url)
        limiter = RedisRateLimiter(async_client=async_client, key="given async")
        results = (await limiter.aacquire(blocking=False), await limiter.aacquire(blocking=False))
        await limiter.aclose()
        assert await async_client.exists("given async") == 1
        await async_client.aclose()
        return results

    assert asyncio.run(with_async_client()) == (True, False)
    client.close()


def test_only_an_async_client_cannot_acquire_sync() -> None:
    limiter = RedisRateLimiter(async_client=redis.asyncio.Redis())
    with pytest.raises(ValueError, match="only async_client"):
        limiter.acquire()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"requests_per_second": 0}, "requests_per_second"),
        ({"max_bucket_size": 0.5}, "max_bucket_size"),
        ({"timeout": 0}, "timeout"),
        ({"retry_interval": -1}, "retry_interval"),
    ],
)
def test_settings_out_of_range(settings: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisRateLimiter(**settings)


# --- Redis away ---------------------------------------------------------------------------------


def test_redis_killed_then_back(
    redis_server: RedisServer, make_limiter: MakeLimiter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="langchain_lunar")
    limiter = make_limiter(requests_per_second=5, max_bucket_size=3, retry_interval=0.2)
    assert limiter.acquire(blocking=False) is True
    redis_server.kill()

    # Calls go on with a bucket of the same rate and size in this process (full, at first).
    assert [limiter.acquire(blocking=False) for _ in range(3)] == [True] * 3
    assert limiter.acquire(blocking=False) is False
    deadline = time.monotonic() + 0.5  # past the retry interval: a few failed probes
    while time.monotonic() < deadline:
        assert limiter.acquire() is True
    assert asyncio.run(limiter.aacquire()) is True
    assert len(fallback_warnings(caplog)) == 1
    assert back_logs(caplog) == []

    redis_server.start()  # the same port, empty
    with redis.Redis.from_url(redis_server.url) as client:
        time.sleep(0.25)  # the retry interval
        assert client.exists(limiter.key) == 0
        assert limiter.acquire() is True
        assert client.exists(limiter.key) == 1  # the take went to Redis
    assert len(back_logs(caplog)) == 1
    assert [limiter.acquire(blocking=False) for _ in range(2)] == [True, True]
    assert limiter.acquire(blocking=False) is False  # Redis's bucket, with its own burst
    assert len(fallback_warnings(caplog)) == 1
    assert len(back_logs(caplog)) == 1

    # A second outage is warned about again.
    redis_server.kill()
    assert limiter.acquire() is True
    assert len(fallback_warnings(caplog)) == 2


async def test_async_falls_back_when_redis_is_down(
    redis_server: RedisServer, make_limiter: MakeLimiter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="langchain_lunar")
    limiter = make_limiter(requests_per_second=20, max_bucket_size=2)
    assert await limiter.aacquire() is True
    redis_server.kill()
    assert [await limiter.aacquire() for _ in range(4)] == [True] * 4
    assert len(fallback_warnings(caplog)) == 1


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP port that accepts connections (in the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"


def test_a_silent_redis_costs_at_most_the_timeout(
    silent_server: str, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    caplog.set_level(logging.WARNING, logger="langchain_lunar")
    limiter = RedisRateLimiter(url=silent_server, timeout=0.2, retry_interval=60)
    request.addfinalizer(limiter.close)
    tic = time.monotonic()
    assert limiter.acquire() is True
    assert time.monotonic() - tic < 2  # not redis-py's default retries with backoff
    tic = time.monotonic()
    assert limiter.acquire(blocking=False) is False  # local bucket of size 1, not Redis again
    assert time.monotonic() - tic < 0.1
    assert len(fallback_warnings(caplog)) == 1


# --- With ChatLunar -----------------------------------------------------------------------------


async def test_chat_lunar_takes_its_tokens_from_redis(
    redis_server: RedisServer, make_limiter: MakeLimiter
) -> None:
    # Not among the module's imports: the spawned workers above import this module, and
    # ChatLunar would double their start-up time.
    from .helpers import Recorder, mock_model, text_stream

    limiter = make_limiter(requests_per_second=1, max_bucket_size=2)
    recorder = Recorder(text_stream("Hi", "!"))
    llm = mock_model(recorder, rate_limiter=limiter, streaming=True)
    assert llm.invoke("hello").content == "Hi!"
    assert (await llm.ainvoke("hello")).content == "Hi!"
    assert len(recorder.requests) == 2
    # Both calls took their token from Redis's bucket, which is now empty.
    assert limiter.acquire(blocking=False) is False
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.exists(limiter.key) == 1
    await limiter.aclose()


# --- Without the extra --------------------------------------------------------------------------


def test_importing_the_package_does_not_import_redis() -> None:
    code = (
        "import sys; import langchain_lunar; from langchain_lunar import ChatLunar; "
        "assert 'redis' not in sys.modules, 'redis imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_without_redis_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # what `import redis` finds uninstalled
    assert "RedisRateLimiter" in dir(langchain_lunar)
    with pytest.raises(ImportError, match=r'pip install "langchain-lunar\[redis\]"'):
        RedisRateLimiter()


def test_a_copy_of_a_model_shares_its_limiter(make_limiter: MakeLimiter) -> None:
    # One budget: a copy must draw from the same bucket, not from a copied lock and client.
    limiter = make_limiter()
    llm = ChatLunar(model="m", api_key="k", rate_limiter=limiter)
    assert copy.copy(limiter) is limiter
    assert copy.deepcopy(limiter) is limiter
    assert llm.model_copy(deep=True).rate_limiter is limiter
