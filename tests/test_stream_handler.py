"""LunarStreamHandler: a run's chunk/reasoning/content/done/error events, for functions or async
iteration."""

from __future__ import annotations

import asyncio
import threading
import tracemalloc
from typing import Any
from uuid import uuid4

import httpx
import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, LLMResult
from langchain_core.prompts import ChatPromptTemplate

from langchain_lunar import ChatLunar, LunarError, LunarStreamHandler, StreamEvent
from langchain_lunar.testing import LocalLunarServer

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


# --- reasoning ----------------------------------------------------------------------------

THOUGHTS = ["Grey", " rock,", " no air."]
THINKING = "".join(THOUGHTS)
ANSWER = ["Dust", " and", " basalt."]


def thinking_stream() -> bytes:
    """Thinking in three deltas, the last of them also carrying the first answer token."""
    first = chunk("", role="assistant")
    first["model"] = "deepseek-reasoner"
    return sse(
        first,
        chunk(reasoning_content=THOUGHTS[0]),
        chunk(reasoning_content=THOUGHTS[1]),
        chunk(ANSWER[0], reasoning_content=THOUGHTS[2]),
        *(chunk(t) for t in ANSWER[1:]),
        chunk(finish="stop"),
        usage_chunk(completion=6, completion_tokens_details={"reasoning_tokens": 3}),
    )


def test_reasoning_reaches_on_reasoning_and_never_the_text() -> None:
    calls: list[tuple[str, str, str]] = []
    done: list[tuple[str, StreamEvent]] = []
    handler = LunarStreamHandler(
        on_reasoning=lambda piece, accumulated: calls.append(("reasoning", piece, accumulated)),
        on_content=lambda content, accumulated: calls.append(("content", content, accumulated)),
        on_done=lambda text, event: done.append((text, event)),
    )
    mock_model(Recorder(thinking_stream())).invoke("hi", config={"callbacks": [handler]})
    assert calls == [
        ("reasoning", "Grey", "Grey"),
        ("reasoning", " rock,", "Grey rock,"),
        ("reasoning", " no air.", THINKING),  # the mixed delta: its reasoning first
        ("content", "Dust", "Dust"),
        ("content", " and", "Dust and"),
        ("content", " basalt.", "Dust and basalt."),
    ]
    ((text, event),) = done
    assert text == event.text == "Dust and basalt."
    assert event.reasoning_text == THINKING
    assert event.reasoning == ""
    assert event.usage is not None
    assert event.usage.get("output_token_details") == {"reasoning": 3}


async def test_reasoning_events_in_order_and_apart_from_content_events() -> None:
    handler = LunarStreamHandler()
    async for _ in mock_model(Recorder(thinking_stream())).astream(
        "hi", config={"callbacks": [handler]}
    ):
        pass
    events = [event async for event in handler.events()]
    assert [e.kind for e in events] == (
        ["chunk", "reasoning"] * 3 + ["chunk", "content"] * 3 + ["chunk", "done"]
    )
    reasoning = [e for e in events if e.kind == "reasoning"]
    assert [(e.reasoning, e.reasoning_text) for e in reasoning] == [
        ("Grey", "Grey"),
        (" rock,", "Grey rock,"),
        (" no air.", THINKING),
    ]
    # Code that joins every event's content, whatever its kind, still gets only the answer.
    assert "".join(e.content for e in events) == "Dust and basalt."
    assert all(e.text == "" and e.content == "" for e in reasoning)
    assert all(e.reasoning == e.reasoning_text == "" for e in events if e.kind == "content")
    assert events[-1].reasoning_text == THINKING
    assert events[-1].text == "Dust and basalt."


def test_output_version_v1_counts_each_piece_of_thinking_once() -> None:
    # v1 chunks carry the thinking twice: in additional_kwargs and as a reasoning block.
    pieces: list[str] = []
    done: list[StreamEvent] = []
    handler = LunarStreamHandler(
        on_reasoning=lambda piece, accumulated: pieces.append(piece),
        on_done=lambda text, event: done.append(event),
    )
    model = mock_model(Recorder(thinking_stream()), output_version="v1")
    model.invoke("hi", config={"callbacks": [handler]})
    assert pieces == THOUGHTS
    assert done[0].reasoning_text == THINKING
    assert done[0].text == "Dust and basalt."


def test_thinking_content_blocks_of_other_models_are_reasoning() -> None:
    # ChatAnthropic streams thinking as content blocks, with no reasoning_content.
    seen: list[tuple[str, str, str]] = []
    done: list[StreamEvent] = []
    handler = LunarStreamHandler(
        on_reasoning=lambda piece, accumulated: seen.append(("reasoning", piece, accumulated)),
        on_content=lambda content, accumulated: seen.append(("content", content, accumulated)),
        on_done=lambda text, event: done.append(event),
    )
    run_id = uuid4()
    blocks: list[list[Any]] = [
        [{"type": "thinking", "thinking": "Hm,", "index": 0}],
        [{"type": "thinking", "thinking": " grey.", "index": 0, "signature": "s"}],
        [{"type": "text", "text": "Grey.", "index": 1}],
    ]
    handler.on_chat_model_start({}, [[]], run_id=run_id)
    for content in blocks:
        message = AIMessageChunk(content=content)
        handler.on_llm_new_token("", chunk=ChatGenerationChunk(message=message), run_id=run_id)
    final = AIMessage(
        content=[{"type": "thinking", "thinking": "Hm, grey."}, {"type": "text", "text": "Grey."}]
    )
    handler.on_llm_end(LLMResult(generations=[[ChatGeneration(message=final)]]), run_id=run_id)
    assert seen == [
        ("reasoning", "Hm,", "Hm,"),
        ("reasoning", " grey.", "Hm, grey."),
        ("content", "Grey.", "Grey."),
    ]
    assert done[0].reasoning_text == "Hm, grey."
    assert done[0].text == "Grey."


