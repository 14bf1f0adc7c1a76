"""LunarStreamHandler: a run's chunk/content/done/error events for functions or async iteration."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_lunar import LunarError, LunarStreamHandler, StreamEvent

from .helpers import Recorder, chunk, mock_model, sse, text_stream, usage_chunk

TOKENS = ["The", " Moon", " is", " grey"]


def costly_stream() -> bytes:
    first = chunk("", role="assistant")
    first["model"] = "gpt-4o-mini-2024-07-18"
    return sse(
        first,
        *(chunk(t) for t in TOKENS),
        chunk(finish="stop"),
        usage_chunk(completion=4, total_cost_usd=0.0012),
    )


def test_functions_get_the_seed_four_events() -> None:
    seen: dict[str, list[Any]] = {"chunk": [], "content": [], "done": [], "error": []}
    handler = LunarStreamHandler(
        on_chunk=seen["chunk"].append,
        on_content=lambda content, accumulated: seen["content"].append((content, accumulated)),
        on_done=lambda text, event: seen["done"].append((text, event)),
        on_error=seen["error"].append,
    )
    mock_model(Recorder(costly_stream())).invoke("hi", stream=True, config={"callbacks": [handler]})
    assert [c.content for c in seen["chunk"]] == [*TOKENS, ""]
    assert seen["content"] == [
        ("The", "The"),
        (" Moon", "The Moon"),
        (" is", "The Moon is"),
        (" grey", "The Moon is grey"),
    ]
    ((text, event),) = seen["done"]
    assert text == "The Moon is grey"
    assert event.model == "gpt-4o-mini-2024-07-18"
    assert event.cost_usd == 0.0012
    assert event.usage == {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13}
    assert seen["error"] == []


def test_errors_reach_on_error() -> None:
    errors: list[BaseException] = []
    handler = LunarStreamHandler(on_error=errors.append)
    model = mock_model(lambda request: httpx.Response(503, json={"error": {"message": "down"}}))
    with pytest.raises(LunarError):
        list(model.stream("hi", config={"callbacks": [handler]}))
    assert len(errors) == 1
    assert "down" in str(errors[0])


async def test_async_iteration_in_order_ending_with_the_run() -> None:
    handler = LunarStreamHandler()
    model = mock_model(Recorder(costly_stream()))
    async for _ in model.astream("hi", config={"callbacks": [handler]}):
        pass
    events = [event async for event in handler.events()]  # events before iteration were kept
    kinds = [e.kind for e in events]
    assert kinds == ["chunk", "content"] * 4 + ["chunk", "done"]
    assert [e.text for e in events if e.kind == "content"][-1] == "The Moon is grey"
    assert events[-1].cost_usd == 0.0012


async def test_a_model_nested_in_a_chain() -> None:
    handler = LunarStreamHandler()
    chain = (
        ChatPromptTemplate.from_messages([("human", "{q}")])
        | mock_model(Recorder(costly_stream()))
        | StrOutputParser()
    )
    consumer = asyncio.create_task(_collect(handler))
    await chain.ainvoke({"q": "x"}, config={"callbacks": [handler]})
    events = await asyncio.wait_for(consumer, 5)  # ends when the outermost (chain) run ends
    assert "".join(e.content for e in events if e.kind == "content") == "The Moon is grey"
    assert events[-1].kind == "done"


async def _collect(handler: LunarStreamHandler) -> list[StreamEvent]:
    return [event async for event in handler.events()]


async def test_a_sync_run_in_another_thread_feeds_the_loop() -> None:
    handler = LunarStreamHandler()
    model = mock_model(Recorder(costly_stream()))
    consumer = asyncio.create_task(_collect(handler))
    await asyncio.sleep(0)  # the consumer is iterating before the run starts
    thread = threading.Thread(
        target=lambda: model.invoke("hi", stream=True, config={"callbacks": [handler]})
    )
    thread.start()
    events = await asyncio.wait_for(consumer, 5)
    thread.join()
    assert [e.content for e in events if e.kind == "content"] == TOKENS


async def test_close_ends_the_iteration_and_one_consumer_only() -> None:
    handler = LunarStreamHandler()
    consumer = asyncio.create_task(_collect(handler))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one consumer"):
        await anext(handler.events())
    handler.close()
    assert await asyncio.wait_for(consumer, 5) == []


def test_tool_call_fragments_are_chunk_events() -> None:
    chunks: list[Any] = []
    body = sse(
        chunk(
            tool_calls=[
                {
                    "index": 0,
                    "id": "c",
                    "type": "function",
                    "function": {"name": "f", "arguments": ""},
                }
            ]
        ),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": "{}"}}]),
        chunk(finish="tool_calls"),
    )
    mock_model(Recorder(body)).invoke(
        "hi", stream=True, config={"callbacks": [LunarStreamHandler(on_chunk=chunks.append)]}
    )
    assert [c.tool_call_chunks[0]["args"] for c in chunks[:2]] == ["", "{}"]


def test_with_functions_nothing_piles_up_for_an_iterator_that_never_comes() -> None:
    handler = LunarStreamHandler(on_content=lambda content, accumulated: None)
    model = mock_model(Recorder(text_stream("a", "b")))
    for _ in range(3):
        model.invoke("hi", config={"callbacks": [handler]})
    assert len(handler._pending) <= 1


def test_invoke_streams_under_the_handler() -> None:
    pieces: list[str] = []
    handler = LunarStreamHandler(on_content=lambda content, accumulated: pieces.append(content))
    recorder = Recorder(text_stream(*TOKENS))
    message = mock_model(recorder).invoke("hi", config={"callbacks": [handler]})  # no stream=True
    assert recorder.last_json["stream"] is True
    assert pieces == TOKENS
    assert message.content == "".join(TOKENS)
