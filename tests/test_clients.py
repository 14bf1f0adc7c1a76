"""Shared httpx clients: who shares them, who closes them, and the user's own clients."""

from __future__ import annotations

import asyncio
import copy
import itertools
import os
import pickle
import threading

import httpx
import pytest

from langchain_lunar import ChatLunar
from langchain_lunar import _clients as registry
from langchain_lunar._clients import ClientPool, PoolKey

from .helpers import Recorder, mock_model, text_stream

# A pool of its own for each test that closes one: the default pool is held by every other
# test's instance that was never closed, so closing it can only be observed with a new key.
_fresh_limits = itertools.count(10_000)


def fresh_key() -> PoolKey:
    return PoolKey(max_connections=next(_fresh_limits))


def model(key: PoolKey | None = None) -> ChatLunar:
    llm = ChatLunar(model="m", api_key="k")
    if key is not None:
        llm._clients = ClientPool(key)
    return llm


def test_instances_with_the_same_settings_share_one_client() -> None:
    first, second = model(), model()
    assert first._sync_client() is second._sync_client()

    async def both() -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
        return first._async_client(), second._async_client()

    one, other = asyncio.run(both())
    assert one is other


def test_instances_with_other_settings_do_not_share() -> None:
    assert model()._sync_client() is not model(fresh_key())._sync_client()


def test_the_key_builds_the_clients_it_names() -> None:
    key = fresh_key()
    pool = key.new_sync_client()._transport._pool  # type: ignore[attr-defined]
    assert pool._max_connections == key.max_connections
    assert pool._max_keepalive_connections == key.max_keepalive_connections


def test_a_client_is_closed_when_its_last_holder_closes() -> None:
    key = fresh_key()
    first, second = model(key), model(key)
    client = first._sync_client()
    assert second._sync_client() is client
    first.close()
    assert not client.is_closed  # the second instance still holds it
    second.close()
    assert client.is_closed
    assert key not in registry._sync_clients


def test_an_instance_never_closed_keeps_the_client_open() -> None:
    key = fresh_key()
    kept, closed = model(key), model(key)
    client = kept._sync_client()
    closed._sync_client()
    closed.close()
    del kept
    assert not client.is_closed  # the process keeps it, for the next instances
    assert model(key)._sync_client() is client


def test_close_twice_and_close_unused_are_harmless() -> None:
    key = fresh_key()
    unused, used, other = model(key), model(key), model(key)
    client = used._sync_client()
    other._sync_client()
    unused.close()
    used.close()
    used.close()  # must not give back the share `other` holds
    assert not client.is_closed
    other.close()
    assert client.is_closed


def test_a_closed_instance_opens_a_new_client_on_its_next_call() -> None:
    llm = model(fresh_key())
    old = llm._sync_client()
    llm.close()
    new = llm._sync_client()
    assert new is not old
    assert old.is_closed
    assert not new.is_closed
    llm.close()
    assert new.is_closed


