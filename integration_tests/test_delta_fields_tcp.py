"""Reasoning, refusals, logprobs, citations, usage details and unmapped fields over real TCP,
from the local server playing each kind of model, sync and async, streamed and not."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.exceptions import ModelRefusalError
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from pydantic import BaseModel

from langchain_lunar import StreamInterruptedError
from langchain_lunar.testing import Fault, Reply, ToolCall, WireStyle
from tests.calls import INVOKING, STREAMING, CallWay, call, streaming_ways
from tests.helpers import merged

from .conftest import STORY, ServerFactory, model_for

THINKING = "First the rover, then the crater."


@streaming_ways
@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_streams_first_then_the_story(
    make_server: ServerFactory, way: CallWay, field: str
) -> None:
    server = make_server(
        reply=Reply(STORY, reasoning=THINKING), style=WireStyle(reasoning_field=field)
    )
    chunks = await call(model_for(server), way)
    thinking = [c.additional_kwargs["reasoning_content"] for c in chunks if c.additional_kwargs]
    assert "".join(thinking) == THINKING
    first_text = next(i for i, c in enumerate(chunks) if c.content)
    # Every piece of thinking came first: none after the story began.
    assert not any(c.additional_kwargs.get("reasoning_content") for c in chunks[first_text:])
    total = merged(chunks)
    assert total.content == STORY
    assert total.additional_kwargs["reasoning_content"] == THINKING
    details = total.usage_metadata["output_token_details"]  # type: ignore[index]
    assert details["reasoning"] > 0


@streaming_ways
async def test_a_mixed_chunk_becomes_two_chunks(make_server: ServerFactory, way: CallWay) -> None:
    server = make_server(
        reply=Reply(STORY, reasoning=THINKING),
        style=WireStyle(mixed_chunk=True, reasoning_details=True),
    )
    chunks = await call(model_for(server), way)
    first_text = next(i for i, c in enumerate(chunks) if c.content)
    before = chunks[first_text - 1]
    assert before.content == ""
    assert before.additional_kwargs["reasoning_content"]
    # The mixed delta's text came as a chunk of its own, without the thinking beside it.
    assert "reasoning_content" not in chunks[first_text].additional_kwargs
    total = merged(chunks)
    assert (total.content, total.additional_kwargs["reasoning_content"]) == (STORY, THINKING)
    assert total.additional_kwargs["reasoning_details"][0]["text"] == THINKING


def test_a_reasoning_server_non_streamed(make_server: ServerFactory) -> None:
    server = make_server(reasoning=True, style=WireStyle(reasoning_field="reasoning"))
    message = model_for(server).invoke("tell me")
    assert message.content == STORY
    assert message.additional_kwargs["reasoning_content"].startswith("The user wrote: “tell me")
    assert message.content_blocks[0]["type"] == "reasoning"


def test_reasoning_goes_back_in_a_tool_loop_to_its_model_only(make_server: ServerFactory) -> None:
    server = make_server(
        reply=Reply(tool_calls=[ToolCall("add", {"a": 1, "b": 2}, id="call_1")], reasoning="Add.")
    )
    llm = model_for(server, model="deepseek-reasoner")
    asked = llm.invoke("1+2?")
    assert asked.tool_calls
    assert asked.additional_kwargs["reasoning_content"] == "Add."
    history = [HumanMessage("1+2?"), asked, ToolMessage("3", tool_call_id="call_1")]
    server.script("It is 3.")
    llm.invoke(history)
    sent = server.requests[-1].body
    assert sent is not None
    assert sent["messages"][1]["reasoning_content"] == "Add."
    server.script("It is 3.")
    model_for(server, model="another-model").invoke(history)
    sent = server.requests[-1].body
    assert sent is not None
    assert "reasoning_content" not in sent["messages"][1]


class Answer(BaseModel):
    value: int


@streaming_ways
@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
async def test_a_refusal_raises_model_refusal_error(
    make_server: ServerFactory, way: CallWay, method: str
) -> None:
    server = make_server(reply=Reply(refusal="I can't help with that."))
    runnable: Any = model_for(server).with_structured_output(Answer, method=method)  # type: ignore[arg-type]

    with pytest.raises(ModelRefusalError, match="I can't help with that"):
        await call(runnable, way)
    with pytest.raises(ModelRefusalError, match="I can't help with that"):
        await call(runnable, INVOKING[STREAMING.index(way)])  # invoke, or ainvoke


@streaming_ways
async def test_logprobs_for_every_token(make_server: ServerFactory, way: CallWay) -> None:
    server = make_server()
    chunks = await call(model_for(server), way, logprobs=True, top_logprobs=2)
    total = merged(chunks)
    entries = total.response_metadata["logprobs"]["content"]
    assert "".join(entry["token"] for entry in entries) == STORY
    assert all(len(entry["top_logprobs"]) == 2 for entry in entries)
    message = model_for(server).invoke("hi", logprobs=True)
    assert "".join(e["token"] for e in message.response_metadata["logprobs"]["content"]) == STORY


@streaming_ways
async def test_citations_and_unmapped_fields(make_server: ServerFactory, way: CallWay) -> None:
    citation = {"type": "url_citation", "url_citation": {"url": "https://moon.test", "title": "M"}}
    server = make_server(
        reply=Reply(STORY, annotations=[citation]),
        style=WireStyle(extra_delta_fields={"provider_note": {"shard": 7}}),
    )
    total = merged(await call(model_for(server), way))
    assert total.content == STORY
    assert total.additional_kwargs["annotations"] == [citation]
    unmapped = total.additional_kwargs["unmapped_fields"]
    assert unmapped
    assert all(item == {"delta": {"provider_note": {"shard": 7}}} for item in unmapped)
    message = model_for(server).invoke("hi")
    assert message.additional_kwargs["annotations"] == [citation]
    assert message.additional_kwargs["unmapped_fields"] == [
        {"message": {"provider_note": {"shard": 7}}}
    ]


@pytest.mark.parametrize("style", ["openai", "deepseek", "anthropic"])
def test_cache_details_in_every_servers_form(make_server: ServerFactory, style: str) -> None:
    server = make_server(
        reply=Reply(STORY, cached_tokens=3, cache_write_tokens=2),
        style=WireStyle(usage_details=style),
    )
    llm = model_for(server)
    question = "a longer question here"
    for message in (merged(list(llm.stream(question))), llm.invoke(question)):
        details = message.usage_metadata["input_token_details"]  # type: ignore[index]
        assert details["cache_read"] == 3
        if style == "anthropic":
            assert details["cache_creation"] == 2


def test_a_plain_message_history_is_unchanged(make_server: ServerFactory) -> None:
    server = make_server()
    model_for(server).invoke([HumanMessage("hi"), AIMessage("hello"), HumanMessage("again")])
    sent = server.requests[-1].body
    assert sent is not None
    assert sent["messages"][1] == {"role": "assistant", "content": "hello"}


# --- a model that goes silent behind keep-alives (the local server's keepalive_stall) --------


@streaming_ways
async def test_a_silent_primary_falls_back_though_pings_keep_coming(
    make_server: ServerFactory, way: CallWay
) -> None:
    # No data event at all: the first-event bound (first_chunk_timeout) applies, not the gaps'.
    server = make_server()
    server.script(Fault.keepalive_stall(None, every=0.05), model="silent-model")
    llm = model_for(
        server, model="silent-model", fallbacks=["gpt-4o-mini"], first_chunk_timeout=0.3
    )
    total = merged(await call(llm, way))
    assert total.content == STORY
    assert total.response_metadata["model_name"] == "gpt-4o-mini"
    failed = total.response_metadata["failed_attempts"]
    assert [(f["model"], f["error"], f["then"]) for f in failed] == [
        ("silent-model", "FirstChunkTimeoutError", "fallback")
    ]
    assert server.wait_for_disconnects(1, timeout=2.0)


@streaming_ways
async def test_a_stall_after_tokens_interrupts_with_the_delivered_text(
    make_server: ServerFactory, way: CallWay
) -> None:
    server = make_server()
    server.script(Fault.keepalive_stall(None, every=0.05, after=3))
    delivered: list[Any] = []
    with pytest.raises(StreamInterruptedError) as caught:
        await call(model_for(server, stream_chunk_timeout=0.3), way, into=delivered)
    text = "".join(chunk.content for chunk in delivered)
    assert caught.value.text == text
    assert STORY.startswith(text)
    assert text
    assert server.wait_for_disconnects(1, timeout=2.0)
