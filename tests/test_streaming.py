"""Streaming: SSE chunks become AIMessageChunks with text, id, metadata, usage once, and errors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessageChunk

from langchain_lunar import (
    APIConnectionError,
    MalformedResponseError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)

from .helpers import Recorder, chunk, merged, mock_model, sse, text_stream, usage_chunk


def collect(model: Any, prompt: str = "hi", **kwargs: Any) -> list[AIMessageChunk]:
    return list(model.stream(prompt, **kwargs))


def test_text_chunks_then_one_final_chunk() -> None:
    model = mock_model(Recorder(text_stream("Hel", "lo", " world")))
    chunks = collect(model)
    assert [c.content for c in chunks] == ["Hel", "lo", " world", ""]
    assert all(c.id == "chatcmpl-1" for c in chunks)
    assert [c.chunk_position for c in chunks] == [None, None, None, "last"]
    last = chunks[-1]
    assert last.response_metadata["finish_reason"] == "stop"
    assert last.response_metadata["model_name"] == "gpt-4o-mini"
    assert last.usage_metadata == {"input_tokens": 9, "output_tokens": 3, "total_tokens": 12}


def test_served_model_is_the_one_the_server_names() -> None:
    model = mock_model(
        Recorder(text_stream("a", model="gpt-4o-mini-2024-07-18")), model="gpt-4o-mini"
    )
    assert collect(model)[-1].response_metadata["model_name"] == "gpt-4o-mini-2024-07-18"


def test_requested_model_when_the_server_names_none() -> None:
    body = sse(chunk("a"), chunk(finish="stop"))
    model = mock_model(Recorder(body), model="llama-3.1-8b")
    assert collect(model)[-1].response_metadata["model_name"] == "llama-3.1-8b"


def test_cost_fields_and_fingerprint_are_kept() -> None:
    costs = {
        "input_cost_usd": 0.001,
        "output_cost_usd": 0.002,
        "cache_input_cost_usd": 0.0,
        "total_cost_usd": 0.003,
        "latency_ms": 812,
        "ttft_ms": 290,
    }
    finish = chunk(finish="stop")
    finish["system_fingerprint"] = "fp_1"
    body = sse(chunk("a"), finish, usage_chunk(**costs))
    message = merged(collect(mock_model(Recorder(body))))
    for key, value in costs.items():
        assert message.response_metadata[key] == value
    assert message.response_metadata["system_fingerprint"] == "fp_1"


def test_usage_repeated_on_every_chunk_is_counted_once() -> None:
    payloads = []
    for n, token in enumerate(["a", "b", "c"], start=1):
        payload = chunk(token)
        payload["usage"] = {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n}
        payloads.append(payload)
    final = chunk(finish="stop")
    final["usage"] = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    message = merged(collect(mock_model(Recorder(sse(*payloads, final)))))
    assert message.usage_metadata == {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}


def test_no_usage_chunk_although_asked_gives_no_usage() -> None:
    body = sse(chunk("a"), chunk(finish="stop"))
    message = merged(collect(mock_model(Recorder(body))))
    assert message.usage_metadata is None
    assert message.content == "a"


def test_usage_details_are_mapped() -> None:
    usage = usage_chunk(
        prompt_tokens_details={"cached_tokens": 4},
        completion_tokens_details={"reasoning_tokens": 1},
    )
    message = merged(collect(mock_model(Recorder(sse(chunk("a"), chunk(finish="stop"), usage)))))
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_token_details"] == {"cache_read": 4}
    assert message.usage_metadata["output_token_details"] == {"reasoning": 1}


def test_stream_usage_controls_stream_options() -> None:
    recorder = Recorder(text_stream("a"))
    collect(mock_model(recorder))
    assert recorder.last_json["stream_options"] == {"include_usage": True}
    collect(mock_model(recorder, stream_usage=False))
    assert "stream_options" not in recorder.last_json
    collect(mock_model(recorder), stream_usage=False)
    assert "stream_options" not in recorder.last_json


def test_content_on_the_finish_chunk_is_not_lost() -> None:
    body = sse(chunk("a"), chunk("b", finish="length"))
    chunks = collect(mock_model(Recorder(body)))
    assert merged(chunks).content == "ab"
    assert chunks[-1].response_metadata["finish_reason"] == "length"


def test_tool_call_fragments_become_tool_call_chunks() -> None:
    calls = [
        chunk(
            tool_calls=[
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "add", "arguments": ""},
                }
            ]
        ),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"a": 1,'}}]),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": ' "b": 2}'}}]),
        chunk(finish="tool_calls"),
    ]
    chunks = collect(mock_model(Recorder(sse(*calls))))
    assert chunks[0].tool_call_chunks[0]["name"] == "add"
    message = merged(chunks)
    assert message.tool_calls == [
        {"name": "add", "args": {"a": 1, "b": 2}, "id": "call_1", "type": "tool_call"}
    ]


def test_stream_without_done_but_with_finish_reason_is_complete() -> None:
    body = sse(chunk("a"), chunk(finish="stop"), done=False)
    assert merged(collect(mock_model(Recorder(body)))).content == "a"


def test_stream_ending_without_done_or_finish_reason_raises() -> None:
    body = sse(chunk("a"), chunk("b"), done=False)
    with pytest.raises(StreamInterruptedError) as caught:
        collect(mock_model(Recorder(body)))
    assert caught.value.text == "ab"
    assert isinstance(caught.value.__cause__, APIConnectionError)
    assert "[DONE]" in str(caught.value)


def test_empty_stream_raises_connection_error() -> None:
    with pytest.raises(APIConnectionError, match="empty body"):
        collect(mock_model(Recorder(b"")))


def test_line_that_is_not_json_raises_quoting_it() -> None:
    body = sse("{not json", chunk("a"))
    with pytest.raises(MalformedResponseError, match=r"\{not json"):
        collect(mock_model(Recorder(body)))


def test_malformed_line_after_tokens_is_an_interruption_quoting_it() -> None:
    body = sse(chunk("a"), "garbage here", chunk("b"))
    with pytest.raises(StreamInterruptedError, match="garbage here") as caught:
        collect(mock_model(Recorder(body)))
    assert caught.value.text == "a"
    assert isinstance(caught.value.__cause__, MalformedResponseError)


def test_error_event_before_any_token_raises_the_typed_error() -> None:
    body = sse({"error": {"message": "slow down", "code": 429}}, done=False)
    with pytest.raises(RateLimitError, match="slow down") as caught:
        collect(mock_model(Recorder(body)))
    assert caught.value.status_code == 429


def test_named_error_event_raises() -> None:
    body = b'event: error\ndata: {"message": "boom", "code": 502}\n\n'
    with pytest.raises(ServerError, match="boom"):
        collect(mock_model(Recorder(body)))


def test_error_event_after_tokens_keeps_what_was_delivered() -> None:
    body = sse(chunk("Hello"), chunk(" there"), {"error": {"message": "overloaded", "code": 503}})
    with pytest.raises(StreamInterruptedError) as caught:
        collect(mock_model(Recorder(body)))
    assert caught.value.text == "Hello there"
    assert caught.value.model == "gpt-4o-mini"
    assert isinstance(caught.value.__cause__, ServerError)


def test_events_after_done_are_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    body = sse(chunk("a"), chunk(finish="stop")) + sse(chunk("late"), done=False)
    assert merged(collect(mock_model(Recorder(body)))).content == "a"
    assert "after [DONE]" in caplog.text


def test_second_choice_is_refused_not_dropped() -> None:
    two = chunk("a")
    two["choices"].append({"index": 1, "delta": {"content": "b"}, "finish_reason": None})
    with pytest.raises(MalformedResponseError, match="more than one choice"):
        collect(mock_model(Recorder(sse(two))))


def test_error_status_on_a_stream_raises_typed_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429, headers={"retry-after": "7"}, json={"error": {"message": "rate limited"}}
        )

    with pytest.raises(RateLimitError) as caught:
        collect(mock_model(handler))
    assert caught.value.retry_after == 7


def test_json_answer_to_a_stream_request_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"choices": []})

    with pytest.raises(MalformedResponseError, match="JSON instead of Server-Sent Events"):
        collect(mock_model(handler))


def test_json_error_body_with_status_200_raises_the_typed_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"error": {"message": "bad key", "code": 401}})

    with pytest.raises(Exception, match="bad key") as caught:
        collect(mock_model(handler))
    assert type(caught.value).__name__ == "AuthenticationError"


def test_request_body_of_a_stream() -> None:
    recorder = Recorder(text_stream("a"))
    collect(mock_model(recorder, temperature=0.5, max_tokens=16))
    body = recorder.last_json
    assert body["model"] == "gpt-4o-mini"
    assert body["stream"] is True
    assert body["max_tokens"] == 16
    assert "max_completion_tokens" not in body
    assert body["temperature"] == 0.5
    assert body["messages"] == [{"role": "user", "content": "hi"}]


async def test_astream_matches_stream() -> None:
    model = mock_model(Recorder(text_stream("Hel", "lo")))
    chunks = [c async for c in model.astream("hi")]
    assert [c.content for c in chunks] == ["Hel", "lo", ""]
    assert chunks[-1].usage_metadata is not None


async def test_async_error_event_after_tokens() -> None:
    body = sse(chunk("x"), {"error": {"message": "overloaded", "code": 503}})
    model = mock_model(Recorder(body))
    with pytest.raises(StreamInterruptedError) as caught:
        async for _ in model.astream("hi"):
            pass
    assert caught.value.text == "x"


def test_invoke_streaming_aggregates() -> None:
    model = mock_model(Recorder(text_stream("a", "b")), streaming=True)
    message = model.invoke("hi")
    assert message.content == "ab"
    assert message.usage_metadata is not None
    assert message.usage_metadata["total_tokens"] == 11
    assert message.response_metadata["finish_reason"] == "stop"


def test_sse_bytes_in_odd_pieces() -> None:
    body = text_stream("one", " two", " three")
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=iter(pieces)
        )

    assert merged(collect(mock_model(handler))).content == "one two three"


def test_unicode_survives() -> None:
    tokens = ["月", "の", " 🌙", " é"]
    assert merged(collect(mock_model(Recorder(text_stream(*tokens))))).content == "".join(tokens)


def test_json_payload_with_escaped_newlines() -> None:
    assert json.loads(sse(chunk("a\nb")).split(b"\n")[0][6:])  # the helper writes one line
    assert (
        merged(collect(mock_model(Recorder(sse(chunk("a\nb"), chunk(finish="stop")))))).content
        == "a\nb"
    )
