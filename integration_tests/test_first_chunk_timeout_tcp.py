"""first_chunk_timeout over real TCP: a model that thinks in silence is not a stalled one.

The local server plays a reasoning model (``Fault.think``) that sends, while it thinks, nothing
at all, or only the response headers, or only keep-alive comments. ``first_chunk_timeout``
bounds that wait (headers included) and sends the call to the next model without asking the
same one again; ``stream_chunk_timeout`` bounds only the gaps once data flows.
"""

from __future__ import annotations

from typing import Any

import pytest

from langchain_lunar import (
    APITimeoutError,
    ChatLunar,
    FirstChunkTimeoutError,
    StreamChunkTimeoutError,
    StreamInterruptedError,
)
from langchain_lunar.testing import Fault, LocalLunarServer
from tests.calls import CallWay, answer, call, streaming_ways

from .conftest import ServerFactory, model_for

SHORT = 0.3  # the bound a test runs into
LONG = 5.0  # a bound no test reaches
THINKING = {
    "no headers": {},
    "headers": {"headers": True},
    "pings": {"ping_every": 0.1},
}
thinking_kinds = pytest.mark.parametrize("kind", THINKING.values(), ids=THINKING.keys())


def thinker(server: LocalLunarServer, **fields: Any) -> ChatLunar:
    fields.setdefault("model", "thinker")
    model = model_for(server, **fields)
    model._sleep = lambda seconds: None  # a retry, if any, is counted, not waited for
    model._asleep = _no_sleep
    return model


async def _no_sleep(seconds: float) -> None:
    return None


def asked(server: LocalLunarServer) -> list[str | None]:
    return [request.model for request in server.requests]


@streaming_ways
@thinking_kinds
async def test_thinking_longer_than_stream_chunk_timeout_is_not_cut_off(
    make_server: ServerFactory, way: CallWay, kind: dict[str, Any]
) -> None:
    # The default first_chunk_timeout (600 s) bounds the thinking, not stream_chunk_timeout.
    server = make_server(reply="Thought it through.")
    server.script(Fault.think(2 * SHORT, **kind))
    model = thinker(server, stream_chunk_timeout=SHORT, max_retries=2)
    message = await answer(model, way)
    assert message.content == "Thought it through."
    assert asked(server) == ["thinker"]


@streaming_ways
@thinking_kinds
async def test_thinking_past_first_chunk_timeout_goes_to_the_fallback_without_a_retry(
    make_server: ServerFactory, way: CallWay, kind: dict[str, Any]
) -> None:
    server = make_server(reply="From the backup.")
    server.script(*[Fault.think(LONG, **kind)] * 3, model="thinker")
    model = thinker(server, first_chunk_timeout=SHORT, max_retries=2, fallbacks=["backup"])
    message = await answer(model, way)
    assert message.content == "From the backup."
    assert asked(server) == ["thinker", "backup"]
    failed = message.response_metadata["failed_attempts"]
    assert [(a["model"], a["error"], a["then"]) for a in failed] == [
        ("thinker", "FirstChunkTimeoutError", "fallback")
    ]
    assert "first_chunk_timeout" in failed[0]["message"]


@streaming_ways
@thinking_kinds
async def test_without_fallbacks_it_raises_first_chunk_timeout_error_once(
    make_server: ServerFactory, way: CallWay, kind: dict[str, Any]
) -> None:
    server = make_server()
    server.script(*[Fault.think(LONG, **kind)] * 3)
    model = thinker(server, first_chunk_timeout=SHORT, max_retries=2)
    with pytest.raises(FirstChunkTimeoutError) as caught:
        await call(model, way)
    error = caught.value
    assert isinstance(error, StreamChunkTimeoutError)
    assert isinstance(error, APITimeoutError)
    assert (error.timeout, error.model) == (SHORT, "thinker")
    assert "No data from thinker within 0.3 s of the request (first_chunk_timeout" in str(error)
    assert [(a["error"], a["then"]) for a in error.failed_attempts] == [
        ("FirstChunkTimeoutError", "raise")
    ]
    assert asked(server) == ["thinker"]


@streaming_ways
async def test_gaps_after_the_first_event_are_still_bounded_by_stream_chunk_timeout(
    make_server: ServerFactory, way: CallWay
) -> None:
    server = make_server(reply="one two three")
    server.script(Fault.keepalive_stall(LONG, every=0.1, after=1))
    model = thinker(server, first_chunk_timeout=LONG, stream_chunk_timeout=SHORT, max_retries=2)
    delivered: list[Any] = []
    with pytest.raises(StreamInterruptedError) as caught:
        await call(model, way, into=delivered)
    assert caught.value.text == "one"
    cause = caught.value.__cause__
    assert type(cause) is StreamChunkTimeoutError
    assert cause.timeout == SHORT
    assert asked(server) == ["thinker"]


@streaming_ways
async def test_a_silent_model_after_its_opening_chunk_is_retried_as_a_stall(
    make_server: ServerFactory, way: CallWay
) -> None:
    # The role chunk is the first data event: what follows is a gap, bounded and retried as
    # before (nothing had reached the caller yet).
    server = make_server(reply="Fine.")
    server.script(Fault.keepalive_stall(LONG, every=0.1, after=0), model="thinker")
    model = thinker(server, first_chunk_timeout=LONG, stream_chunk_timeout=SHORT, max_retries=1)
    message = await answer(model, way)
    assert message.content == "Fine."
    failed = message.response_metadata["failed_attempts"]
    assert [(a["error"], a["then"]) for a in failed] == [("StreamChunkTimeoutError", "retry")]
    assert asked(server) == ["thinker", "thinker"]


@streaming_ways
async def test_gaps_longer_than_a_shorter_first_chunk_timeout_are_not_cut(
    make_server: ServerFactory, way: CallWay
) -> None:
    # first_chunk_timeout < stream_chunk_timeout: the first event comes at once, then each
    # token after a gap longer than first_chunk_timeout (the body's reads must wait that long).
    server = make_server(reply="slow steady tokens")
    server.script(Fault.slow(2 * SHORT))
    model = thinker(server, first_chunk_timeout=SHORT, stream_chunk_timeout=LONG)
    message = await answer(model, way)
    assert message.content == "slow steady tokens"


@streaming_ways
async def test_a_shorter_first_chunk_timeout_bounds_the_wait_for_headers(
    make_server: ServerFactory, way: CallWay
) -> None:
    server = make_server()
    server.script(Fault.think(LONG))  # no headers
    model = thinker(server, first_chunk_timeout=SHORT, stream_chunk_timeout=LONG)
    with pytest.raises(FirstChunkTimeoutError):
        await call(model, way)


@streaming_ways
async def test_a_per_call_value_overrides_the_models(
    make_server: ServerFactory, way: CallWay
) -> None:
    server = make_server(reply="Done.")
    server.script(Fault.think(LONG), Fault.think(2 * SHORT, headers=True))
    model = thinker(server, first_chunk_timeout=None, stream_chunk_timeout=SHORT)
    with pytest.raises(FirstChunkTimeoutError):
        await call(model, way, first_chunk_timeout=SHORT)
    # 0 turns it off for one call (None per call means the model's own setting).
    strict = thinker(server, first_chunk_timeout=SHORT, stream_chunk_timeout=SHORT)
    assert (await answer(strict.bind(first_chunk_timeout=0), way)).content == "Done."
    assert asked(server) == ["thinker", "thinker"]
