"""Aborting a stream closes the upstream HTTP request; thousands of aborts leak nothing."""

from __future__ import annotations

import asyncio
import os

import pytest

from langchain_lunar.testing import LocalLunarServer

from .conftest import ServerFactory, model_for

LONG = " ".join(f"word{i}" for i in range(400))


@pytest.fixture
def slow_server(make_server: ServerFactory) -> LocalLunarServer:
    return make_server(reply=LONG, token_delay=0.01)


def test_break_out_of_stream_closes_the_request(slow_server: LocalLunarServer) -> None:
    for n, _ in enumerate(model_for(slow_server).stream("hi")):
        if n == 2:
            break
    assert slow_server.wait_for_disconnects(1, timeout=5)


async def test_cancelled_astream_task_closes_the_request(slow_server: LocalLunarServer) -> None:
    got_one = asyncio.Event()

    async def consume() -> None:
        async for _ in model_for(slow_server).astream("hi"):
            got_one.set()

    task = asyncio.create_task(consume())
    await got_one.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await asyncio.to_thread(slow_server.wait_for_disconnects, 1, 5)


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files through /proc")
def test_a_thousand_aborted_streams_leak_nothing(make_server: ServerFactory) -> None:
    # 400 tokens 2 ms apart: each stream is still being written when it is aborted.
    slow_server = make_server(reply=LONG, token_delay=0.002)
    llm = model_for(slow_server)
    for _ in range(20):  # warm up: pool, imports, server threads
        stream = llm.stream("hi")
        next(stream)
        stream.close()
    before = open_descriptors()
    for _ in range(1000):
        stream = llm.stream("hi")
        next(stream)
        stream.close()
    assert slow_server.wait_for_disconnects(1020, timeout=20)
    # The server is in this process too: both ends of every aborted connection are closed.
    assert open_descriptors() <= before + 5
