"""get_lunar_callback(): tokens, cost, requests, retries and fallbacks per model."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from langchain_lunar import LunarError, get_lunar_callback

from .helpers import chunk, mock_model, sse, sse_response, usage_chunk


def answer(model: str, cost: float, completion: int = 2) -> httpx.Response:
    first = chunk("hi", role="assistant")
    first["model"] = model
    return sse_response(
        sse(
            first,
            chunk(finish="stop"),
            usage_chunk(prompt=5, completion=completion, total_cost_usd=cost),
        )
    )


def scripted(*responses: httpx.Response, **fields: object) -> object:
    queue = list(responses)
    model = mock_model(lambda request: queue.pop(0), backoff_jitter=0, **fields)
    model._sleep = lambda seconds: None

    async def asleep(seconds: float) -> None:
        return None

    model._asleep = asleep
    return model


def test_totals_per_model_streaming_and_not() -> None:
    model = scripted(answer("gpt-4o-mini", 0.001), answer("gpt-4o-mini", 0.002, completion=3))
    with get_lunar_callback() as cb:
        list(model.stream("a"))  # type: ignore[attr-defined]
        model.invoke("b", stream=True)  # type: ignore[attr-defined]
    assert cb.requests == 2
    assert (cb.input_tokens, cb.output_tokens, cb.total_tokens) == (10, 5, 15)
    assert cb.cost_usd == pytest.approx(0.003)
    assert set(cb.by_model) == {"gpt-4o-mini"}
    assert "Cost (USD): $0.003000" in str(cb)


def test_retries_and_fallbacks_are_counted() -> None:
    busy = httpx.Response(503, json={"error": {"message": "busy"}})
    model = scripted(
        busy, busy, answer("claude-3-haiku", 0.004), max_retries=1, fallbacks=["claude-3-haiku"]
    )
    with get_lunar_callback() as cb:
        model.invoke("x", stream=True)  # type: ignore[attr-defined]
    assert cb.requests == 3
    assert (cb.retries, cb.fallbacks) == (1, 1)
    primary, fallback = cb.by_model["gpt-4o-mini"], cb.by_model["claude-3-haiku"]
    assert (primary.requests, primary.retries, primary.fallbacks, primary.cost_usd) == (2, 1, 1, 0)
    assert (fallback.requests, fallback.cost_usd) == (1, 0.004)


def test_failed_calls_count_their_attempts() -> None:
    busy = httpx.Response(503, json={"error": {"message": "busy"}})
    model = scripted(busy, busy, max_retries=1)
    with get_lunar_callback() as cb, pytest.raises(LunarError):
        model.invoke("x")  # type: ignore[attr-defined]
    assert cb.requests == 2
    assert cb.retries == 1
    assert cb.by_model["gpt-4o-mini"].errors == 1


def test_nothing_is_counted_outside_the_block() -> None:
    model = scripted(answer("m", 0.1), answer("m", 0.1))
    with get_lunar_callback() as cb:
        model.invoke("a", stream=True)  # type: ignore[attr-defined]
    model.invoke("b", stream=True)  # type: ignore[attr-defined]
    assert cb.requests == 1


async def test_async_with_and_concurrent_tasks() -> None:
    model = scripted(*(answer("m", 0.001) for _ in range(20)))
    async with get_lunar_callback() as cb:
        await asyncio.gather(*(model.ainvoke(str(n), stream=True) for n in range(20)))  # type: ignore[attr-defined]
    assert cb.requests == 20
    assert cb.cost_usd == pytest.approx(0.02)


def test_threads_of_batch() -> None:
    model = scripted(*(answer("m", 0.001) for _ in range(16)))
    with get_lunar_callback() as cb:
        model.batch([str(n) for n in range(16)], config={"max_concurrency": 4}, stream=True)  # type: ignore[attr-defined]
    assert cb.requests == 16
    assert cb.output_tokens == 32


def test_cost_from_parts_when_no_total() -> None:
    first = chunk("x")
    first["model"] = "m"
    body = sse(first, chunk(finish="stop"), usage_chunk(input_cost_usd=0.01, output_cost_usd=0.02))
    model = scripted(sse_response(body))
    with get_lunar_callback() as cb:
        model.invoke("a", stream=True)  # type: ignore[attr-defined]
    assert cb.cost_usd == pytest.approx(0.03)
    assert json.dumps(cb.by_model["m"].__dict__)
