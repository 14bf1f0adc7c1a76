"""Tool calls in ``LocalLunarServer`` replies, over real TCP, with plain httpx.

As in ``test_local_server.py``, nothing here uses the langchain_lunar client: the raw SSE bytes
are parsed by the tiny reader there and checked against the OpenAI-compatible wire form.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from langchain_lunar.testing import Fault, LocalLunarServer, Reply, ToolCall, WireStyle

from .test_local_server import PATH, body, chunks_of, content_of, sse_data

WEATHER = ToolCall("get_weather", {"city": "Paris", "unit": "celsius"}, id="call_w")
ADD = ToolCall("add", {"a": 1, "b": 2}, id="call_a")
WEATHER_JSON = '{"city":"Paris","unit":"celsius"}'  # 33 characters: 6 fragments of <= 6
ADD_JSON = '{"a":1,"b":2}'  # 13 characters: 3 fragments of <= 6
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "add"}},
]


def post(server: LocalLunarServer, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.base_url + PATH, json=payload, timeout=5)


def streamed(reply: Reply, style: WireStyle | None = None, **extra: Any) -> list[dict[str, Any]]:
    """The chunks of one streamed answer to ``reply``; checks the stream ends with [DONE]."""
    with LocalLunarServer(reply=reply, style=style or WireStyle()) as server:
        raw = post(server, body(stream=True, **extra)).content
    assert sse_data(raw)[-1] == "[DONE]"
    return chunks_of(raw)


def tool_deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``delta.tool_calls`` entries in order; each chunk must carry at most one."""
    found: list[dict[str, Any]] = []
    for chunk in chunks:
        if chunk["choices"] and "tool_calls" in chunk["choices"][0]["delta"]:
            (entry,) = chunk["choices"][0]["delta"]["tool_calls"]
            found.append(entry)
    return found


def arguments_by_index(deltas: list[dict[str, Any]]) -> dict[int, str]:
    joined: dict[int, str] = {}
    for delta in deltas:
        joined[delta["index"]] = joined.get(delta["index"], "") + delta["function"]["arguments"]
    return joined


