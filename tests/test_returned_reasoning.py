"""A tool-calling turn's reasoning goes back to the model that produced it, also when a gateway
reports that model under a dated name (``gpt-4o-mini-2024-07-18`` for ``gpt-4o-mini``): the
answer records the model id its request named, ``response_metadata["model_requested"]``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from .calls import CallWay, all_ways, answer
from .helpers import Recorder, mock_model, sse, sse_response

REASONING = "I should call f."


def tool_call_answer(served: str, stream: bool) -> httpx.Response:
    """A reasoning model's tool call, from a server that names the model ``served``."""
    call = {"index": 0, "id": "call_1", "type": "function"}
    call["function"] = {"name": "f", "arguments": "{}"}
    if not stream:
        message = {"role": "assistant", "content": None, "reasoning_content": REASONING}
        message["tool_calls"] = [call]
        choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
        return httpx.Response(200, json={"id": "c1", "model": served, "choices": [choice]})
    deltas: list[dict[str, Any]] = [{"reasoning_content": REASONING}, {"tool_calls": [call]}]
    events = [
        {"id": "c1", "model": served, "choices": [{"index": 0, "delta": delta}]} for delta in deltas
    ]
    events.append({"id": "c1", "model": served, "choices": [{"index": 0, "delta": {}}]})
    events[-1]["choices"][0]["finish_reason"] = "tool_calls"
    return sse_response(sse(*events))


class Gateway:
    """A gateway that answers each model with a tool call under the model's dated name, and
    ``503`` for the models in ``down``; it records the request bodies."""

    def __init__(self, *down: str) -> None:
        self.down = down
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if body["model"] in self.down:
            return httpx.Response(503, json={"error": {"message": "busy"}})
        return tool_call_answer(body["model"] + "-2024-07-18", bool(body.get("stream")))


def tool_loop(model: Any, way: CallWay) -> tuple[AIMessage, Any]:
    """The first turn (a tool call), then the second with its result."""
    first = asyncio.run(answer(model, way, [HumanMessage("go")]))  # streamed: chunks added up
    turn = [HumanMessage("go"), first, ToolMessage("42", tool_call_id="call_1")]
    asyncio.run(answer(model, way, turn))
    return first, turn


@all_ways
def test_the_answer_records_the_model_its_request_named(way: CallWay) -> None:
    first, _ = tool_loop(mock_model(Gateway(), model="gpt-4o-mini"), way)
    assert first.response_metadata["model_name"] == "gpt-4o-mini-2024-07-18"
    assert first.response_metadata["model_requested"] == "gpt-4o-mini"


@all_ways
def test_reasoning_goes_back_to_its_model_under_a_dated_name(way: CallWay) -> None:
    gateway = Gateway()
    first, _ = tool_loop(mock_model(gateway, model="gpt-4o-mini"), way)
    assert first.additional_kwargs["reasoning_content"] == REASONING
    assistant = gateway.bodies[-1]["messages"][1]
    assert assistant["tool_calls"][0]["id"] == "call_1"
    assert assistant["reasoning_content"] == REASONING


@all_ways
def test_reasoning_from_a_fallback_goes_back_to_the_fallback_only(way: CallWay) -> None:
    gateway = Gateway("primary")
    model = mock_model(gateway, model="primary", fallbacks=["backup"])
    first, _ = tool_loop(model, way)
    assert first.response_metadata["model_requested"] == "backup"
    primary, backup = gateway.bodies[-2:]
    assert (primary["model"], backup["model"]) == ("primary", "backup")
    assert "reasoning_content" not in primary["messages"][1]
    assert backup["messages"][1]["reasoning_content"] == REASONING


def test_a_message_without_the_requested_model_is_matched_by_its_served_name() -> None:
    # Messages kept from before `model_requested`: matched on `model_name`, as they were.
    ai = AIMessage(
        content="",
        tool_calls=[{"name": "f", "args": {}, "id": "call_1", "type": "tool_call"}],
        additional_kwargs={"reasoning_content": REASONING},
        response_metadata={"model_name": "deepseek-reasoner"},
    )
    turn = [HumanMessage("go"), ai, ToolMessage("42", tool_call_id="call_1")]
    for asked, returned in (("deepseek-reasoner", True), ("deepseek-chat", False)):
        recorder = Recorder(sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        list(mock_model(recorder, model=asked).stream(turn))
        assert ("reasoning_content" in recorder.last_json["messages"][1]) is returned


def test_reasoning_only_in_v1_blocks_goes_back_too() -> None:
    # A v1 message (output_version="v1", a stream_events(version="v3") run) may hold its
    # reasoning in a block and not in additional_kwargs.
    call = {"name": "f", "args": {}, "id": "call_1", "type": "tool_call"}
    ai = AIMessage(
        content=[{"type": "reasoning", "reasoning": REASONING}, call],
        tool_calls=[call],
        response_metadata={"model_requested": "deepseek-reasoner"},
    )
    recorder = Recorder(sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    turn = [HumanMessage("go"), ai, ToolMessage("42", tool_call_id="call_1")]
    list(mock_model(recorder, model="deepseek-reasoner").stream(turn))
    assistant = recorder.last_json["messages"][1]
    assert assistant["reasoning_content"] == REASONING
    assert assistant["content"] == ""
