"""Tool calling and structured output: request fields, streamed tool-call chunks, parsing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from .calls import CallWay
from .helpers import Recorder, chunk, merged, mock_model, sse


class GetWeather(BaseModel):
    """Get the weather in a city."""

    city: str = Field(description="The city")


class Joke(TypedDict):
    """A joke."""

    setup: str
    punchline: str


JOKE_SCHEMA = {
    "title": "joke",
    "description": "A joke.",
    "type": "object",
    "properties": {"setup": {"type": "string"}, "punchline": {"type": "string"}},
    "required": ["setup", "punchline"],
}


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def completion(message: dict[str, Any], finish: str = "stop") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "c1",
            "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        },
    )


def call(
    index: int, *, id: str | None = None, name: str | None = None, args: str = ""
) -> dict[str, Any]:
    delta: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if id is not None:
        delta.update(id=id, type="function")
        delta["function"]["name"] = name
    return delta


INTERLEAVED = sse(
    chunk("", role="assistant"),
    chunk(tool_calls=[call(0, id="call_a", name="get_weather")]),
    chunk(tool_calls=[call(1, id="call_b", name="get_time")]),
    chunk(tool_calls=[call(0, args='{"ci')]),
    chunk(tool_calls=[call(1, args='{"tz": ')]),
    chunk(tool_calls=[call(0, args='ty": "Pa')]),
    chunk(tool_calls=[call(1, args='"CET"}')]),
    chunk(tool_calls=[call(0, args='ris"}')]),
    chunk(finish="tool_calls"),
)


def test_every_tool_form_is_sent_as_a_function_tool() -> None:
    recorder = Recorder(sse(chunk("ok"), chunk(finish="stop")))
    model = mock_model(recorder).bind_tools([add, multiply, GetWeather, Joke, JOKE_SCHEMA])
    list(model.stream("hi"))
    tools = recorder.last_json["tools"]
    assert [t["function"]["name"] for t in tools] == [
        "add",
        "multiply",
        "GetWeather",
        "Joke",
        "joke",
    ]
    assert all(t["type"] == "function" for t in tools)
    assert tools[2]["function"]["parameters"]["properties"]["city"]["type"] == "string"
    assert "tool_choice" not in recorder.last_json


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("any", "required"),
        ("required", "required"),
        ("add", {"type": "function", "function": {"name": "add"}}),
        (True, "required"),
        (
            {"type": "function", "function": {"name": "multiply"}},
            {"type": "function", "function": {"name": "multiply"}},
        ),
    ],
)
def test_tool_choice_forms(choice: Any, sent: Any) -> None:
    recorder = Recorder(sse(chunk("ok"), chunk(finish="stop")))
    list(mock_model(recorder).bind_tools([add, multiply], tool_choice=choice).stream("hi"))
    assert recorder.last_json["tool_choice"] == sent


def test_true_with_one_tool_forces_it() -> None:
    recorder = Recorder(sse(chunk("ok"), chunk(finish="stop")))
    list(mock_model(recorder).bind_tools([add], tool_choice=True).stream("hi"))
    assert recorder.last_json["tool_choice"] == {"type": "function", "function": {"name": "add"}}


def test_unknown_tool_choice_is_refused_with_the_names() -> None:
    with pytest.raises(ValueError, match=r"names no bound tool; the tools are \['add'\]"):
        mock_model(Recorder(b"")).bind_tools([add], tool_choice="subtract")


def test_parallel_tool_calls_and_strict() -> None:
    recorder = Recorder(sse(chunk("ok"), chunk(finish="stop")))
    list(
        mock_model(recorder)
        .bind_tools([GetWeather], parallel_tool_calls=False, strict=True)
        .stream("hi")
    )
    assert recorder.last_json["parallel_tool_calls"] is False
    assert recorder.last_json["tools"][0]["function"]["strict"] is True


@pytest.mark.parametrize("way", ["stream", "invoke"])
def test_interleaved_parallel_calls_aggregate_to_two_tool_calls(way: CallWay) -> None:
    # invoke streams here too, by `streaming=True`. Only set it when True: an explicit False
    # turns .stream() into a plain invoke.
    fields = {"streaming": True} if way == "invoke" else {}
    model = mock_model(Recorder(INTERLEAVED), **fields)
    if way == "stream":
        chunks = list(model.stream("hi"))
        assert all(c.tool_call_chunks[0]["index"] in (0, 1) for c in chunks[:-1])
        message: AIMessage = merged(chunks)
    else:
        message = model.invoke("hi")
    assert message.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_a", "type": "tool_call"},
        {"name": "get_time", "args": {"tz": "CET"}, "id": "call_b", "type": "tool_call"},
    ]
    assert message.invalid_tool_calls == []
    assert message.response_metadata["finish_reason"] == "tool_calls"


async def test_interleaved_calls_async() -> None:
    chunks = [c async for c in mock_model(Recorder(INTERLEAVED)).astream("hi")]
    assert [tc["id"] for tc in merged(chunks).tool_calls] == ["call_a", "call_b"]


def test_tool_call_fragments_reach_callbacks_like_text() -> None:
    seen: list[Any] = []

    class Fragments(BaseCallbackHandler):
        def on_llm_new_token(self, token: str, *, chunk: Any = None, **kwargs: Any) -> None:
            seen.append(chunk.message.tool_call_chunks)

    list(mock_model(Recorder(INTERLEAVED)).stream("hi", config={"callbacks": [Fragments()]}))
    fragments = [c[0]["args"] for c in seen if c]
    assert fragments == ["", "", '{"ci', '{"tz": ', 'ty": "Pa', '"CET"}', 'ris"}']


def test_invalid_json_arguments_land_in_invalid_tool_calls_with_the_raw_text() -> None:
    body = sse(
        chunk(
            tool_calls=[call(0, id="call_x", name="add", args="{'a': 1}")]
        ),  # not JSON: single quotes
        chunk(finish="tool_calls"),
    )
    message = merged(list(mock_model(Recorder(body)).stream("hi")))
    assert message.tool_calls == []
    assert message.invalid_tool_calls[0]["args"] == "{'a': 1}"
    assert message.invalid_tool_calls[0]["id"] == "call_x"


def test_non_streaming_tool_calls_parse_the_same_way() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_b",
                "type": "function",
                "function": {"name": "add", "arguments": "{'a': 1}"},
            },
        ],
    }
    answer = mock_model(lambda request: completion(message, "tool_calls")).invoke("hi")
    assert answer.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_a", "type": "tool_call"}
    ]
    assert answer.invalid_tool_calls[0]["args"] == "{'a': 1}"
    assert answer.invalid_tool_calls[0]["id"] == "call_b"
    assert answer.content == ""


def test_tool_calls_and_results_round_trip_into_the_next_request() -> None:
    recorder = Recorder(sse(chunk("done"), chunk(finish="stop")))
    history = [
        HumanMessage("weather and a sum?"),
        AIMessage(
            "",
            tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_a"}],
            invalid_tool_calls=[
                {
                    "name": "add",
                    "args": "{'a': 1}",
                    "id": "call_b",
                    "error": None,
                    "type": "invalid_tool_call",
                }
            ],
        ),
        ToolMessage("sunny", tool_call_id="call_a"),
        ToolMessage(
            content=[{"type": "text", "text": "bad arguments"}],
            tool_call_id="call_b",
            status="error",
        ),
    ]
    list(mock_model(recorder).stream(history))
    sent = recorder.last_json["messages"]
    assert sent[1]["tool_calls"] == [
        {
            "type": "function",
            "id": "call_a",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"type": "function", "id": "call_b", "function": {"name": "add", "arguments": "{'a': 1}"}},
    ]
    assert sent[2] == {"role": "tool", "tool_call_id": "call_a", "content": "sunny"}
    assert sent[3] == {"role": "tool", "tool_call_id": "call_b", "content": "bad arguments"}


# --- structured output -------------------------------------------------------------------


def tool_answer(name: str, arguments: str) -> httpx.Response:
    return completion(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": name, "arguments": arguments}}
            ],
        },
        "tool_calls",
    )


def test_function_calling_with_pydantic() -> None:
    recorder = Recorder(lambda request: tool_answer("GetWeather", '{"city": "Oslo"}'))
    result = mock_model(recorder).with_structured_output(GetWeather).invoke("weather?")
    assert result == GetWeather(city="Oslo")
    body = recorder.last_json
    assert body["tool_choice"] == {"type": "function", "function": {"name": "GetWeather"}}
    assert body["parallel_tool_calls"] is False
    assert "ls_structured_output_format" not in body


@pytest.mark.parametrize("schema", [Joke, JOKE_SCHEMA], ids=["typeddict", "json-schema"])
def test_function_calling_with_dict_schemas(schema: Any) -> None:
    name = "Joke" if schema is Joke else "joke"
    recorder = Recorder(lambda request: tool_answer(name, '{"setup": "s", "punchline": "p"}'))
    assert mock_model(recorder).with_structured_output(schema).invoke("joke") == {
        "setup": "s",
        "punchline": "p",
    }


@pytest.mark.parametrize(
    "schema", [GetWeather, Joke, JOKE_SCHEMA], ids=["pydantic", "typeddict", "json-schema"]
)
def test_json_schema_method_sends_response_format(schema: Any) -> None:
    content = '{"city": "Oslo"}' if schema is GetWeather else '{"setup": "s", "punchline": "p"}'
    recorder = Recorder(lambda request: completion({"role": "assistant", "content": content}))
    result = (
        mock_model(recorder)
        .with_structured_output(schema, method="json_schema", strict=True)
        .invoke("x")
    )
    assert result == (
        GetWeather(city="Oslo") if schema is GetWeather else {"setup": "s", "punchline": "p"}
    )
    response_format = recorder.last_json["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["schema"]["properties"]


def test_json_mode() -> None:
    recorder = Recorder(lambda request: completion({"role": "assistant", "content": '{"a": 1}'}))
    assert mock_model(recorder).with_structured_output(method="json_mode").invoke("x") == {"a": 1}
    assert recorder.last_json["response_format"] == {"type": "json_object"}


def test_include_raw_keeps_the_message_and_the_parse_error() -> None:
    recorder = Recorder(lambda request: completion({"role": "assistant", "content": "not json"}))
    result = (
        mock_model(recorder)
        .with_structured_output(GetWeather, method="json_mode", include_raw=True)
        .invoke("x")
    )
    assert isinstance(result, dict)
    assert result["raw"].content == "not json"
    assert result["parsed"] is None
    assert result["parsing_error"] is not None
    good = Recorder(lambda request: tool_answer("GetWeather", '{"city": "Oslo"}'))
    result = mock_model(good).with_structured_output(GetWeather, include_raw=True).invoke("x")
    assert result["parsed"] == GetWeather(city="Oslo")
    assert result["parsing_error"] is None


def test_streaming_structured_output_yields_growing_partial_objects() -> None:
    pieces = ['{"setup": "Why', " did", " the Moon", '", "punchline": "It', " was full", '."}']
    body = sse(*(chunk(p) for p in pieces), chunk(finish="stop"))
    partials = list(
        mock_model(Recorder(body))
        .with_structured_output(JOKE_SCHEMA, method="json_schema")
        .stream("x")
    )
    assert len(partials) > 3
    assert partials[0] == {"setup": "Why"}
    assert partials[-1] == {"setup": "Why did the Moon", "punchline": "It was full."}


def test_streaming_structured_output_through_tool_calls() -> None:
    body = sse(
        chunk(tool_calls=[call(0, id="c", name="joke")]),
        chunk(tool_calls=[call(0, args='{"setup": "Why')]),
        chunk(tool_calls=[call(0, args=' not", "punchline"')]),
        chunk(tool_calls=[call(0, args=': "Because"}')]),
        chunk(finish="tool_calls"),
    )
    partials = list(mock_model(Recorder(body)).with_structured_output(JOKE_SCHEMA).stream("x"))
    assert partials == [
        {},
        {"setup": "Why"},
        {"setup": "Why not"},
        {"setup": "Why not", "punchline": "Because"},
    ]


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="method='xml'"):
        mock_model(Recorder(b"")).with_structured_output(Joke, method="xml")  # type: ignore[arg-type]


def test_an_empty_tool_list_is_not_sent() -> None:
    # Servers that validate `tools` refuse an empty list; create_agent binds one when it asks
    # for native structured output and has no tools.
    recorder = Recorder(lambda request: completion({"role": "assistant", "content": "hi"}))
    mock_model(recorder).bind_tools([]).invoke("x")
    assert "tools" not in recorder.last_json
