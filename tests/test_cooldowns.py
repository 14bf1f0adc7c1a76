"""Shared cooldowns: a 429 or 503 that asks for a wait makes every ChatLunar sharing the store
skip that model until then; and every request takes a token of the rate limiter."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from langchain_core.rate_limiters import BaseRateLimiter

from langchain_lunar import (
    ChatLunar,
    CooldownStore,
    InProcessCooldowns,
    RateLimitError,
    RedisCooldowns,
)
from langchain_lunar._cooldowns import NO_KEY, cooldown_scope, default_cooldowns
from langchain_lunar.testing import RedisServer

from .calls import ASYNC_WAYS, CallWay, all_ways, answer, call_sync, invoking_ways
from .helpers import mock_model
from .test_retries import Responders, Sleeps, ok, status

BASE_URL = "https://api.lunar-sys.com/v1"

SLOW_DOWN = {"Retry-After": "30"}


def build(
    script: Responders, *, cooldowns: Any = "default", **fields: Any
) -> tuple[ChatLunar, Sleeps]:
    """A model answering through ``script`` whose sleeps are recorded, not slept."""
    fields.setdefault("max_retries", 0)
    fields.setdefault("backoff_jitter", 0)
    if cooldowns != "default":
        fields["cooldowns"] = cooldowns
    model = mock_model(script, **fields)
    sleeps = Sleeps()
    model._sleep = sleeps
    model._asleep = sleeps.asleep
    return model, sleeps


def fresh_key() -> str:
    """A key no other test uses, so that the process-wide store holds nothing for it."""
    return f"sk-{uuid.uuid4().hex}"


def key_of(model: str, api_key: str, base_url: str = BASE_URL) -> str:
    return cooldown_scope(InProcessCooldowns(), base_url, {"x-api-key": api_key}).key(model)


@pytest.fixture
def store() -> InProcessCooldowns:
    return InProcessCooldowns()


# --- One process ---------------------------------------------------------------------------


@all_ways
async def test_another_instance_skips_the_cooling_model_without_a_request(way: CallWay) -> None:
    key = fresh_key()  # the default, process-wide store
    first_script = Responders(status(429, SLOW_DOWN), ok("claude-3-haiku"))
    first, _ = build(first_script, api_key=key, fallbacks=["claude-3-haiku"], max_retry_wait=5)
    await answer(first, way)
    assert first_script.models == ["gpt-4o-mini", "claude-3-haiku"]

    second_script = Responders(ok("claude-3-haiku"))
    second, sleeps = build(second_script, api_key=key, fallbacks=["claude-3-haiku"])
    message = await answer(second, way)
    assert second_script.models == ["claude-3-haiku"]  # gpt-4o-mini was not asked
    assert sleeps.waits == []
    assert message.response_metadata["model_name"] == "claude-3-haiku"
    [skip] = message.response_metadata["failed_attempts"]
    assert skip.pop("message").startswith("gpt-4o-mini cools down until ")
    assert skip == {
        "model": "gpt-4o-mini",
        "error": "CoolingDown",
        "status_code": None,
        "wait": 0.0,
        "then": "skip",
    }


def test_the_default_store_is_one_per_process() -> None:
    a = ChatLunar(model="m", api_key="k")
    b = ChatLunar(model="n", api_key="other", base_url="http://localhost:1")
    assert a.cooldowns is b.cooldowns is default_cooldowns()
    assert isinstance(a.cooldowns, InProcessCooldowns)


async def a_429_cools_the_model(way: CallWay, store: InProcessCooldowns) -> None:
    """A first call that the model refuses with SLOW_DOWN, too long to wait for: it cools."""
    first, _ = build(Responders(status(429, SLOW_DOWN)), cooldowns=store, max_retry_wait=5)
    with pytest.raises(RateLimitError):
        await answer(first, way)


@all_ways
async def test_the_last_model_cooling_is_waited_for_within_max_retry_wait(
    way: CallWay, store: InProcessCooldowns
) -> None:
    await a_429_cools_the_model(way, store)

    script = Responders(ok("gpt-4o-mini"))
    second, sleeps = build(script, cooldowns=store, max_retry_wait=60)
    message = await answer(second, way)
    assert script.models == ["gpt-4o-mini"]  # asked once, after the wait
    [waited] = sleeps.waits
    assert 29 < waited <= 30
    [entry] = message.response_metadata["failed_attempts"]
    assert (entry["error"], entry["status_code"], entry["then"]) == ("CoolingDown", None, "wait")
    assert entry["wait"] == waited


@all_ways
async def test_a_cooldown_extended_during_the_wait_is_looked_at_again(
    way: CallWay, store: InProcessCooldowns
) -> None:
    key = key_of("gpt-4o-mini", "test-key")
    store.cool(key, time.time() + 30)
    script = Responders(ok("gpt-4o-mini"))
    llm, sleeps = build(script, cooldowns=store, max_retry_wait=60)

    def another_worker_is_told_to_wait_longer(seconds: float) -> None:
        sleeps.waits.append(seconds)
        store.cool(key, time.time() + 100)

    async def asleep(seconds: float) -> None:
        another_worker_is_told_to_wait_longer(seconds)

    llm._sleep = another_worker_is_told_to_wait_longer
    llm._asleep = asleep
    with pytest.raises(RateLimitError) as caught:
        await answer(llm, way)
    assert script.models == []
    assert len(sleeps.waits) == 1
    assert caught.value.retry_after is not None
    assert 99 < caught.value.retry_after <= 100
    assert [a["then"] for a in caught.value.failed_attempts] == ["wait", "raise"]


@all_ways
async def test_a_cooldown_longer_than_max_retry_wait_raises_without_a_request(
    way: CallWay, store: InProcessCooldowns
) -> None:
    await a_429_cools_the_model(way, store)

    script = Responders(ok("gpt-4o-mini"))
    second, sleeps = build(script, cooldowns=store, max_retries=2, max_retry_wait=10)
    with pytest.raises(RateLimitError) as caught:
        await answer(second, way)
    assert script.models == []
    assert sleeps.waits == []
    error = caught.value
    assert error.retry_after is not None
    assert 29 < error.retry_after <= 30
    assert error.status_code == 429
    assert "gpt-4o-mini cools down until" in str(error)
    assert "shared cooldown" in str(error)
    assert [(a["error"], a["then"]) for a in error.failed_attempts] == [("RateLimitError", "raise")]


@all_ways
async def test_every_model_cooling_skips_to_the_last_then_raises(
    way: CallWay, store: InProcessCooldowns
) -> None:
    for model in ("a", "b"):
        store.cool(key_of(model, "test-key"), time.time() + 30)
    script = Responders(ok("b"))
    llm, _ = build(script, cooldowns=store, model="a", fallbacks=["b"], max_retry_wait=5)
    with pytest.raises(RateLimitError) as caught:
        await answer(llm, way)
    assert script.models == []
    assert [(a["model"], a["then"]) for a in caught.value.failed_attempts] == [
        ("a", "skip"),
        ("b", "raise"),
    ]


@pytest.mark.parametrize(
    "other",
    [{"base_url": "https://eu.lunar-sys.com/v1"}, {"api_key": "another-key"}, {"model": "other"}],
    ids=["base_url", "api_key", "model"],
)
def test_only_the_same_model_base_url_and_key_is_skipped(
    other: dict[str, Any], store: InProcessCooldowns
) -> None:
    first, _ = build(Responders(status(429, SLOW_DOWN), ok("b")), cooldowns=store, fallbacks=["b"])
    first.invoke("hi")
    assert len(store) == 1

    script = Responders(ok("gpt-4o-mini"))
    fields: dict[str, Any] = {"fallbacks": ["b"], **other}
    second, _ = build(script, cooldowns=store, **fields)
    message = second.invoke("hi")
    assert script.models == [fields.get("model", "gpt-4o-mini")]
    assert "failed_attempts" not in message.response_metadata


def test_a_per_call_key_and_base_url_have_their_own_cooldowns(store: InProcessCooldowns) -> None:
    script = Responders(status(429, SLOW_DOWN), ok("b"), ok("gpt-4o-mini"), ok("b"))
    llm, _ = build(script, cooldowns=store, fallbacks=["b"])
    llm.invoke("hi", api_key="per-call-key")
    llm.invoke("hi")  # the field's key: not cooling
    llm.invoke("hi", api_key="per-call-key")  # cooling: skipped
    assert script.models == ["gpt-4o-mini", "b", "gpt-4o-mini", "b"]


def test_the_key_is_never_kept_in_clear(store: InProcessCooldowns) -> None:
    key = "sk-canary-cooldown-4711"
    llm, _ = build(Responders(status(429, SLOW_DOWN)), cooldowns=store, api_key=key)
    with pytest.raises(RateLimitError):
        llm.invoke("hi")
    [stored] = store._until
    assert key not in stored
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert stored == f"{BASE_URL}|{digest}|gpt-4o-mini"
    assert key not in repr(store)


def test_without_a_key_the_cooldown_is_kept_under_a_marker(store: InProcessCooldowns) -> None:
    script = Responders(status(429, SLOW_DOWN))
    llm, _ = build(script, cooldowns=store, api_key=None, base_url="http://localhost:9")
    with pytest.raises(RateLimitError):
        llm.invoke("hi")
    assert list(store._until) == [f"http://localhost:9|{NO_KEY}|gpt-4o-mini"]


@pytest.mark.parametrize(
    "headers",
    [{"Retry-After": "30"}, {"retry-after-ms": "30000"}, {"llm_provider-retry-after": "30"}],
)
@pytest.mark.parametrize("code", [429, 503])
def test_a_429_or_503_with_a_wait_cools(
    code: int, headers: dict[str, str], store: InProcessCooldowns
) -> None:
    first, _ = build(Responders(status(code, headers), ok("b")), cooldowns=store, fallbacks=["b"])
    first.invoke("hi")
    until = store.until(key_of("gpt-4o-mini", "test-key"))
    assert until is not None
    assert 29 < until - time.time() <= 30

    script = Responders(ok("b"))
    second, _ = build(script, cooldowns=store, fallbacks=["b"])
    second.invoke("hi")
    assert script.models == ["b"]


def test_a_wait_in_the_body_cools(store: InProcessCooldowns) -> None:
    body = {"error": {"message": "slow down"}, "retry_after": 30}
    llm, _ = build(Responders(status(429, body=body), ok("b")), cooldowns=store, fallbacks=["b"])
    llm.invoke("hi")
    assert store.until(key_of("gpt-4o-mini", "test-key")) is not None


@pytest.mark.parametrize(
    ("code", "headers"),
    [(429, {}), (503, {}), (429, {"Retry-After": "0"}), (500, SLOW_DOWN), (504, SLOW_DOWN)],
)
def test_no_wait_or_another_status_does_not_cool(
    code: int, headers: dict[str, str], store: InProcessCooldowns
) -> None:
    script = Responders(status(code, headers), ok("b"), ok("gpt-4o-mini"))
    llm, _ = build(script, cooldowns=store, fallbacks=["b"], max_retry_wait=5)
    llm.invoke("hi")
    llm.invoke("hi")
    assert len(store) == 0
    assert script.models == ["gpt-4o-mini", "b", "gpt-4o-mini"]


@all_ways
async def test_cooldowns_none_turns_sharing_off(way: CallWay) -> None:
    key = fresh_key()
    script = Responders(status(429, SLOW_DOWN), ok("b"), ok("gpt-4o-mini"))
    llm, _ = build(script, cooldowns=None, api_key=key, fallbacks=["b"], max_retry_wait=5)
    await answer(llm, way)
    await answer(llm, way)
    assert script.models == ["gpt-4o-mini", "b", "gpt-4o-mini"]
    assert default_cooldowns().until(key_of("gpt-4o-mini", key)) is None


@all_ways
async def test_a_retry_after_the_servers_wait_is_not_skipped_for_its_own_cooldown(
    way: CallWay, store: InProcessCooldowns
) -> None:
    # The wait was slept (here: recorded, not slept), so the model must be asked again, once.
    script = Responders(status(429, {"Retry-After": "1"}), ok("gpt-4o-mini"))
    llm, sleeps = build(script, cooldowns=store, max_retries=2, fallbacks=["b"])
    message = await answer(llm, way)
    assert script.models == ["gpt-4o-mini", "gpt-4o-mini"]
    assert sleeps.waits == [1.0]
    assert [a["then"] for a in message.response_metadata["failed_attempts"]] == ["retry"]
    assert store.until(key_of("gpt-4o-mini", "test-key")) is not None  # recorded all the same


@all_ways
async def test_a_longer_cooldown_recorded_meanwhile_is_skipped_at_the_retry(
    way: CallWay, store: InProcessCooldowns
) -> None:
    script = Responders(status(429, {"Retry-After": "1"}), ok("b"))
    llm, sleeps = build(script, cooldowns=store, max_retries=2, fallbacks=["b"])

    def another_worker_is_told_to_wait(seconds: float) -> None:
        sleeps.waits.append(seconds)
        store.cool(key_of("gpt-4o-mini", "test-key"), time.time() + 100)

    async def asleep(seconds: float) -> None:
        another_worker_is_told_to_wait(seconds)

    llm._sleep = another_worker_is_told_to_wait
    llm._asleep = asleep
    message = await answer(llm, way)
    assert script.models == ["gpt-4o-mini", "b"]
    assert [(a["model"], a["then"]) for a in message.response_metadata["failed_attempts"]] == [
        ("gpt-4o-mini", "retry"),
        ("gpt-4o-mini", "skip"),
    ]


def test_a_custom_store_is_used_sync_and_async() -> None:
    class Recording:
        def __init__(self) -> None:
            self.calls: list[tuple[str, str]] = []

        def until(self, key: str) -> float | None:
            self.calls.append(("until", key))
            return None

        def cool(self, key: str, until: float) -> None:
            self.calls.append(("cool", key))

        async def auntil(self, key: str) -> float | None:
            self.calls.append(("auntil", key))
            return None

        async def acool(self, key: str, until: float) -> None:
            self.calls.append(("acool", key))

    custom = Recording()
    assert isinstance(custom, CooldownStore)
    script = Responders(status(503, SLOW_DOWN), ok("b"), status(503, SLOW_DOWN), ok("b"))
    llm, _ = build(script, cooldowns=custom, fallbacks=["b"])
    llm.invoke("hi")
    asyncio.run(llm.ainvoke("hi"))
    a, b = key_of("gpt-4o-mini", "test-key"), key_of("b", "test-key")
    assert custom.calls == [
        ("until", a),
        ("cool", a),
        ("until", b),
        ("auntil", a),
        ("acool", a),
        ("auntil", b),
    ]


def test_the_store_keeps_the_later_cooldown_and_forgets_expired_ones(
    store: InProcessCooldowns,
) -> None:
    now = time.time()
    store.cool("k", now + 10)
    store.cool("k", now + 5)
    assert store.until("k") == now + 10
    store.cool("k", now + 20)
    assert store.until("k") == now + 20
    store.cool("old", now - 1)
    assert store.until("old") is None
    assert "old" not in store._until
    assert len(store) == 1


def test_a_cooldown_store_is_neither_serialized_nor_a_per_call_setting() -> None:
    from langchain_core.load import dumpd

    script = Responders(ok("gpt-4o-mini"))
    llm, _ = build(script, cooldowns=InProcessCooldowns())
    assert "cooldowns" not in dumpd(llm)["kwargs"]
    with pytest.raises(ValueError, match="setting of the model"):
        llm.invoke("hi", cooldowns=InProcessCooldowns())
    assert script.models == []


def test_without_the_redis_package_nothing_imports_it() -> None:
    code = """