def assert_openings_then_fragments(deltas: list[dict[str, Any]], calls: list[ToolCall]) -> None:
    """The first delta of each call carries id, type, name and empty arguments; every later
    delta of that call only an arguments fragment."""
    seen: set[int] = set()
    for delta in deltas:
        index = delta["index"]
        if index not in seen:
            seen.add(index)
            call = calls[index]
            assert delta == {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
        else:
            assert set(delta) == {"index", "function"}
            assert set(delta["function"]) == {"arguments"}
            assert delta["function"]["arguments"] != ""
    assert seen == set(range(len(calls)))


@pytest.fixture
def server() -> Iterator[LocalLunarServer]:
    with LocalLunarServer() as s:
        yield s


# --- non-streaming ------------------------------------------------------------------------


def test_non_streaming_tool_calls() -> None:
    unnamed = ToolCall("add", {"a": 1, "b": 2})
    with LocalLunarServer(reply=Reply(tool_calls=[WEATHER, unnamed])) as server:
        first = post(server, body(tools=TOOLS)).json()
        second = post(server, body(tools=TOOLS)).json()
    (choice,) = first["choices"]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["role"] == "assistant"
    assert message["content"] is None  # no text: null, not ""
    weather, add = message["tool_calls"]
    assert weather == {
        "id": "call_w",
        "type": "function",
        "function": {"name": "get_weather", "arguments": WEATHER_JSON},
    }
    assert add["type"] == "function"
    assert add["function"] == {"name": "add", "arguments": ADD_JSON}
    assert json.loads(add["function"]["arguments"]) == {"a": 1, "b": 2}
    # An id left None is "call_" + random hex, new in every answer.
    assert re.fullmatch(r"call_[0-9a-f]{24}", add["id"])
    assert second["choices"][0]["message"]["tool_calls"][1]["id"] != add["id"]
    assert second["choices"][0]["message"]["tool_calls"][0]["id"] == "call_w"
    # Counted as streamed: 1 opening + 6 fragments, 1 opening + 3 fragments.
    assert first["usage"]["completion_tokens"] == 11


def test_non_streaming_text_and_tool_calls() -> None:
    with LocalLunarServer(reply=Reply("Let me check.", [ADD])) as server:
        data = post(server, body()).json()
    message = data["choices"][0]["message"]
    assert message["content"] == "Let me check."
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["add"]
    assert data["choices"][0]["finish_reason"] == "tool_calls"
    assert data["usage"]["completion_tokens"] == 3 + 4  # "Let", " me", " check." + 4 chunks


def test_plain_text_answers_keep_their_form(server: LocalLunarServer) -> None:
    data = post(server, body()).json()
    assert data["choices"][0]["message"] == {
        "role": "assistant",
        "content": "You said: hello big world",
    }
    assert data["choices"][0]["finish_reason"] == "stop"


# --- streaming ----------------------------------------------------------------------------


def test_stream_two_parallel_calls_interleaved() -> None:
    chunks = streamed(Reply(tool_calls=[WEATHER, ADD]), stream_options={"include_usage": True})
    role, *calls, finish, usage = chunks
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert content_of(chunks) == ""
    deltas = tool_deltas(calls)
    assert len(deltas) == len(calls) == 11  # one tool-call delta per chunk, nothing else
    assert all(c["choices"][0]["finish_reason"] is None for c in calls)
    assert_openings_then_fragments(deltas, [WEATHER, ADD])
    # Both openings first, then one fragment of each in turn; weather's longer tail goes on alone.
    assert [d["index"] for d in deltas] == [0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0]
    assert [d["function"]["arguments"] for d in deltas[2:6]] == [
        '{"city',
        '{"a":1',
        '":"Par',
        ',"b":2',
    ]
    assert arguments_by_index(deltas) == {0: WEATHER_JSON, 1: ADD_JSON}
    assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == 11


def test_stream_calls_one_after_the_other() -> None:
    chunks = streamed(Reply(tool_calls=[WEATHER, ADD]), WireStyle(interleave_tool_calls=False))
    deltas = tool_deltas(chunks)
    assert_openings_then_fragments(deltas, [WEATHER, ADD])
    assert [d["index"] for d in deltas] == [0] * 7 + [1] * 4
    assert arguments_by_index(deltas) == {0: WEATHER_JSON, 1: ADD_JSON}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_text_before_the_calls() -> None:
    chunks = streamed(Reply("One moment.", [ADD]), style=WireStyle(usage="every_chunk"))
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[:3] == [
        {"role": "assistant", "content": ""},
        {"content": "One"},
        {"content": " moment."},
    ]
    assert all(set(d) == {"tool_calls"} for d in deltas[3:-1])  # tool chunks carry no text
    assert_openings_then_fragments(tool_deltas(chunks), [ADD])
    assert deltas[-1] == {}
    # completion_tokens: 2 text tokens, then 1 opening + 3 fragments, one per chunk
    assert [c["usage"]["completion_tokens"] for c in chunks] == [0, 1, 2, 3, 4, 5, 6, 6]


def test_tool_fragment_size() -> None:
    for size, expected in [(1, list(ADD_JSON)), (5, ['{"a":', '1,"b"', ":2}"]), (100, [ADD_JSON])]:
        deltas = tool_deltas(streamed(Reply(tool_calls=[ADD]), WireStyle(tool_fragment=size)))
        assert [d["function"]["arguments"] for d in deltas[1:]] == expected
    with pytest.raises(ValueError, match="tool_fragment"):
        WireStyle(tool_fragment=0)


def test_str_arguments_are_sent_verbatim() -> None:
    broken = ToolCall("add", '{"a": 1, "b": ', id="call_x")  # not valid JSON
    reply = Reply(tool_calls=[broken])
    deltas = tool_deltas(streamed(reply))
    assert arguments_by_index(deltas) == {0: '{"a": 1, "b": '}
    with LocalLunarServer(reply=reply) as server:
        message = post(server, body()).json()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["arguments"] == '{"a": 1, "b": '


def test_disconnect_in_the_middle_of_arguments() -> None:
    received: list[bytes] = []

    def read_all(url: str) -> None:
        with httpx.stream("POST", url, json=body(stream=True), timeout=5) as r:
            for part in r.iter_raw():
                received.append(part)

    with LocalLunarServer(reply=Reply("Hi", [WEATHER, ADD])) as server:
        # 1 text token, 2 openings, 1 fragment of each call; then the connection drops.
        server.script(Fault.disconnect(after=5))
        with pytest.raises(httpx.RemoteProtocolError):
            read_all(server.base_url + PATH)
    chunks = chunks_of(b"".join(received))
    assert content_of(chunks) == "Hi"
    deltas = tool_deltas(chunks)
    assert [d["index"] for d in deltas] == [0, 1, 0, 1]
    assert arguments_by_index(deltas) == {0: '{"city', 1: '{"a":1'}
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    assert b"[DONE]" not in b"".join(received)


def test_token_delay_applies_to_tool_call_chunks() -> None:
    with LocalLunarServer(reply=Reply(tool_calls=[ADD]), token_delay=0.03) as server:
        start = time.monotonic()
        post(server, body(stream=True))
        assert time.monotonic() - start >= 4 * 0.03
        start = time.monotonic()
        post(server, body())  # non-streaming: as if streamed
        assert time.monotonic() - start >= 4 * 0.03


def test_a_cut_text_drops_the_calls() -> None:
    with LocalLunarServer(reply=Reply("one two three", [ADD])) as server:
        data = post(server, body(max_tokens=2)).json()
        assert data["choices"][0]["finish_reason"] == "length"
        assert data["choices"][0]["message"] == {"role": "assistant", "content": "one two"}
        data = post(server, body(stop=" three")).json()
        assert data["choices"][0]["finish_reason"] == "stop"
        assert "tool_calls" not in data["choices"][0]["message"]
        # max_tokens limits the text only: a text that fits leaves the calls whole.
        data = post(server, body(max_tokens=3)).json()
        assert data["choices"][0]["finish_reason"] == "tool_calls"


# --- request validation -------------------------------------------------------------------


def call_entry(call_id: str, arguments: Any = "{}") -> dict[str, Any]:
    """One entry of an assistant message's ``tool_calls``, as a client sends it back."""
    return {"id": call_id, "type": "function", "function": {"name": "add", "arguments": arguments}}


def assistant(*calls: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": list(calls)}


ASSISTANT_CALL = assistant(call_entry("call_1"))


def with_messages(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}, *messages], **extra}


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        (body(tools={"type": "function"}), "'tools'"),
        (body(tools=[]), "'tools' must not be empty"),
        (body(tools=[{"type": "retrieval", "function": {"name": "f"}}]), "'tools[0].type'"),
        (body(tools=[{"type": "function"}]), "'tools[0].function'"),
        (body(tools=[{"type": "function", "function": {"name": ""}}]), "'tools[0].function.name'"),
        (
            body(
                tools=[TOOLS[1], {"type": "function", "function": {"name": "f", "parameters": 1}}]
            ),
            "'tools[1].function.parameters'",
        ),
        (body(tools=TOOLS, tool_choice="always"), "'tool_choice'"),
        (body(tool_choice="required"), "'tool_choice'"),
        (body(tools=TOOLS, tool_choice={"type": "function"}), "'tool_choice.function.name'"),
        (
            body(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}}),
            "'tool_choice.function.name'",
        ),
        (body(tool_choice={"type": "function", "function": {"name": "add"}}), "'tool_choice"),
        (body(response_format={"type": "xml"}), "'response_format'"),
        (body(response_format="json"), "'response_format'"),
        (body(response_format={"type": "json_schema"}), "'response_format.json_schema'"),
        (
            body(response_format={"type": "json_schema", "json_schema": {"schema": {}}}),
            "'response_format.json_schema.name'",
        ),
        (
            body(response_format={"type": "json_schema", "json_schema": {"name": "x"}}),
            "'response_format.json_schema.schema'",
        ),
        (
            with_messages({"role": "tool", "content": "3", "tool_call_id": "call_1"}),
            "'messages[1].tool_call_id'",
        ),
        (
            with_messages(
                ASSISTANT_CALL, {"role": "tool", "content": "3", "tool_call_id": "call_2"}
            ),
            "'messages[2].tool_call_id' 'call_2'",
        ),
        (
            with_messages(ASSISTANT_CALL, {"role": "tool", "content": "3"}),
            "'messages[2].tool_call_id'",
        ),
        (
            with_messages(
                ASSISTANT_CALL, {"role": "tool", "content": None, "tool_call_id": "call_1"}
            ),
            "'messages[2].content'",
        ),
        (
            with_messages(
                {"role": "tool", "content": "3", "tool_call_id": "call_1"}, ASSISTANT_CALL
            ),
            "'messages[1].tool_call_id'",  # the call must come before its result
        ),
        (with_messages({"role": "assistant", "tool_calls": {}}), "'messages[1].tool_calls'"),
        (
            with_messages({"role": "assistant", "tool_calls": [{"type": "function"}]}),
            "'messages[1].tool_calls[0].id'",
        ),
        (
            with_messages(assistant(call_entry("call_1", arguments={}))),
            "'messages[1].tool_calls[0].function.arguments'",
        ),
    ],
)
def test_validation_400_names_the_field(
    server: LocalLunarServer, payload: dict[str, Any], named: str
) -> None:
    r = post(server, payload)
    assert r.status_code == 400
    assert named in r.json()["error"]["message"]
    assert server.requests[-1].body == payload


