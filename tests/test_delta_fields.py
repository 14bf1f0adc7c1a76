"""Everything a model streams reaches the caller: reasoning, refusals, logprobs, annotations,
usage details and fields ChatLunar does not map, streamed and not."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from langchain_core.exceptions import ModelRefusalError
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from pydantic import BaseModel

from .calls import CallWay, all_ways, call_sync
from .helpers import Recorder, chunk, merged, mock_model, sse, sse_response, usage_chunk


def streamed(*deltas: dict[str, Any], **choice: Any) -> bytes:
    events = [chunk(**delta) for delta in deltas]
    return sse(*events, {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})


def collect(body: bytes, **fields: Any) -> list[AIMessageChunk]:
    return list(mock_model(Recorder(body), **fields).stream("hi"))


def completion(message: dict[str, Any], **choice: Any) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "c1",
            "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop", **choice}],
        },
    )


# --- reasoning ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reasoning_content", "reasoning"])
def test_reasoning_streams_as_its_own_chunks_before_the_text(name: str) -> None:
    chunks = collect(
        streamed({name: "Let me"}, {name: " think."}, {"content": "Hi"}, {"content": "!"})
    )
    pieces = [(c.content, c.additional_kwargs.get("reasoning_content")) for c in chunks[:-1]]
    assert pieces == [("", "Let me"), ("", " think."), ("Hi", None), ("!", None)]
    total = merged(chunks)
    assert total.content == "Hi!"
    assert total.additional_kwargs["reasoning_content"] == "Let me think."
    assert total.content_blocks[0] == {"type": "reasoning", "reasoning": "Let me think."}
    assert [b["type"] for b in total.content_blocks] == ["reasoning", "text"]


def test_a_delta_with_reasoning_and_text_is_two_chunks_reasoning_first() -> None:
    chunks = collect(streamed({"reasoning_content": "done.", "content": "Answer"}))
    assert [(c.content, c.additional_kwargs) for c in chunks[:2]] == [
        ("", {"reasoning_content": "done."}),
        ("Answer", {}),
    ]


def test_reasoning_details_are_kept_and_join_by_index() -> None:
    details = [{"type": "reasoning.text", "text": "a", "index": 0}]
    more = [{"type": "reasoning.text", "text": "b", "index": 0}]
    chunks = collect(
        streamed(
            {"reasoning": "a", "reasoning_details": details},
            {"reasoning": "b", "reasoning_details": more},
            {"content": "x"},
        )
    )
    total = merged(chunks)
    assert total.additional_kwargs["reasoning_details"] == [
        {"type": "reasoning.text", "text": "ab", "index": 0}
    ]


def test_non_streamed_reasoning_and_details() -> None:
    model = mock_model(
        lambda request: completion(
            {
                "content": "Hi",
                "reasoning": "Because.",
                "reasoning_details": [{"type": "reasoning.text", "text": "Because."}],
            }
        )
    )
    message = model.invoke("hi")
    assert message.content == "Hi"
    assert message.additional_kwargs["reasoning_content"] == "Because."
    assert message.additional_kwargs["reasoning_details"][0]["text"] == "Because."
    assert message.content_blocks[0] == {"type": "reasoning", "reasoning": "Because."}


def test_the_v1_output_shows_reasoning_blocks() -> None:
    model = mock_model(
        Recorder(streamed({"reasoning_content": "r"}, {"content": "t"})),
        output_version="v1",
    )
    total = merged(list(model.stream("hi")))
    assert [block["type"] for block in total.content] == ["reasoning", "text"]


# --- reasoning goes back, to its own model only --------------------------------------------


def tool_turn(model_name: str) -> list[Any]:
    ai = AIMessage(
        content="",
        tool_calls=[{"name": "f", "args": {}, "id": "call_1", "type": "tool_call"}],
        additional_kwargs={
            "reasoning_content": "I should call f.",
            "reasoning_details": [{"type": "reasoning.text", "text": "I should call f."}],
        },
        response_metadata={"model_name": model_name},
    )
    return [HumanMessage("go"), ai, ToolMessage("42", tool_call_id="call_1"), AIMessage("ok")]


def test_reasoning_of_a_tool_call_goes_back_to_the_model_that_produced_it() -> None:
    recorder = Recorder(streamed({"content": "done"}))
    list(mock_model(recorder, model="deepseek-reasoner").stream(tool_turn("deepseek-reasoner")))
    assistant = recorder.last_json["messages"][1]
    assert assistant["reasoning_content"] == "I should call f."
    assert assistant["reasoning_details"][0]["text"] == "I should call f."
    assert "reasoning_content" not in recorder.last_json["messages"][3]  # no tool calls


def test_reasoning_does_not_go_to_another_model_or_a_fallback() -> None:
    def primary_down(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["model"] == "deepseek-reasoner":
            return httpx.Response(503, json={"error": {"message": "busy"}})
        return sse_response(streamed({"content": "ok"}))

    recorder = Recorder(primary_down)
    model = mock_model(recorder, model="deepseek-reasoner", fallbacks=["other-model"])
    list(model.stream(tool_turn("deepseek-reasoner")))
    first, fallback = (json.loads(r.content) for r in recorder.requests)
    assert first["messages"][1]["reasoning_content"] == "I should call f."
    assert fallback["model"] == "other-model"
    assert "reasoning_content" not in fallback["messages"][1]
    assert "reasoning_details" not in fallback["messages"][1]

    recorder = Recorder(streamed({"content": "done"}))
    list(mock_model(recorder, model="gpt-4o-mini").stream(tool_turn("deepseek-reasoner")))
    assert "reasoning_content" not in recorder.last_json["messages"][1]


# --- refusals -----------------------------------------------------------------------------


def test_a_streamed_refusal_is_on_the_message() -> None:
    chunks = collect(streamed({"refusal": "I can't"}, {"refusal": " help."}))
    total = merged(chunks)
    assert total.content == ""
    assert total.additional_kwargs["refusal"] == "I can't help."


def test_a_refusal_in_a_completion_is_on_the_message() -> None:
    model = mock_model(lambda request: completion({"content": None, "refusal": "No."}))
    assert model.invoke("hi").additional_kwargs["refusal"] == "No."


class Answer(BaseModel):
    value: int


REFUSAL_STREAM = streamed({"content": None, "refusal": "I can't"}, {"refusal": " do that."})


def refusing(request: httpx.Request) -> httpx.Response:
    if json.loads(request.content).get("stream"):
        return sse_response(REFUSAL_STREAM)
    return completion({"content": None, "refusal": "I can't do that."})


@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
@pytest.mark.parametrize("schema", [Answer, Answer.model_json_schema()], ids=["pydantic", "dict"])
@all_ways
def test_structured_output_raises_model_refusal_error(
    method: str, schema: Any, way: CallWay
) -> None:
    runnable = mock_model(refusing).with_structured_output(schema, method=method)  # type: ignore[arg-type]
    with pytest.raises(ModelRefusalError, match=r"I can't do that\.") as caught:
        call_sync(runnable, way)
    assert caught.value.raw_message is not None


def test_include_raw_reports_the_refusal_as_the_parsing_error() -> None:
    result = mock_model(refusing).with_structured_output(Answer, include_raw=True).invoke("hi")
    assert result["parsed"] is None
    assert isinstance(result["parsing_error"], ModelRefusalError)
    assert result["raw"].additional_kwargs["refusal"] == "I can't do that."


# --- logprobs, annotations, the rest ----------------------------------------------------------


def logprob(token: str) -> dict[str, Any]:
    return {"token": token, "logprob": -0.5, "bytes": list(token.encode()), "top_logprobs": []}


@pytest.mark.parametrize("asked_in", ["the call", "model_kwargs"])
def test_streamed_logprobs_add_up_on_the_message(asked_in: str) -> None:
    events = [
        {"choices": [{"index": 0, "delta": {"content": t}, "logprobs": {"content": [logprob(t)]}}]}
        for t in ("Hel", "lo")
    ]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    recorder = Recorder(sse(*events))
    asked = {"logprobs": True, "top_logprobs": 2}
    if asked_in == "the call":
        total = merged(list(mock_model(recorder).stream("hi", **asked)))
    else:
        total = merged(list(mock_model(recorder, model_kwargs=asked).stream("hi")))
    assert recorder.last_json["logprobs"] is True
    assert recorder.last_json["top_logprobs"] == 2
    assert [entry["token"] for entry in total.response_metadata["logprobs"]["content"]] == [
        "Hel",
        "lo",
    ]
    assert total.content == "Hello"


def test_non_streamed_logprobs() -> None:
    model = mock_model(
        lambda request: completion({"content": "Hi"}, logprobs={"content": [logprob("Hi")]})
    )
    assert model.invoke("hi").response_metadata["logprobs"]["content"][0]["token"] == "Hi"


def test_annotations_are_kept_streamed_and_not() -> None:
    citation = {"type": "url_citation", "url_citation": {"url": "https://moon.test", "title": "M"}}
    total = merged(collect(streamed({"content": "See"}, {"annotations": [citation]})))
    assert total.additional_kwargs["annotations"] == [citation]
    model = mock_model(lambda request: completion({"content": "See", "annotations": [citation]}))
    assert model.invoke("hi").additional_kwargs["annotations"] == [citation]


def test_unmapped_delta_fields_are_kept_even_when_they_cannot_merge() -> None:
    # Values of changing types would make langchain-core's dict merge raise; a list does not.
    total = merged(
        collect(streamed({"content": "a", "speech": {"id": 1}}, {"content": "b", "speech": "x"}))
    )
    assert total.content == "ab"
    assert total.additional_kwargs["unmapped_fields"] == [
        {"delta": {"speech": {"id": 1}}},
        {"delta": {"speech": "x"}},
    ]
    model = mock_model(lambda request: completion({"content": "a", "speech": {"id": 1}}))
    assert model.invoke("hi").additional_kwargs["unmapped_fields"] == [
        {"message": {"speech": {"id": 1}}}
    ]


@pytest.mark.parametrize(
    ("usage", "details"),
    [
        (
            {"prompt_tokens_details": {"cached_tokens": 4}},
            ({"cache_read": 4}, None),
        ),
        ({"prompt_cache_hit_tokens": 5, "prompt_cache_miss_tokens": 4}, ({"cache_read": 5}, None)),
        (
            {"cache_read_input_tokens": 6, "cache_creation_input_tokens": 3},
            ({"cache_read": 6, "cache_creation": 3}, None),
        ),
        ({"completion_tokens_details": {"reasoning_tokens": 7}}, (None, {"reasoning": 7})),
    ],
)
def test_usage_details_in_every_form(usage: dict[str, Any], details: tuple[Any, Any]) -> None:
    body = sse(chunk("Hi"), chunk(finish="stop"), usage_chunk(prompt=9, completion=8, **usage))
    metadata = merged(collect(body)).usage_metadata
    assert metadata is not None
    assert metadata.get("input_token_details") == details[0]
    assert metadata.get("output_token_details") == details[1]


REASONING_STREAM = streamed(
    {"reasoning_content": "Hm"}, {"reasoning_content": "m."}, {"content": "Hi"}, {"content": "!"}
)


def test_stream_events_v3_show_reasoning_then_text() -> None:
    model = mock_model(Recorder(REASONING_STREAM))
    stream = model.stream_events("hi", version="v3")
    events = list(stream)
    assert str(stream.reasoning) == "Hmm."
    assert str(stream.text) == "Hi!"
    assert stream.output.text == "Hi!"
    assert any(e["event"] == "content-block-delta" for e in events)


async def test_astream_events_v3_show_reasoning() -> None:
    model = mock_model(Recorder(REASONING_STREAM))
    stream = await model.astream_events("hi", version="v3")
    _ = [event async for event in stream]
    assert await stream.reasoning == "Hmm."
    assert (await stream.output).text == "Hi!"


def test_a_refusal_is_a_refusal_content_block() -> None:
    total = merged(collect(streamed({"refusal": "No"}, {"refusal": "pe."})))
    assert {"type": "refusal", "refusal": "Nope."} in total.content_blocks
    model = mock_model(lambda request: completion({"content": None, "refusal": "Nope."}))
    message = model.invoke("hi")
    assert message.content_blocks == [{"type": "refusal", "refusal": "Nope."}]
    reasoned = mock_model(
        lambda request: completion({"content": "x", "reasoning": "r", "refusal": "Nope."})
    ).invoke("hi")
    assert [b["type"] for b in reasoned.content_blocks] == ["reasoning", "text", "refusal"]


def test_null_fields_beside_the_text_carry_nothing() -> None:
    # OpenAI-style servers send every delta field, most of them null.
    nulls = {"function_call": None, "refusal": None, "tool_calls": None, "audio": None}
    chunks = collect(streamed({"content": "Hi", **nulls}, {"content": "!", **nulls}))
    assert [c.additional_kwargs for c in chunks[:-1]] == [{}, {}]
    assert merged(chunks).content == "Hi!"