import sys
sys.modules["redis"] = None  # as if not installed: importing it raises ImportError
import langchain_lunar as lunar
llm = lunar.ChatLunar(model="m", api_key="k")
assert isinstance(llm.cooldowns, lunar.InProcessCooldowns)
assert isinstance(llm.cooldowns, lunar.CooldownStore)
try:
    lunar.RedisCooldowns(url="redis://localhost:6379/0")
except ImportError as error:
    assert 'pip install "langchain-lunar[redis]"' in str(error), error
else:
    raise AssertionError("no ImportError")
"""
    subprocess.run([sys.executable, "-c", code], check=True)


# --- Every request takes a token of the rate limiter --------------------------------------


class CountingLimiter(BaseRateLimiter):
    def __init__(self) -> None:
        self.taken = 0

    def acquire(self, *, blocking: bool = True) -> bool:
        self.taken += 1
        return True

    async def aacquire(self, *, blocking: bool = True) -> bool:
        self.taken += 1
        return True


@all_ways
async def test_every_request_takes_a_token_retries_and_fallbacks_included(
    way: CallWay, store: InProcessCooldowns
) -> None:
    limiter = CountingLimiter()
    script = Responders(status(500), status(502), status(503), ok("b"))
    llm, _ = build(script, cooldowns=store, rate_limiter=limiter, max_retries=2, fallbacks=["b"])
    await answer(llm, way)
    assert len(script.models) == 4
    assert limiter.taken == 4  # langchain-core's one, before the call, and one per retry


@all_ways
async def test_a_skipped_model_takes_no_token(way: CallWay, store: InProcessCooldowns) -> None:
    for cooling in ("gpt-4o-mini", "c"):
        store.cool(key_of(cooling, "test-key"), time.time() + 30)
    limiter = CountingLimiter()
    script = Responders(status(503), ok("b"))
    llm, _ = build(
        script, cooldowns=store, rate_limiter=limiter, max_retries=1, fallbacks=["c", "b"]
    )
    await answer(llm, way)
    assert script.models == ["b", "b"]
    assert limiter.taken == 2


# --- A fleet: Redis ----------------------------------------------------------------------------


def fleet_member(script: Responders, server: RedisServer, key: str, **fields: Any) -> ChatLunar:
    """A ChatLunar with its own RedisCooldowns, as another process would have."""
    cooldowns = RedisCooldowns(url=server.url, prefix="test:", retry_interval=fields.pop("ri", 5))
    llm, _ = build(script, cooldowns=cooldowns, api_key=key, fallbacks=["b"], **fields)
    return llm


def forget_in_process() -> None:
    # Each store also keeps its cooldowns in the process: drop them, so that only Redis can
    # tell the next member, as it would in another process.
    default_cooldowns().clear()


@all_ways
async def test_two_members_with_their_own_stores_share_a_cooldown_through_redis(
    way: CallWay, redis_server: RedisServer
) -> None:
    key = fresh_key()
    first = fleet_member(Responders(status(429, SLOW_DOWN), ok("b")), redis_server, key)
    await answer(first, way)
    forget_in_process()

    script = Responders(ok("b"))
    second = fleet_member(script, redis_server, key)
    assert second.cooldowns is not first.cooldowns
    message = await answer(second, way)
    assert script.models == ["b"]
    assert [a["then"] for a in message.response_metadata["failed_attempts"]] == ["skip"]

    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        [stored] = client.keys("*")
        assert stored.decode() == f"test:{key_of('gpt-4o-mini', key)}"
        assert key.encode() not in stored
        ends = float(client.get(stored))  # epoch seconds, by Redis's clock
        assert 29 < ends - time.time() <= 30.5
        assert 29_000 < client.pttl(stored) <= 30_000
    for member in (first, second):
        assert isinstance(member.cooldowns, RedisCooldowns)
        if way in ASYNC_WAYS:
            await member.cooldowns.aclose()
        member.cooldowns.close()


def test_redis_keeps_the_later_cooldown_and_answers_by_its_own_clock(
    redis_server: RedisServer,
) -> None:
    store = RedisCooldowns(url=redis_server.url)
    now = time.time()
    store.cool("k", now + 20)
    store.cool("k", now + 5)
    forget_in_process()
    until = store.until("k")
    assert until is not None
    assert 19 < until - now <= 20.5
    assert store.until("never-cooled") is None
    store.cool("past", now - 1)
    assert store.until("past") is None
    store.close()


def test_async_calls_in_successive_event_loops_and_with_a_sync_client_only(
    redis_server: RedisServer,
) -> None:
    import redis

    by_url = RedisCooldowns(url=redis_server.url, prefix="p:")

    async def cool_and_read(store: RedisCooldowns, key: str) -> float | None:
        await store.acool(key, time.time() + 30)
        forget_in_process()
        return await store.auntil(key)

    assert asyncio.run(cool_and_read(by_url, "one")) is not None
    assert asyncio.run(cool_and_read(by_url, "two")) is not None  # another loop, another client
    with redis.Redis.from_url(redis_server.url) as client:
        threaded = RedisCooldowns(client=client, prefix="p:")
        assert asyncio.run(cool_and_read(threaded, "three")) is not None
        assert sorted(client.keys("*")) == [b"p:one", b"p:three", b"p:two"]


def test_the_default_prefix_names_the_keys_in_redis(redis_server: RedisServer) -> None:
    import redis

    store = RedisCooldowns(url=redis_server.url)
    store.cool(key_of("m", "k"), time.time() + 30)
    store.close()
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.keys("*") == [f"langchain_lunar:cooldown:{key_of('m', 'k')}".encode()]


def test_with_only_an_async_client_sync_calls_keep_to_the_process_and_warn_once(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    import redis
    import redis.asyncio

    async def run() -> None:
        async with redis.asyncio.Redis.from_url(redis_server.url) as async_client:
            store = RedisCooldowns(async_client=async_client, prefix="a:")
            with caplog.at_level(logging.WARNING, logger="langchain_lunar"):
                store.cool("sync", time.time() + 30)
                store.cool("sync", time.time() + 30)
            assert store.until("sync") is not None  # from the process
            await store.acool("async", time.time() + 30)

    asyncio.run(run())
    warnings = [r.getMessage() for r in caplog.records if "only async_client" in r.getMessage()]
    assert len(warnings) == 1
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.keys("*") == [b"a:async"]  # the sync cooldown never reached Redis


@invoking_ways
def test_redis_going_away_never_fails_a_call_and_warns_once(
    way: CallWay, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    key = fresh_key()
    b = ok("b")
    script = Responders(status(429, SLOW_DOWN), b, b, b, b, status(429, SLOW_DOWN), b, b)
    llm = fleet_member(script, redis_server, key, ri=0.2)
    call_sync(llm, way)  # the cooldown reaches Redis and the process
    redis_server.kill()
    with caplog.at_level(logging.WARNING, logger="langchain_lunar"):
        for pause in (0.0, 0.0, 0.25):  # the last one after retry_interval: Redis is probed
            time.sleep(pause)
            started = time.monotonic()
            call_sync(llm, way)  # still skipped: the process kept the cooldown
            assert time.monotonic() - started < 0.5
    assert script.models == ["gpt-4o-mini", "b", "b", "b", "b"]
    warnings = [r.getMessage() for r in caplog.records if "cannot reach Redis" in r.getMessage()]
    assert len(warnings) == 1
    assert key not in caplog.text

    redis_server.start()
    time.sleep(0.25)  # past retry_interval: the next round trip probes Redis
    forget_in_process()
    with caplog.at_level(logging.WARNING, logger="langchain_lunar"):
        # Redis is back, and empty: the model is asked, and its 429 recorded there
        call_sync(llm, way)
        call_sync(llm, way)
    assert script.models[-3:] == ["gpt-4o-mini", "b", "b"]
    assert any("reaches Redis again" in r.getMessage() for r in caplog.records)
    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        assert client.keys("*") == [f"test:{key_of('gpt-4o-mini', key)}".encode()]


def test_an_unreachable_redis_costs_at_most_the_timeout_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 192.0.2.0/24 is reserved for documentation: nothing answers there.
    store = RedisCooldowns(url="redis://192.0.2.1:6379/0", timeout=0.2, prefix=f"{uuid.uuid4()}:")
    script = Responders(status(429, SLOW_DOWN), ok("b"), ok("b"))
    llm, _ = build(script, cooldowns=store, fallbacks=["b"])
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="langchain_lunar"):
        llm.invoke("hi")
        llm.invoke("hi")
    assert time.monotonic() - started < 1.0
    assert script.models == ["gpt-4o-mini", "b", "b"]
    assert sum("cannot reach Redis" in r.getMessage() for r in caplog.records) == 1


def test_redis_cooldowns_check_their_settings() -> None:
    with pytest.raises(ValueError, match="timeout"):
        RedisCooldowns(timeout=0)
    with pytest.raises(ValueError, match="retry_interval"):
        RedisCooldowns(retry_interval=-1)
    assert "secret" not in repr(RedisCooldowns(url="redis://:secret@localhost:6379/0"))
