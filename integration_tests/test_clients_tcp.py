"""Sockets over real TCP: many short-lived ChatLunar instances leave no file descriptors open.

Counts this process's open file descriptors (Linux ``/proc/self/fd``); the server runs in this
process too, so each connection counts twice while it is open.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import warnings
from collections.abc import Iterator

import pytest

from langchain_lunar import ChatLunar
from langchain_lunar._clients import ClientPool, PoolKey
from langchain_lunar.testing import LocalLunarServer

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd (Linux)"
)

# Room for a connection or two still being torn down by a server thread.
SLACK = 4


@pytest.fixture
def server() -> Iterator[LocalLunarServer]:
    with LocalLunarServer(reply="ok") as started:
        yield started


@pytest.fixture
def no_resource_warnings() -> Iterator[None]:
    """Fail if a socket or transport was left for the garbage collector to close."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settled_fds(at_most: int, timeout: float = 5.0) -> int:
    """The fd count once it is ``at_most`` or lower (server threads close their ends late)."""
    deadline = time.monotonic() + timeout
    while (count := open_fds()) > at_most and time.monotonic() < deadline:
        time.sleep(0.01)
    return count


def llm_for(server: LocalLunarServer, key: PoolKey | None = None) -> ChatLunar:
    llm = ChatLunar(model="m", base_url=server.base_url, max_retries=0)
    if key is not None:
        llm._clients = ClientPool(key)  # a pool no other test's instance holds
    return llm


@pytest.mark.usefixtures("no_resource_warnings")
def test_a_thousand_instances_share_one_connection(server: LocalLunarServer) -> None:
    llm_for(server).invoke("hi")  # warm-up: the shared pool and its connection exist
    before = open_fds()
    for _ in range(1000):
        assert llm_for(server).invoke("hi").content == "ok"
    assert settled_fds(before + SLACK) <= before + SLACK
    assert server.connections == 1


@pytest.mark.usefixtures("no_resource_warnings")
def test_closed_instances_close_their_sockets(server: LocalLunarServer) -> None:
    before = open_fds()
    for _ in range(200):
        # Each the only holder of its pool: the pool and its connection end with the block.
        with llm_for(server, PoolKey(max_connections=7)) as llm:
            llm.invoke("hi")
    assert server.connections == 200
    assert settled_fds(before + SLACK) <= before + SLACK


@pytest.mark.usefixtures("no_resource_warnings")
def test_async_instances_in_one_loop_share_one_connection(
    server: LocalLunarServer,
) -> None:
    async def calls() -> tuple[int, int]:
        await llm_for(server).ainvoke("hi")
        before = open_fds()
        for _ in range(300):
            assert (await llm_for(server).ainvoke("hi")).content == "ok"
        return before, settled_fds(before + SLACK)

    before, after = asyncio.run(calls())
    assert after <= before + SLACK
    assert server.connections == 1


@pytest.mark.usefixtures("no_resource_warnings")
def test_each_asyncio_run_closes_its_loops_connections(server: LocalLunarServer) -> None:
    llm = llm_for(server)
    asyncio.run(llm.ainvoke("hi"))
    before = settled_fds(open_fds())
    for _ in range(60):
        assert asyncio.run(llm.ainvoke("hi")).content == "ok"
        assert asyncio.run(llm_for(server).ainvoke("hi")).content == "ok"
    assert server.connections == 121  # one per loop: a closed loop's connections are dead
    assert settled_fds(before + SLACK) <= before + SLACK


@pytest.mark.usefixtures("no_resource_warnings")
def test_loops_closed_without_shutdown_have_their_sockets_released(
    server: LocalLunarServer,
) -> None:
    """``loop.close()`` without ``shutdown_asyncgens()``: nothing could close the client on its
    loop; the next look-up in another loop closes its sockets."""
    llm = llm_for(server)
    asyncio.run(llm.ainvoke("hi"))
    before = settled_fds(open_fds())
    for _ in range(50):
        loop = asyncio.new_event_loop()
        assert loop.run_until_complete(llm.ainvoke("hi")).content == "ok"
        loop.close()
    # The last loop's connection is still open: nothing has looked a client up since.
    assert settled_fds(before + 2 + SLACK) <= before + 2 + SLACK
    asyncio.run(llm.ainvoke("hi"))
    assert server.connections == 52
    assert settled_fds(before + SLACK) <= before + SLACK
