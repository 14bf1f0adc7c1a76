"""Fields outside the delta or message reach the caller too: a chunk's or completion's own
fields (Perplexity's ``citations``, OpenRouter's ``provider``) and a choice's (OpenRouter's
``native_finish_reason``), kept once each, in ``additional_kwargs["unmapped_fields"]``,
streamed and not; values of any type break nothing."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .calls import STREAMING, CallWay, all_ways, answer, call_sync, streaming_ways
from .helpers import Recorder, merged, mock_model, sse, sse_response

CITATIONS = ["https://moon.test/a", "https://moon.test/b"]


def event(content: str | None, *, finish: str | None = None, **top: Any) -> dict[str, Any]:
    """An OpenRouter/Perplexity-style chunk: ``top`` beside the usual fields, and the
    ``native_finish_reason`` OpenRouter puts in every choice (null until the last)."""
    delta = {} if content is None else {"content": content}
    return {
        "id": "gen-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "openai/gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "delta": delta,
                "finish_reason": finish,
                "native_finish_reason": finish,
                "logprobs": None,
            }
        ],
        **top,
    }


GATEWAY_STREAM = sse(
    event("", provider="OpenAI", citations=CITATIONS),
    event("Hel", provider="OpenAI", citations=CITATIONS),
    event("lo", provider="OpenAI", citations=CITATIONS),
    event(None, finish="stop", provider="OpenAI", citations=CITATIONS),
)
GATEWAY_COMPLETION = {
    "id": "gen-1",
    "object": "chat.completion",
    "created": 1,
    "model": "openai/gpt-4o-mini",
    "provider": "OpenAI",
    "citations": CITATIONS,
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello"},
            "finish_reason": "stop",
            "native_finish_reason": "stop",
            "logprobs": None,
        }
    ],
}


def gateway(request: httpx.Request) -> httpx.Response:
    if json.loads(request.content).get("stream"):
        return sse_response(GATEWAY_STREAM)
    return httpx.Response(200, json=GATEWAY_COMPLETION)


@all_ways
def test_chunk_and_choice_fields_are_kept_once_each(way: CallWay) -> None:
    message = call_sync(mock_model(gateway), way)
    if way in STREAMING:
        chunks = message
        message = merged(chunks)
        # On the final chunk, with everything else that describes the whole answer.
        assert all("unmapped_fields" not in c.additional_kwargs for c in chunks[:-1])
        where = ("chunk", "choice")
    else:
        where = ("completion", "choice")
    assert message.content == "Hello"
    assert message.additional_kwargs["unmapped_fields"] == [
        {where[0]: {"provider": "OpenAI", "citations": CITATIONS}},
        {where[1]: {"native_finish_reason": "stop"}},
    ]


@streaming_ways
def test_openai_chunks_keep_the_service_tier_once_and_drop_the_padding(way: CallWay) -> None:
    # What OpenAI sends today: service_tier and random `obfuscation` padding on every chunk.
    def openai_event(content: str | None, pad: str, finish: str | None = None) -> dict[str, Any]:
        delta = {} if content is None else {"content": content}
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1769092764,
            "model": "gpt-4o-mini-2024-07-18",
            "service_tier": "default",
            "system_fingerprint": "fp_1",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            "obfuscation": pad,
        }

    body = sse(
        openai_event("Hi", "ZGF"), openai_event("!", "lRK2a"), openai_event(None, "k", "stop")
    )
    total = merged(call_sync(mock_model(Recorder(body)), way))
    assert total.content == "Hi!"
    assert total.additional_kwargs["unmapped_fields"] == [{"chunk": {"service_tier": "default"}}]


def test_a_value_is_kept_again_each_time_it_changes_and_its_type_counts() -> None:
    values: list[Any] = [1, 1, 1.0, True, [1], [1.0], {"a": 1}, {"a": 1}, "1", math.nan, math.nan]
    events = [event(str(i), tier=value) for i, value in enumerate(values)]
    events.append(event(None, finish="stop", tier=None))  # null: nothing new
    body = sse(*events)
    total = merged(list(mock_model(Recorder(body)).stream("hi")))
    entries = total.additional_kwargs["unmapped_fields"]
    kept = [entry["chunk"]["tier"] for entry in entries if "chunk" in entry]
    expected = [1, 1.0, True, [1], [1.0], {"a": 1}, "1", math.nan]
    assert [json.dumps(v) for v in kept] == [json.dumps(v) for v in expected]
    assert [type(v) for v in kept] == [type(v) for v in expected]


@all_ways
def test_a_deeply_nested_value_repeated_on_every_chunk_breaks_nothing(way: CallWay) -> None:
    deep = "[" * 1000 + '"bottom"' + "]" * 1000  # as deep as the JSON parser goes
    events = [
        {"id": "c", "choices": [{"index": 0, "delta": {"content": text}, "x": "DEEP"}], "y": "DEEP"}
        for text in ("a", "b")
    ]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    body = sse(*events).replace(b'"DEEP"', deep.encode())
    completion = {
        "id": "c",
        "y": "DEEP",
        "choices": [{"index": 0, "x": "DEEP", "message": {"content": "ab"}}],
    }
    completion_text = json.dumps(completion).replace('"DEEP"', deep)

    def handler(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("stream"):
            return sse_response(body)
        return httpx.Response(200, content=completion_text.encode())

    message = call_sync(mock_model(handler), way)
    if way in STREAMING:
        message = merged(message)
    assert message.content == "ab"
    assert [list(entry) for entry in message.additional_kwargs["unmapped_fields"]] == [
        ["chunk" if way in STREAMING else "completion"],
        ["choice"],
    ]


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


def reference(values: list[Any]) -> list[Any]:
    """Each non-null value once, and again whenever it differs from the last one kept."""
    kept: list[Any] = []
    for value in values:
        if value is not None and (not kept or _text(kept[-1]) != _text(value)):
            kept.append(value)
    return kept


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True)  # 1, 1.0 and true differ; NaN is NaN


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tops=st.lists(JSON, min_size=1, max_size=4),
    choices=st.lists(JSON, min_size=1, max_size=4),
    way=st.sampled_from(["invoke", "ainvoke", "stream", "astream"]),
)
def test_values_of_any_type_break_no_answer(
    tops: list[Any], choices: list[Any], way: CallWay
) -> None:
    count = max(len(tops), len(choices))
    tops = (tops * count)[:count]
    choices = (choices * count)[:count]
    events = []
    for index, (top, in_choice) in enumerate(zip(tops, choices, strict=True)):
        payload = event(f"t{index}", top=top)
        payload["choices"][0] = {"index": 0, "delta": {"content": f"t{index}"}, "x": in_choice}
        events.append(payload)
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    body = sse(*events)
    completion = {
        "id": "c1",
        "top": tops[-1],
        "choices": [{"index": 0, "message": {"content": "Hello"}, "x": choices[-1]}],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("stream"):
            return sse_response(body)
        return httpx.Response(200, content=json.dumps(completion).encode())

    message = asyncio.run(answer(mock_model(handler), way))
    entries = message.additional_kwargs.get("unmapped_fields", [])
    if way in STREAMING:
        assert message.content == "".join(f"t{i}" for i in range(count))
        tops_kept = [e["chunk"]["top"] for e in entries if "chunk" in e]
        choices_kept = [e["choice"]["x"] for e in entries if "choice" in e]
        assert [_text(v) for v in tops_kept] == [_text(v) for v in reference(tops)]
        assert [_text(v) for v in choices_kept] == [_text(v) for v in reference(choices)]
        # Nothing else.
        assert len(entries) == len(tops_kept) + len(choices_kept)
    else:
        assert message.content == "Hello"
        expected = []
        if tops[-1] is not None:
            expected.append({"completion": {"top": tops[-1]}})
        if choices[-1] is not None:
            expected.append({"choice": {"x": choices[-1]}})
        assert [_text(e) for e in entries] == [_text(e) for e in expected]
