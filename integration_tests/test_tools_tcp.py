"""Tool calling, structured output and agents over real TCP against the local server."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_lunar import StreamInterruptedError
from langchain_lunar.testing import Fault, LocalLunarServer, Reply, ToolCall, WireStyle
from tests.calls import CallWay, call, invoking_ways, streaming_ways
from tests.helpers import merged

from .conftest import ServerFactory, model_for

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

PARALLEL = Reply(
    tool_calls=[
        ToolCall("get_weather", {"city": "Paris", "unit": "celsius"}, id="call_paris"),
        ToolCall("get_weather", {"city": "Oslo", "unit": "celsius"}, id="call_oslo"),
    ]
)


@tool
def get_weather(city: str, unit: str = "celsius") -> str:
    """Get the weather for a city."""
    return f"{city}: 20 degrees {unit}"


class Forecast(BaseModel):
    city: str
    degrees: int


@streaming_ways
async def test_interleaved_parallel_calls_over_many_chunks(
    make_server: ServerFactory, way: CallWay
) -> None:
    server = make_server(
        reply=PARALLEL, style=WireStyle(tool_fragment=3, interleave_tool_calls=True)
    )
    chunks = await call(model_for(server).bind_tools([get_weather]), way)
    assert len(chunks) > 20  # the arguments really came in many small pieces
    message = merged(chunks)
    assert message.tool_calls == [
        {
            "name": "get_weather",
            "args": {"city": "Paris", "unit": "celsius"},
            "id": "call_paris",
            "type": "tool_call",
        },
        {
            "name": "get_weather",
            "args": {"city": "Oslo", "unit": "celsius"},
            "id": "call_oslo",
            "type": "tool_call",
        },
    ]
    assert message.response_metadata["finish_reason"] == "tool_calls"
    assert server.requests[-1].body is not None
    assert server.requests[-1].body["tools"][0]["function"]["name"] == "get_weather"


@invoking_ways
async def test_non_streaming_and_invoke_streaming_agree(
    make_server: ServerFactory, way: CallWay
) -> None:
    server = make_server(reply=PARALLEL)
    plain = model_for(server).bind_tools([get_weather])
    streamed = model_for(server, streaming=True).bind_tools([get_weather])
    answers = [await call(plain, way), await call(streamed, way)]
    assert answers[0].tool_calls == answers[1].tool_calls
    assert [c["id"] for c in answers[0].tool_calls] == ["call_paris", "call_oslo"]


async def test_invalid_json_arguments_are_kept_raw(make_server: ServerFactory) -> None:
    server = make_server(
        reply=Reply(tool_calls=[ToolCall("get_weather", "{city: Paris}", id="c1")])
    )
    message = merged(list(model_for(server).bind_tools([get_weather]).stream("hi")))
    assert message.tool_calls == []
    assert message.invalid_tool_calls[0]["args"] == "{city: Paris}"


def test_tool_round_trip_is_accepted_by_the_server(make_server: ServerFactory) -> None:
    server = make_server(reply=None)  # the default echo reports tool results
    server.script(PARALLEL)
    llm = model_for(server).bind_tools([get_weather], tool_choice="get_weather")
    history: list[Any] = [HumanMessage("weather in Paris and Oslo?")]
    first = llm.invoke(history)
    history.append(first)
    history += [
        ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])
        for call in first.tool_calls
    ]
    final = llm.invoke(history)
    assert final.content == "Tool results: Paris: 20 degrees celsius; Oslo: 20 degrees celsius"
    body = server.requests[0].body
    assert body is not None
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


async def test_disconnect_in_the_middle_of_arguments(make_server: ServerFactory) -> None:
    server = make_server(reply=PARALLEL, style=WireStyle(tool_fragment=3))
    server.script(Fault.disconnect(after=6))
    with pytest.raises(StreamInterruptedError):
        [c async for c in model_for(server).bind_tools([get_weather]).astream("hi")]


@invoking_ways
async def test_structured_output_by_each_method(make_server: ServerFactory, way: CallWay) -> None:
    server = make_server()
    llm = model_for(server)
    server.script(Reply(tool_calls=[ToolCall("Forecast", {"city": "Oslo", "degrees": -3})]))
    server.script('{"city": "Paris", "degrees": 21}', '{"city": "Rome", "degrees": 25}')
    runs = [
        llm.with_structured_output(Forecast),
        llm.with_structured_output(Forecast, method="json_schema"),
        llm.with_structured_output(Forecast, method="json_mode"),
    ]
    results = [await call(run, way, "x") for run in runs]
    assert results == [
        Forecast(city="Oslo", degrees=-3),
        Forecast(city="Paris", degrees=21),
        Forecast(city="Rome", degrees=25),
    ]
    bodies = [r.body for r in server.requests]
    assert bodies[1] is not None
    assert bodies[1]["response_format"]["type"] == "json_schema"
    assert bodies[2] is not None
    assert bodies[2]["response_format"] == {"type": "json_object"}


async def test_structured_output_streams_growing_partial_objects(
    make_server: ServerFactory,
) -> None:
    schema = {
        "title": "forecast",
        "type": "object",
        "properties": {"city": {"type": "string"}, "summary": {"type": "string"}},
    }
    server = make_server(
        reply='{"city": "Oslo", "summary": "light snow all day with wind from the north"}'
    )
    partials = [
        p
        async for p in model_for(server)
        .with_structured_output(schema, method="json_schema")
        .astream("x")
    ]
    assert len(partials) > 5
    assert partials[-1] == {
        "city": "Oslo",
        "summary": "light snow all day with wind from the north",
    }
    summaries = [p.get("summary", "") for p in partials]
    assert summaries == sorted(summaries, key=len)  # every partial extends the one before


def weather_brain(body: dict[str, Any]) -> Reply:
    """A model's side of a two-step tool loop: call the tool, then answer from its result."""
    results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if not results:
        return Reply(text="Checking.", tool_calls=[ToolCall("get_weather", {"city": "Oslo"})])
    return Reply(text=f"The forecast says {results[-1]}, so wear a coat.")