def test_valid_tool_fields_are_accepted(server: LocalLunarServer) -> None:
    schema = {"name": "answer", "schema": {"type": "object"}, "strict": True}
    extras: list[dict[str, Any]] = [
        {"tools": TOOLS},
        {"tools": TOOLS, "tool_choice": "none"},
        {"tools": TOOLS, "tool_choice": "auto", "parallel_tool_calls": False},
        {"tools": TOOLS, "tool_choice": "required"},
        {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "add"}}},
        {"response_format": {"type": "text"}},
        {"response_format": {"type": "json_object"}},
        {"response_format": {"type": "json_schema", "json_schema": schema}},
    ]
    for extra in extras:
        assert post(server, body(**extra)).status_code == 200, extra
    assert server.requests[-1].body is not None
    assert server.requests[-1].body["response_format"]["json_schema"] == schema
    parts = [{"type": "text", "text": "3"}]
    payload = with_messages(
        ASSISTANT_CALL, {"role": "tool", "content": parts, "tool_call_id": "call_1"}
    )
    assert post(server, payload).status_code == 200


# --- the echo, reply callables, scripts ---------------------------------------------------


def test_echo_replies_with_the_tool_results(server: LocalLunarServer) -> None:
    earlier = {"role": "tool", "content": "old", "tool_call_id": "call_1"}
    both = assistant(call_entry("call_1"), call_entry("call_2"))
    parts = [{"type": "text", "text": "sunny"}, {"type": "text", "text": "20C"}]
    payload = with_messages(
        ASSISTANT_CALL,
        earlier,
        both,
        {"role": "tool", "content": "3", "tool_call_id": "call_1"},
        {"role": "tool", "content": parts, "tool_call_id": "call_2"},
    )
    data = post(server, payload).json()
    assert data["choices"][0]["message"]["content"] == "Tool results: 3; sunny 20C"
    assert data["choices"][0]["finish_reason"] == "stop"
    # A user message last: the usual echo.
    payload["messages"].append({"role": "user", "content": "thanks"})
    assert post(server, payload).json()["choices"][0]["message"]["content"] == "You said: thanks"


