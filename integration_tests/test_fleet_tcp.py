"""A fleet of worker processes shares one Lunar budget through a real Redis.

Each worker is a separate Python process (spawned, as gunicorn or Celery workers are separate
interpreters) running many concurrent streams against the local server over TCP. The server
enforces a rate limit per key, or makes a model cool down, and counts what reaches it.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import pytest

from langchain_lunar.testing import LocalLunarServer, RateLimit, RedisServer

WORKERS = 4
STREAMS_PER_WORKER = 6
KEY = "fleet-key"
# A budget small enough that four workers exceed it many times over even on a loaded machine.
# The server's bucket holds one second's worth, as LocalLunarServer's RateLimit does by default.
SERVER_RPS, SERVER_BURST = 5.0, 5
# The fleet's limiter runs a little under the server's budget, with a smaller burst: a request
# reaches the server some time after its token was granted (hundreds of ms on a loaded 2-core
# machine), so grants that were spread out can arrive bunched. The difference in bursts absorbs
# delays of up to (5 - 1) / 4.75, about 0.8 s.
CLIENT_RPS, CLIENT_BURST = 4.75, 1
WINDOW = 3.0  # seconds of full load, after every worker is ready


def _worker(
    base_url: str,
    redis_url: str | None,
    settings: dict[str, Any],
    ready: Any,
    start: Any,
    results: Any,
) -> None:
    """One worker process: STREAMS_PER_WORKER streams in a loop for ``settings["seconds"]``."""
    import asyncio

    from langchain_lunar import ChatLunar, LunarError, RedisCooldowns, RedisRateLimiter

    fields: dict[str, Any] = {
        "model": settings.get("model", "gpt-4o-mini"),
        "base_url": base_url,
        "api_key": KEY,
        "max_retries": 0,
        "max_retry_wait": 5,
        "fallbacks": settings.get("fallbacks", []),
    }
    if settings.get("limiter") and redis_url:
        fields["rate_limiter"] = RedisRateLimiter(
            url=redis_url,
            requests_per_second=CLIENT_RPS,
            max_bucket_size=CLIENT_BURST,
            key="fleet-test",
            retry_interval=0.2,
        )
    if settings.get("cooldowns") and redis_url:
        fields["cooldowns"] = RedisCooldowns(url=redis_url)
    llm = ChatLunar(**fields)
    outcome: dict[str, Any] = {"ok": 0, "errors": [], "skips": 0, "waits": []}

    async def stream_once() -> None:
        try:
            chunks = [chunk async for chunk in llm.astream("hi")]
        except LunarError as error:
            outcome["errors"].append(type(error).__name__)
            return
        outcome["ok"] += 1
        for attempt in chunks[-1].response_metadata.get("failed_attempts", []):
            outcome["skips"] += attempt["then"] == "skip"
            outcome["waits"].append(attempt["wait"])

    async def run() -> None:
        end = time.monotonic() + settings["seconds"]

        async def loop() -> None:
            while time.monotonic() < end:
                await stream_once()

        await asyncio.gather(*(loop() for _ in range(STREAMS_PER_WORKER)))

    ready.put(True)
    start.wait()
    asyncio.run(run())
    results.put(outcome)


class Fleet:
    """Spawned worker processes, started together once all are ready."""

    def __init__(self, base_url: str, redis_url: str | None, **settings: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self.ready, self.results = context.Queue(), context.Queue()
        self.start = context.Event()
        self.processes = [
            context.Process(
                target=_worker,
                args=(base_url, redis_url, settings, self.ready, self.start, self.results),
            )
            for _ in range(WORKERS)
        ]

    def run(self, during: Any = None) -> list[dict[str, Any]]:
        for process in self.processes:
            process.start()
        for _ in self.processes:
            self.ready.get(timeout=60)
        began = time.monotonic()
        self.start.set()
        if during is not None:
            during()
        outcomes = [self.results.get(timeout=60) for _ in self.processes]
        self.elapsed = time.monotonic() - began
        return outcomes

    def stop(self) -> None:
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()


@pytest.fixture
def fleet_server() -> Iterator[LocalLunarServer]:
    with LocalLunarServer(reply="ok", rate_limit=RateLimit(SERVER_RPS, SERVER_BURST)) as server:
        yield server


def run_fleet(
    server: LocalLunarServer, redis: RedisServer | None, during: Any = None, **settings: Any
) -> list[dict[str, Any]]:
    """Run the fleet with ``settings``; ``during`` runs in this process once it has started."""
    fleet = Fleet(server.base_url, redis.url if redis else None, **settings)
    try:
        return fleet.run(during)
    finally:
        fleet.stop()


def test_with_a_shared_limiter_no_429_and_nearly_all_of_the_budget(
    fleet_server: LocalLunarServer, redis_server: RedisServer
) -> None:
    outcomes = run_fleet(fleet_server, redis_server, limiter=True, seconds=WINDOW)
    assert [o["errors"] for o in outcomes] == [[]] * WORKERS
    assert fleet_server.rate_limited == 0
    admitted = fleet_server.admitted_by_key[KEY]
    budget = SERVER_RPS * WINDOW  # the sustained budget over the window, bursts aside
    assert admitted >= 0.9 * budget, (admitted, budget)
    assert sum(o["ok"] for o in outcomes) == admitted


def test_without_it_the_fleet_runs_into_429s(fleet_server: LocalLunarServer) -> None:
    outcomes = run_fleet(fleet_server, None, seconds=1.0)
    assert fleet_server.rate_limited > 0
    assert any("RateLimitError" in o["errors"] for o in outcomes)


def test_a_cooling_model_gets_only_the_request_it_refused(
    redis_server: RedisServer,
) -> None:
    from langchain_lunar import ChatLunar, RedisCooldowns

    with LocalLunarServer(reply="ok") as server:
        server.cool("model-a", 30)
        first = ChatLunar(
            model="model-a",
            fallbacks=["model-b"],
            base_url=server.base_url,
            api_key=KEY,
            max_retry_wait=5,
            cooldowns=RedisCooldowns(url=redis_server.url),
        )
        assert first.invoke("hi").response_metadata["model_name"] == "model-b"
        outcomes = run_fleet(
            server,
            redis_server,
            model="model-a",
            fallbacks=["model-b"],
            cooldowns=True,
            seconds=1.0,
        )
        to_a = [r for r in server.requests if r.model == "model-a"]
        assert len(to_a) == 1  # the one that was refused, before the fleet started
        assert all(not o["errors"] for o in outcomes)
        calls = sum(o["ok"] for o in outcomes)
        assert sum(o["skips"] for o in outcomes) == calls > 0
        assert set(wait for o in outcomes for wait in o["waits"]) == {0.0}


def test_redis_killed_mid_run_calls_keep_succeeding(redis_server: RedisServer) -> None:
    with LocalLunarServer(reply="ok") as server:

        def kill_redis_soon() -> None:
            time.sleep(0.4)
            redis_server.kill()

        outcomes = run_fleet(
            server, redis_server, limiter=True, cooldowns=True, seconds=1.2, during=kill_redis_soon
        )
    assert all(not o["errors"] for o in outcomes)
    assert all(o["ok"] > 0 for o in outcomes)
