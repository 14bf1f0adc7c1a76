"""Retries and fallbacks over real TCP against the fault-injecting local server."""

from __future__ import annotations

import time
from typing import Any

import pytest

from langchain_lunar import AuthenticationError, RateLimitError, StreamInterruptedError
from langchain_lunar.testing import Fault, LocalLunarServer
from tests.calls import CallWay, all_ways, answer, call, streaming_ways

from .conftest import STORY, TOKENS, model_for


def resilient(server: LocalLunarServer, **fields: Any) -> Any:
    fields.setdefault("max_retries", 2)
    fields.setdefault("fallbacks", ["claude-3-haiku", "llama-3.1-8b"])
    fields.setdefault("backoff_base", 0.05)
    fields.setdefault("backoff_jitter", 0)
    return model_for(server, **fields)


@all_ways
async def test_retry_after_of_one_second_is_waited(server: LocalLunarServer, way: CallWay) -> None:
    server.script(Fault.status(429, headers={"Retry-After": "1"}), model="gpt-4o-mini")
    message = await answer(resilient(server), way)
    assert message.content == STORY
    first, second = server.requests
    gap = second.time - first.time
    assert 0.9 <= gap < 2.0, gap  # about one second: not 0, not the 60 s cap
    assert [r.model for r in server.requests] == ["gpt-4o-mini", "gpt-4o-mini"]


@all_ways
async def test_retry_after_of_an_hour_moves_to_the_next_model_at_once(
    server: LocalLunarServer, way: CallWay
) -> None:
    server.script(Fault.status(429, headers={"Retry-After": "3600"}), model="gpt-4o-mini")
    started = time.monotonic()
    message = await answer(resilient(server, max_retry_wait=5), way)
    assert time.monotonic() - started < 1.0
    assert [r.model for r in server.requests] == ["gpt-4o-mini", "claude-3-haiku"]
    assert message.response_metadata["model_name"] == "claude-3-haiku"
    assert message.response_metadata["failed_attempts"][0]["status_code"] == 429


@all_ways
async def test_retry_after_of_an_hour_without_fallbacks_raises_at_once(
    server: LocalLunarServer, way: CallWay
) -> None:
    server.script(Fault.status(429, headers={"Retry-After": "3600"}))
    started = time.monotonic()
    with pytest.raises(RateLimitError) as caught:
        await answer(resilient(server, max_retry_wait=5, fallbacks=[]), way)
    assert time.monotonic() - started < 1.0
    assert caught.value.retry_after == 3600
    assert len(server.requests) == 1


@all_ways
async def test_server_errors_exhaust_retries_then_fall_back(
    server: LocalLunarServer, way: CallWay
) -> None:
    server.script(Fault.status(503), Fault.status(502), Fault.status(500), model="gpt-4o-mini")
    message = await answer(resilient(server), way)
    assert message.content == STORY
    assert [r.model for r in server.requests] == ["gpt-4o-mini"] * 3 + ["claude-3-haiku"]
    assert message.response_metadata["model_name"] == "claude-3-haiku"
    assert [a["status_code"] for a in message.response_metadata["failed_attempts"]] == [
        503,
        502,
        500,
    ]


@all_ways
async def test_auth_error_is_one_request_and_no_fallback(make_server: Any, way: CallWay) -> None:
    server = make_server(api_key="sk-right")
    with pytest.raises(AuthenticationError):
        await answer(resilient(server, api_key="sk-wrong"), way)
    assert len(server.requests) == 1


@streaming_ways
async def test_in_stream_error_before_the_first_token_falls_back(
    server: LocalLunarServer, way: CallWay
) -> None:
    server.script(
        Fault.stream_error(after=0, error={"message": "overloaded", "code": 503}),
        model="gpt-4o-mini",
    )
    message = await answer(resilient(server, max_retries=0), way)
    assert message.content == STORY
    assert [r.model for r in server.requests] == ["gpt-4o-mini", "claude-3-haiku"]


@all_ways
async def test_read_timeout_before_the_first_chunk_is_retried(
    server: LocalLunarServer, way: CallWay
) -> None:
    server.script(Fault.stall(1.5))
    message = await answer(resilient(server, timeout=0.5, fallbacks=[]), way)
    assert message.content == STORY
    assert len(server.requests) == 2


@all_ways
async def test_disconnect_before_the_first_token_is_retried(
    server: LocalLunarServer, way: CallWay
) -> None:
    server.script(Fault.disconnect(after=0))
    assert (await answer(resilient(server, fallbacks=[]), way)).content == STORY
    assert len(server.requests) == 2


@streaming_ways
async def test_disconnect_after_five_tokens_raises_after_exactly_those(
    server: LocalLunarServer, way: CallWay
) -> None:
    server.script(Fault.disconnect(after=5))
    delivered: list[Any] = []
    with pytest.raises(StreamInterruptedError) as caught:
        await call(resilient(server), way, into=delivered)
    assert [c.content for c in delivered] == TOKENS[:5]
    assert caught.value.text == "".join(TOKENS[:5])
    assert len(server.requests) == 1  # nothing retried, nothing replayed from a fallback


@streaming_ways
async def test_only_the_fallbacks_tokens_reach_the_caller(
    server: LocalLunarServer, way: CallWay
) -> None:
    server.script(
        Fault.stream_error(after=0, error={"message": "busy", "code": 429}), model="gpt-4o-mini"
    )
    chunks = await call(resilient(server, max_retries=0), way)
    assert [c.content for c in chunks[:-1]] == TOKENS