def test_reply_callable_returning_a_reply_runs_a_tool_loop() -> None:
    def reply(request: dict[str, Any]) -> str | Reply:
        last: dict[str, Any] = request["messages"][-1]
        if last["role"] == "tool":
            return f"It is {last['content']}"
        return Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})])

    with LocalLunarServer(reply=reply) as server:
        messages: list[dict[str, Any]] = [{"role": "user", "content": "weather?"}]
        first = post(server, {"model": "m", "messages": messages, "tools": TOOLS}).json()
        message = first["choices"][0]["message"]
        (call,) = message["tool_calls"]
        messages += [message, {"role": "tool", "content": "sunny", "tool_call_id": call["id"]}]
        second = post(server, {"model": "m", "messages": messages, "tools": TOOLS}).json()
    assert second["choices"][0]["message"]["content"] == "It is sunny"
    assert second["choices"][0]["finish_reason"] == "stop"


def test_reply_callable_returning_something_else_is_a_500() -> None:
    with LocalLunarServer(reply=lambda request: [ADD]) as server:  # type: ignore[arg-type,return-value]
        r = post(server, body())
    assert r.status_code == 500
    assert "a str or a Reply" in r.json()["error"]["message"]
    with pytest.raises(TypeError, match="reply"):
        LocalLunarServer(reply=42)  # type: ignore[arg-type]


def test_scripted_reply_steps(server: LocalLunarServer) -> None:
    server.script(Reply(tool_calls=[ADD]), "plain", Fault.reply(Reply("text", [WEATHER])))
    first = post(server, body()).json()["choices"][0]
    assert first["finish_reason"] == "tool_calls"
    assert first["message"]["tool_calls"][0]["id"] == "call_a"
    assert post(server, body()).json()["choices"][0]["message"]["content"] == "plain"
    chunks = chunks_of(post(server, body(stream=True)).content)
    assert content_of(chunks) == "text"
    assert arguments_by_index(tool_deltas(chunks)) == {0: WEATHER_JSON}
    assert post(server, body()).json()["choices"][0]["message"]["content"].startswith("You said")


def test_reply_and_tool_call_values() -> None:
    reply = Reply(tool_calls=[ADD])  # a list is kept as a tuple: the Reply stays immutable
    assert reply.tool_calls == (ADD,)
    assert Reply(tool_calls=[ADD]) == reply
    assert ToolCall("f", {"x": "é"}).arguments_text() == '{"x":"é"}'
    with pytest.raises(TypeError):
        ToolCall("f", {"x": object()})  # not JSON: fails here, not inside the server
    with pytest.raises(ValueError, match="name"):
        ToolCall("", {})
    with pytest.raises(TypeError):
        Reply(tool_calls=[{"name": "f"}])  # type: ignore[list-item]
    with pytest.raises(AttributeError):
        reply.text = "x"  # type: ignore[misc]
