"""ChatLunar's async connection pools reclaim what cancelled requests leave behind (issue 18).

httpcore 1.0's clean-up is shielded from anyio cancellation only, not from asyncio's own
``Task.cancel()``; these tests put a pool in the states such a cancellation leaves, one at a
time. (integration_tests/test_cancel_tcp.py stops 1,000 real streams at random points.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpcore
import httpx
import pytest

from langchain_lunar import ChatLunar
from langchain_lunar._clients import ClientPool, PoolKey
from langchain_lunar.testing import LocalLunarServer

LONG = " ".join(f"word{i}" for i in range(200))


@pytest.fixture
def server() -> Iterator[LocalLunarServer]:
    with LocalLunarServer(reply=LONG, token_delay=0.005) as started:
        yield started


def model_for(server: LocalLunarServer) -> ChatLunar:
    llm = ChatLunar(model="m", api_key="sk-local", base_url=server.base_url, max_retries=0)
    llm._clients = ClientPool(PoolKey(max_connections=9))  # a pool no other test holds
    return llm


def pool_of(client: httpx.AsyncClient) -> Any:
    return client._transport._pool  # type: ignore[attr-defined]


class Orphan:
    """A connection that no request owns and that is neither idle nor closed: what httpcore
    1.0 leaves when a cancellation lands just after connecting (NEW) or during the clean-up of
    an earlier one (ACTIVE)."""

    def __init__(self) -> None:
        self.closed = False

    def is_idle(self) -> bool:
        return False

    def is_closed(self) -> bool:
        return self.closed

    def has_expired(self) -> bool:
        return False

    def is_available(self) -> bool:
        return False

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return False

    def info(self) -> str:
        return "NEW"

    async def aclose(self) -> None:
        self.closed = True


async def test_a_connection_no_request_owns_is_closed_at_the_next_request(
    server: LocalLunarServer,
) -> None:
    llm = model_for(server)
    await llm.ainvoke("hi")
    pool = pool_of(llm._async_client())
    orphan = Orphan()
    pool._connections.append(orphan)
    await llm.ainvoke("hi")
    assert orphan.closed
    assert orphan not in pool.connections
    assert [connection.is_idle() for connection in pool.connections] == [True]
    await llm.aclose()


async def test_a_response_is_closed_even_when_its_closer_is_cancelled(
    server: LocalLunarServer,
) -> None:
    llm = model_for(server)
    client = llm._async_client()
    pool = pool_of(client)
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with client.stream("POST", server.base_url + "/chat/completions", json=body) as response:
        await anext(response.aiter_bytes())
        # Closing takes a while (the connection's state lock, say), and the closer is
        # cancelled meanwhile: an anyio shield does not stop asyncio's Task.cancel().
        connection = pool.connections[0]._connection
        let_close = asyncio.Event()
        response_closed = connection._response_closed

        async def slow_response_closed() -> None:
            await let_close.wait()
            await response_closed()

        connection._response_closed = slow_response_closed
        closer = asyncio.ensure_future(response.aclose())
        await asyncio.sleep(0.01)
        closer.cancel()
        await asyncio.gather(closer, return_exceptions=True)
        assert closer.cancelled()
        let_close.set()
        for _ in range(50):
            if not pool._requests:
                break
            await asyncio.sleep(0.01)
    # The request has left the pool, and its half-read connection is closed, not kept.
    assert pool._requests == []
    assert [connection.info() for connection in pool.connections] == []
    assert await asyncio.to_thread(server.wait_for_disconnects, 1, 1)
    await llm.aclose()


async def test_only_httpcore_pools_are_changed_and_only_once() -> None:
    from langchain_lunar._pool_reclaim import reclaim_orphans

    mocked = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    reclaim_orphans(mocked)  # no pool: nothing to change
    assert type(mocked._transport) is httpx.MockTransport
    plain = httpx.AsyncClient()
    pool_class = type(pool_of(plain))
    reclaim_orphans(plain)
    reclaim_orphans(plain)
    changed = type(pool_of(plain))
    assert changed is not pool_class
    assert changed.__bases__[1] is pool_class  # the mixin once, not the mixin of the mixin
    await mocked.aclose()
    await plain.aclose()
