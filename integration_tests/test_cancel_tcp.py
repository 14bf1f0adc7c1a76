"""Streams stopped at random points over real TCP leave no connection behind (issue 18).

Each stream is stopped one of four ways: ``task.cancel()``, an ``asyncio.wait_for()`` timeout,
``aclose()`` of the stream after some chunks, or ``task.cancel()`` twice (the second while the
first is being handled). The stops land anywhere from taking a connection from the pool to the
middle of the body. Afterwards the shared pool may hold idle keep-alive connections only, and
the process's open file descriptors are back where they were but for those.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from langchain_lunar import ChatLunar
from langchain_lunar.testing import LocalLunarServer

from .conftest import ServerFactory, model_for

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd (Linux)"
)

LONG = " ".join(f"word{i}" for i in range(300))
STOPS = 1000
AT_ONCE = 10  # streams stopped concurrently, so that 1,000 take a few seconds
WAYS = ("cancel", "wait_for", "aclose", "cancel_twice")
# Room for a connection or two still being torn down by a server thread.
SLACK = 4


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def pool_states(client: httpx.AsyncClient) -> Counter[str]:
    """The pool's connections by state (IDLE, ACTIVE, NEW, CONNECTING...), and its requests."""
    pool: Any = client._transport._pool  # type: ignore[attr-defined]
    states = Counter(state_of(connection.info()) for connection in pool.connections)
    states["requests"] = len(pool._requests)
    return states


def state_of(info: str) -> str:
    """The state word of a connection's ``info()``, e.g. "'http://..', HTTP/1.1, IDLE, ..."."""
    for state in ("CONNECTION FAILED", "CONNECTING", "ACTIVE", "IDLE", "CLOSED", "NEW"):
        if state in info:
            return state
    return info


def stop_delay(rng: random.Random) -> float:
    # A quarter while the request is taking a connection, connecting or being sent; the rest
    # while the body streams (a token every 2 ms).
    return rng.uniform(0, 0.001) if rng.random() < 0.25 else rng.uniform(0.001, 0.02)


async def read_all(llm: ChatLunar) -> None:
    async for _ in llm.astream("hi"):
        pass


async def stop_one(llm: ChatLunar, way: str, rng: random.Random) -> None:
    if way == "aclose":
        stream = llm.astream("hi")
        for _ in range(rng.randint(1, 10)):
            await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]
    elif way == "wait_for":
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(read_all(llm), stop_delay(rng))
    else:
        task = asyncio.ensure_future(read_all(llm))
        await asyncio.sleep(stop_delay(rng))
        task.cancel()
        if way == "cancel_twice":
            await asyncio.sleep(rng.choice((0, 0, 0.0002, 0.001)))
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def fds_allowed(before: int, idle_before: int, states: Counter[str]) -> int:
    # Each idle keep-alive connection holds two fds here: the server is in this process too.
    return before + 2 * max(0, states["IDLE"] - idle_before) + SLACK


async def settled(
    client: httpx.AsyncClient, before: int, idle_before: int
) -> tuple[Counter[str], int]:
    """The pool's states and the open fds, once nothing is left to close (or after 5 s)."""
    deadline = time.monotonic() + 5
    while True:
        await asyncio.sleep(0.02)
        gc.collect()  # a stream dropped in a reference cycle closes when it is collected
        states, fds = pool_states(client), open_fds()
        done = states["requests"] == 0 and set(states) <= {"IDLE", "requests"}
        if done and fds <= fds_allowed(before, idle_before, states):
            return states, fds
        if time.monotonic() > deadline:
            return states, fds


@pytest.fixture
def slow_server(make_server: ServerFactory) -> LocalLunarServer:
    return make_server(reply=LONG, token_delay=0.002)


async def test_a_thousand_streams_stopped_at_random_leave_no_connection(
    slow_server: LocalLunarServer,
) -> None:
    llm = model_for(slow_server, timeout=10)
    for _ in range(AT_ONCE):  # warm-up: the pool, imports, the server's threads
        await read_all(llm)
    client = llm._async_client()
    before = open_fds()
    idle_before = pool_states(client)["IDLE"]
    rng = random.Random(18)
    for first in range(0, STOPS, AT_ONCE):
        ways = [WAYS[i % len(WAYS)] for i in range(first, first + AT_ONCE)]
        await asyncio.gather(*(stop_one(llm, way, rng) for way in ways))

    states, fds = await settled(client, before, idle_before)
    assert states["requests"] == 0
    assert {state: n for state, n in states.items() if state not in ("IDLE", "requests")} == {}
    assert states["IDLE"] <= 100  # PoolKey's max_keepalive_connections
    assert fds <= fds_allowed(before, idle_before, states)
    # The pool still serves.
    assert len([chunk async for chunk in llm.astream("hi")]) > 100
    await llm.aclose()