def test_concurrent_first_calls_take_one_share_each() -> None:
    key = fresh_key()
    models = [model(key) for _ in range(8)]
    start = threading.Barrier(len(models) * 2)

    def use(llm: ChatLunar) -> None:
        start.wait()
        llm._sync_client()

    threads = [threading.Thread(target=use, args=(llm,)) for llm in models for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client = models[0]._sync_client()
    assert all(llm._sync_client() is client for llm in models)
    for llm in models[:-1]:
        llm.close()
    assert not client.is_closed
    models[-1].close()
    assert client.is_closed


def test_close_leaves_the_users_clients_open() -> None:
    recorder = Recorder(text_stream("a"))
    llm = mock_model(recorder)
    assert llm.http_client is not None
    assert llm.http_async_client is not None
    with llm:
        llm.invoke("hi", stream=True)
    llm.close()

    async def ask() -> None:
        async with llm:
            await llm.ainvoke("hi", stream=True)
        await llm.aclose()

    asyncio.run(ask())
    assert len(recorder.requests) == 2
    assert not llm.http_client.is_closed
    assert not llm.http_async_client.is_closed
    llm.invoke("hi", stream=True)  # still usable
    assert len(recorder.requests) == 3


def test_with_returns_the_instance_and_closes_its_clients() -> None:
    llm = model(fresh_key())
    with llm as entered:
        assert entered is llm
        client = llm._sync_client()
    assert client.is_closed


async def test_async_with_returns_the_instance_and_closes_its_clients() -> None:
    key = fresh_key()
    llm = model(key)
    async with llm as entered:
        assert entered is llm
        client = llm._async_client()
        sync = llm._sync_client()
    assert client.is_closed  # aclose() waited for it
    assert sync.is_closed
    assert key not in registry._loops[asyncio.get_running_loop()].shared


async def test_sync_close_in_a_running_loop_closes_its_client_soon() -> None:
    llm = model(fresh_key())
    client = llm._async_client()
    llm.close()
    for _ in range(10):
        if client.is_closed:
            break
        await asyncio.sleep(0)
    assert client.is_closed


def test_close_from_another_thread_closes_the_client_on_its_loop() -> None:
    llm = model(fresh_key())
    used = threading.Event()
    closed_in_time: list[bool] = []

    async def serve() -> None:
        client = llm._async_client()
        used.set()
        for _ in range(5000):
            if client.is_closed:
                break
            await asyncio.sleep(0.001)
        closed_in_time.append(client.is_closed)

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    assert used.wait(5)
    llm.close()
    thread.join()
    assert closed_in_time == [True]


def test_successive_asyncio_runs_each_get_an_open_client_and_close_it() -> None:
    llm = model()

    async def lookup() -> httpx.AsyncClient:
        client = llm._async_client()
        assert not client.is_closed
        return client

    first = asyncio.run(lookup())
    assert first.is_closed  # the loop shut down: its clients with it, instance still open
    second = asyncio.run(lookup())
    assert second is not first
    assert second.is_closed


def test_a_loop_closed_without_shutting_down_is_forgotten_at_the_next_lookup() -> None:
    llm = model()

    async def lookup() -> httpx.AsyncClient:
        return llm._async_client()

    loop = asyncio.new_event_loop()
    try:
        stale = loop.run_until_complete(lookup())
    finally:
        loop.close()  # no shutdown_asyncgens(): nothing closed the client
    assert not stale.is_closed
    assert loop in registry._loops
    asyncio.run(lookup())
    assert loop not in registry._loops
    assert loop not in llm._clients._async


def test_pickle_and_deepcopy_give_a_new_share_of_the_same_pool() -> None:
    llm = model()
    client = llm._sync_client()
    for clone in (pickle.loads(pickle.dumps(llm)), copy.deepcopy(llm)):
        assert clone == llm
        assert clone._clients is not llm._clients
        assert clone._sync_client() is client


def test_copies_and_bindings_share_the_instance_and_reopen_after_close() -> None:
    llm = model(fresh_key())
    clone = llm.model_copy(update={"temperature": 0.5})
    bound = llm.bind(stop=["x"])
    client = llm._sync_client()
    assert clone._sync_client() is client
    assert bound.bound is llm  # type: ignore[attr-defined]
    llm.close()  # a shallow copy shares the instance's share: closed too
    assert client.is_closed
    reopened = clone._sync_client()
    assert not reopened.is_closed
    assert llm._sync_client() is reopened


def test_the_default_instance_takes_the_default_key() -> None:
    assert model()._clients._key == PoolKey()


def test_instances_with_equal_fields_are_equal() -> None:
    assert model() == model()
    assert model() != model(fresh_key())


@pytest.mark.parametrize("key", [PoolKey(), fresh_key()])
def test_keys_are_values(key: PoolKey) -> None:
    assert pickle.loads(pickle.dumps(key)) == key
    assert {key: 1}[PoolKey(key.max_connections, key.max_keepalive_connections)] == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_use_its_parents_clients() -> None:
    llm = model()
    parent = llm._sync_client()
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status, run nothing of pytest's
        fresh = ChatLunar(model="m", api_key="k")._sync_client()
        ok = llm._sync_client() is fresh and fresh is not parent and not parent.is_closed
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert llm._sync_client() is parent