@streaming_ways
async def test_create_agent_streams_tokens_and_finishes_the_tool_loop(
    make_server: ServerFactory, way: CallWay
) -> None:
    server = make_server(reply=weather_brain)
    agent = create_agent(model_for(server), tools=[get_weather])
    inputs = {"messages": [("user", "Weather in Oslo?")]}
    events = await call(agent, way, inputs, stream_mode="messages")
    tokens = [m.content for m, _ in events if isinstance(m, AIMessageChunk) and m.content]
    assert tokens[0] == "Checking."
    assert "".join(tokens[1:]) == "The forecast says Oslo: 20 degrees celsius, so wear a coat."
    assert len(tokens) > 5  # the final answer streamed token by token
    assert any(isinstance(m, ToolMessage) for m, _ in events)
    assert len(server.requests) == 2


def test_langgraph_prebuilt_react_agent(make_server: ServerFactory) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated in favour of create_agent, still supported
        from langgraph.prebuilt import create_react_agent

        agent = create_react_agent(model_for(make_server(reply=weather_brain)), tools=[get_weather])
    events = list(
        agent.stream({"messages": [("user", "Weather in Oslo?")]}, stream_mode="messages")
    )
    text = "".join(str(m.content) for m, _ in events if isinstance(m, AIMessageChunk))
    assert text.endswith("so wear a coat.")


def test_the_agent_example_runs_offline() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("LUNAR_API_KEY", "LUNAR_BASE_URL")}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "streaming_agent.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "[calling get_weather]" in result.stdout
    assert "[packing_list -> a warm coat, gloves and boots]" in result.stdout
    assert result.stdout.rstrip().endswith("Pack a warm coat, gloves and boots.")


def test_server_is_a_real_peer(lunar_server: LocalLunarServer) -> None:
    """The pytest fixture users get also serves tool loops."""
    lunar_server.script(PARALLEL)
    message = model_for(lunar_server).bind_tools([get_weather]).invoke("hi")
    assert len(message.tool_calls) == 2
