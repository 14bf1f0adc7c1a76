"""ChatLunar against the local Lunar server over real TCP, sync and async."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_lunar import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ChatLunar,
    MalformedResponseError,
    RateLimitError,
    ServiceUnavailableError,
    StreamInterruptedError,
)
from langchain_lunar.testing import Fault, LocalLunarServer, WireStyle
from tests.calls import CallWay, call, invoking_ways, streaming_ways
from tests.helpers import merged

from .conftest import STORY, TOKENS, ServerFactory, model_for


@streaming_ways
async def test_streams_token_by_token_with_usage_and_cost(llm: ChatLunar, way: CallWay) -> None:
    chunks = await call(llm, way)
    assert [c.content for c in chunks[:-1]] == TOKENS  # one chunk per token, nothing merged
    final = chunks[-1]
    assert final.chunk_position == "last"
    message = merged(chunks)
    assert message.content == STORY
    usage = message.usage_metadata
    assert usage is not None
    assert usage["output_tokens"] == len(TOKENS)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    metadata = message.response_metadata
    assert metadata["finish_reason"] == "stop"
    assert metadata["model_name"] == "gpt-4o-mini"
    # The server's default price: 0.15 / 0.60 USD per million input / output tokens.
    assert metadata["input_cost_usd"] == pytest.approx(usage["input_tokens"] * 0.15 / 1e6)
    assert metadata["output_cost_usd"] == pytest.approx(usage["output_tokens"] * 0.60 / 1e6)
    assert metadata["total_cost_usd"] == pytest.approx(
        metadata["input_cost_usd"] + metadata["output_cost_usd"]
    )
    assert metadata["ttft_ms"] >= 0
    assert metadata["latency_ms"] >= metadata["ttft_ms"]


@invoking_ways
async def test_non_streaming_invoke(llm: ChatLunar, way: CallWay) -> None:
    message = await call(llm, way)
    assert message.content == STORY
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] == len(TOKENS)
    assert message.response_metadata["finish_reason"] == "stop"
    assert message.response_metadata["total_cost_usd"] > 0


@streaming_ways
async def test_served_model_is_reported(make_server: ServerFactory, way: CallWay) -> None:
    server = make_server(served_model="gpt-4o-mini-2024-07-18", style=WireStyle(model_in="every"))
    chunks = await call(model_for(server), way)
    assert chunks[-1].response_metadata["model_name"] == "gpt-4o-mini-2024-07-18"


STYLES = {
    "crlf": WireStyle(line_ending="\r\n"),
    "cr": WireStyle(line_ending="\r"),
    "comments": WireStyle(comments=True),
    "split-data": WireStyle(split_data=True),
    "extra-fields": WireStyle(extra_fields=True),
    "no-space": WireStyle(no_space=True),
    "model-every-chunk": WireStyle(model_in="every"),
    "no-model": WireStyle(model_in="none"),
    "no-role-chunk": WireStyle(role_chunk=False),
    "no-done": WireStyle(done=False),
    "no-finish-reason": WireStyle(finish_reason=False),
    "everything-at-once": WireStyle(
        line_ending="\r\n", comments=True, split_data=True, extra_fields=True
    ),
}


@streaming_ways
@pytest.mark.parametrize("style", STYLES.values(), ids=STYLES.keys())
async def test_every_sse_form_gives_the_exact_text(
    make_server: ServerFactory, style: WireStyle, way: CallWay
) -> None:
    chunks = await call(model_for(make_server(style=style)), way)
    assert [c.content for c in chunks[:-1]] == TOKENS
    message = merged(chunks)
    assert message.content == STORY
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] == len(TOKENS)


USAGE_STYLES = ["requested", "every_chunk", "with_finish"]


@streaming_ways
@pytest.mark.parametrize("usage", USAGE_STYLES)
async def test_usage_is_counted_once_however_the_server_sends_it(
    make_server: ServerFactory, usage: str, way: CallWay
) -> None:
    chunks = await call(model_for(make_server(style=WireStyle(usage=usage))), way)
    assert [c.usage_metadata is not None for c in chunks].count(True) == 1
    message = merged(chunks)
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] == len(TOKENS)


@streaming_ways
async def test_no_usage_when_the_server_sends_none(
    make_server: ServerFactory, way: CallWay
) -> None:
    message = merged(await call(model_for(make_server(style=WireStyle(usage="never"))), way))
    assert message.content == STORY
    assert message.usage_metadata is None


@streaming_ways
async def test_lcel_chain_streams_token_by_token(llm: ChatLunar, way: CallWay) -> None:
    chain = (
        ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{question}")])
        | llm
        | StrOutputParser()
    )
    pieces = await call(chain, way, {"question": "A story?"})
    assert [p for p in pieces if p] == TOKENS


@streaming_ways
async def test_echo_shows_the_prompt_reached_the_server(
    make_server: ServerFactory, way: CallWay
) -> None:
    server = make_server(reply=None)  # the default reply echoes the last user message
    message = merged(await call(model_for(server), way, "ping 42"))
    assert message.content == "You said: ping 42"
    body = server.requests[-1].body
    assert body is not None
    assert body["stream_options"] == {"include_usage": True}


@streaming_ways
async def test_both_auth_headers_reach_the_server(make_server: ServerFactory, way: CallWay) -> None:
    server = make_server(api_key="sk-right")
    assert merged(await call(model_for(server, api_key="sk-right"), way)).content == STORY
    headers = server.requests[-1].headers
    assert headers["authorization"] == "Bearer sk-right"
    assert headers["x-api-key"] == "sk-right"
    with pytest.raises(AuthenticationError) as caught:
        await call(model_for(server, api_key="sk-wrong"), way)
    assert caught.value.status_code == 401
    assert "sk-wrong" not in str(caught.value)


@streaming_ways
async def test_rate_limit_carries_retry_after(
    server: LocalLunarServer, llm: ChatLunar, way: CallWay
) -> None:
    server.script(Fault.status(429, headers={"Retry-After": "7"}))
    with pytest.raises(RateLimitError) as caught:
        await call(llm, way)
    assert caught.value.retry_after == 7


@streaming_ways
async def test_error_event_before_tokens_raises_the_typed_error(
    server: LocalLunarServer, llm: ChatLunar, way: CallWay
) -> None:
    server.script(Fault.stream_error(after=0))
    with pytest.raises(ServiceUnavailableError, match="Upstream overloaded"):
        await call(llm, way)


@streaming_ways
async def test_error_event_after_tokens_keeps_exactly_those_tokens(
    server: LocalLunarServer, llm: ChatLunar, way: CallWay
) -> None:
    server.script(Fault.stream_error(after=4))
    with pytest.raises(StreamInterruptedError) as caught:
        await call(llm, way)
    assert caught.value.text == "".join(TOKENS[:4])
    assert isinstance(caught.value.__cause__, ServiceUnavailableError)


@streaming_ways
async def test_disconnect_after_five_tokens_raises_after_exactly_those(
    server: LocalLunarServer, llm: ChatLunar, way: CallWay
) -> None:
    server.script(Fault.disconnect(after=5))
    delivered: list[AIMessageChunk] = []
    with pytest.raises(StreamInterruptedError) as caught:
        await call(llm, way, into=delivered)
    assert [c.content for c in delivered] == TOKENS[:5]
    assert caught.value.text == "".join(TOKENS[:5])
    assert isinstance(caught.value.__cause__, APIConnectionError)


@streaming_ways
async def test_disconnect_before_tokens_is_a_connection_error(
    server: LocalLunarServer, llm: ChatLunar, way: CallWay
) -> None:
    server.script(Fault.disconnect(after=0))
    with pytest.raises(APIConnectionError):
        await call(llm, way)


@streaming_ways
async def test_stream_ending_without_done_or_finish_raises(
    server: LocalLunarServer, llm: ChatLunar, way: CallWay
) -> None:
    server.script(Fault.no_done(after=3))
    with pytest.raises(StreamInterruptedError, match=r"\[DONE\]") as caught:
        await call(llm, way)
    assert caught.value.text == "".join(TOKENS[:3])


@streaming_ways
async def test_malformed_line_is_quoted(
    server: LocalLunarServer, llm: ChatLunar, way: CallWay
) -> None:
    server.script(Fault.malformed(after=0, line="data: {oops"))
    with pytest.raises(MalformedResponseError, match=r"\{oops"):
        await call(llm, way)
    server.script(Fault.malformed(after=2, line="data: <html>"))
    with pytest.raises(StreamInterruptedError, match="<html>"):
        await call(llm, way)


@streaming_ways
async def test_read_timeout_before_headers(server: LocalLunarServer, way: CallWay) -> None:
    server.script(Fault.stall(1.5))
    with pytest.raises(APITimeoutError):
        await call(model_for(server, timeout=0.5), way)


@streaming_ways
async def test_read_timeout_bounds_each_chunk_not_the_whole_answer(
    make_server: ServerFactory, way: CallWay
) -> None:
    # Ten tokens 0.1 s apart take a second in all; a 0.5 s read timeout must not end them.
    server = make_server(reply=" ".join(["tick"] * 10), token_delay=0.1)
    message = merged(await call(model_for(server, timeout=0.5), way))
    assert message.content == " ".join(["tick"] * 10)


@streaming_ways
async def test_slow_chunk_mid_stream_times_out_as_an_interruption(
    server: LocalLunarServer, way: CallWay
) -> None:
    server.script(Fault.slow(1.5))
    with pytest.raises((StreamInterruptedError, APITimeoutError)) as caught:
        await call(model_for(server, timeout=0.5), way)
    error = caught.value
    cause = error.__cause__ if isinstance(error, StreamInterruptedError) else error
    assert isinstance(cause, APITimeoutError)


def test_one_pooled_connection_for_successive_calls(
    server: LocalLunarServer, llm: ChatLunar
) -> None:
    for _ in range(3):
        assert merged(list(llm.stream("hi"))).content == STORY
    llm.invoke("hi")
    assert server.connections == 1


async def test_one_pooled_connection_for_successive_async_calls(
    server: LocalLunarServer, llm: ChatLunar
) -> None:
    for _ in range(3):
        assert merged([c async for c in llm.astream("hi")]).content == STORY
    await llm.ainvoke("hi")
    assert server.connections == 1


def test_async_across_asyncio_run_calls_and_threads(llm: ChatLunar) -> None:
    async def ask() -> str:
        return str(merged([c async for c in llm.astream("hi")]).content)

    assert asyncio.run(ask()) == STORY
    assert asyncio.run(ask()) == STORY  # the first loop is gone; its connections must not be reused

    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: asyncio.run(ask()), range(8)))
    assert answers == [STORY] * 8


async def test_concurrent_astreams_each_get_their_own_text(make_server: ServerFactory) -> None:
    server = make_server(reply=None)
    llm = model_for(server)

    async def ask(n: int) -> str:
        return str(merged([c async for c in llm.astream(f"question {n}")]).content)

    answers = await asyncio.gather(*(ask(n) for n in range(50)))
    assert answers == [f"You said: question {n}" for n in range(50)]