def test_one_chunk_with_thinking_and_text_gives_chunk_then_reasoning_then_content() -> None:
    # Another model's chunk may carry both (here as v1 blocks, without reasoning_content).
    seen: list[tuple[str, Any]] = []
    handler = LunarStreamHandler(
        on_chunk=lambda chunk: seen.append(("chunk", chunk.content)),
        on_reasoning=lambda piece, accumulated: seen.append(("reasoning", piece)),
        on_content=lambda content, accumulated: seen.append(("content", content)),
        on_done=lambda text, event: seen.append(("done", (event.reasoning_text, text))),
    )
    run_id = uuid4()
    blocks: list[Any] = [
        {"type": "reasoning", "reasoning": "Hm."},
        {"type": "text", "text": "Grey."},
    ]
    message = AIMessageChunk(content=blocks)
    handler.on_chat_model_start({}, [[]], run_id=run_id)
    handler.on_llm_new_token("", chunk=ChatGenerationChunk(message=message), run_id=run_id)
    handler.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]), run_id=run_id)
    assert seen == [
        ("chunk", blocks),
        ("reasoning", "Hm."),
        ("content", "Grey."),
        ("done", ("Hm.", "Grey.")),
    ]


def test_an_answer_from_the_cache_has_its_thinking_on_done() -> None:
    done: list[StreamEvent] = []
    pieces: list[str] = []
    handler = LunarStreamHandler(
        on_reasoning=lambda piece, accumulated: pieces.append(piece),
        on_done=lambda text, event: done.append(event),
    )
    recorder = Recorder(thinking_stream())
    model = mock_model(recorder, cache=InMemoryCache())
    for _ in range(2):
        model.invoke("hi", config={"callbacks": [handler]})
    assert len(recorder.requests) == 1  # the second answer came from the cache, unstreamed
    assert pieces == THOUGHTS  # streamed by the first run only
    assert [e.reasoning_text for e in done] == [THINKING, THINKING]


def test_a_local_reasoning_model_over_tcp() -> None:
    handler = LunarStreamHandler()
    with LocalLunarServer(reply="Basalt.", reasoning=True) as server:
        model = ChatLunar(model="m", api_key="k", base_url=server.base_url)

        async def run() -> list[StreamEvent]:
            await model.ainvoke("Why grey?", config={"callbacks": [handler]})
            return [event async for event in handler.events()]

        events = asyncio.run(run())
    thinking = "The user wrote: “Why grey?”. Time to answer."
    reasoning = [e for e in events if e.kind == "reasoning"]
    assert len(reasoning) > 1  # piece by piece, as it streamed
    assert reasoning[-1].reasoning_text == thinking
    assert [e.content for e in events if e.kind == "content"] == ["Basalt."]
    last_reasoning = max(i for i, e in enumerate(events) if e.kind == "reasoning")
    first_content = min(i for i, e in enumerate(events) if e.kind == "content")
    assert last_reasoning < first_content
    assert (events[-1].kind, events[-1].text, events[-1].reasoning_text) == (
        "done",
        "Basalt.",
        thinking,
    )


def test_an_error_while_thinking_reaches_on_error_and_no_thinking_is_left_over() -> None:
    errors: list[BaseException] = []
    handler = LunarStreamHandler(on_error=errors.append)
    body = sse(chunk(reasoning_content="Hm"), '{"error": {"message": "gone", "code": 500}}')
    with pytest.raises(LunarError):
        mock_model(Recorder(body)).invoke("hi", config={"callbacks": [handler]})
    assert len(errors) == 1
    assert handler._reasonings == {}


def _feed(handler: LunarStreamHandler, run_id: Any, pieces: list[str], start: bool = True) -> None:
    if start:
        handler.on_chat_model_start({}, [], run_id=run_id)
    for piece in pieces:
        message = AIMessageChunk(content=piece)
        handler.on_llm_new_token(piece, chunk=ChatGenerationChunk(message=message), run_id=run_id)


async def test_each_waiting_content_event_shows_the_text_up_to_its_own_token() -> None:
    # Events wait in the queue while more tokens come; each still shows the text as it was.
    handler = LunarStreamHandler()
    run_id = uuid4()
    _feed(handler, run_id, ["a", "b", "c"])
    iterator = handler.events()
    first = [await anext(iterator) for _ in range(2)]
    _feed(handler, uuid4(), ["x"])  # another run between, with its own text
    _feed(handler, run_id, ["d"], start=False)
    handler.close()
    rest = [event async for event in iterator]
    contents = [e for e in first + rest if e.kind == "content" and e.run_id == run_id]
    assert [(e.content, e.text) for e in contents] == [
        ("a", "a"),
        ("b", "ab"),
        ("c", "abc"),
        ("d", "abcd"),
    ]
    assert [e.text for e in first + rest if e.kind == "content" and e.run_id != run_id] == ["x"]


def test_waiting_events_hold_no_copy_of_the_text_each() -> None:
    # 2,000 buffered tokens of 100 characters: a copy of the text so far in each would be 200 MB.
    handler = LunarStreamHandler()
    tracemalloc.start()
    try:
        _feed(handler, uuid4(), ["x" * 99 + str(i % 10) for i in range(2_000)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000
