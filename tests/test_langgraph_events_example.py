"""examples/langgraph_events.py, run against the local server over TCP: a ``create_agent`` run
streamed with ``stream_events(version="v3")`` and ``astream_events(version="v3")``.

The checks hold whether ChatLunar's protocol events come from langchain-core's compat bridge
or from ChatLunar's own hooks: they look at text, tool calls and results, never at message ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_lunar import ChatLunar
from langchain_lunar.testing import LocalLunarServer

from .helpers import load_example, streamed_tokens

pytest.importorskip("langchain.agents", reason='needs langchain (pip install -e ".[examples]")')
if not hasattr(pytest.importorskip("langgraph.prebuilt"), "ToolCallTransformer"):
    pytest.skip("needs a LangGraph with stream_events(version='v3')", allow_module_level=True)

# The v3 API warns that it is experimental and may change.
pytestmark = pytest.mark.filterwarnings("ignore:The v3 streaming protocol")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "langgraph_events.py"
WEATHER = "light snow, -3 °C"
ANSWER = f"Tomorrow Oslo will have {WEATHER}, so yes: take a warm coat."
CALL = {"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_weather"}


@pytest.fixture(scope="module")
def example() -> ModuleType:
    """examples/langgraph_events.py, imported by path (examples/ is not a package)."""
    return load_example(EXAMPLE, "langgraph_events_example")


@pytest.fixture
def server(example: ModuleType) -> Iterator[LocalLunarServer]:
    with LocalLunarServer(reply=example.scripted_brain, api_key="sk-local") as server:
        yield server


@pytest.fixture(params=["sync", "async"])
def way(request: pytest.FixtureRequest) -> str:
    """The example's ``run`` (stream_events) or ``arun`` (astream_events)."""
    return str(request.param)


@pytest.fixture
def streamed(
    example: ModuleType, server: LocalLunarServer, way: str
) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """The example's agent run: what it streamed to ``on_event``, in order, and its final state."""
    model = ChatLunar(
        model="gpt-4o-mini", base_url=server.base_url, api_key="sk-local", max_retries=0
    )
    events: list[tuple[str, Any]] = []

    def on_event(kind: str, item: Any) -> None:
        events.append((kind, item))

    if way == "sync":
        state = example.run(model, on_event=on_event)
    else:
        state = asyncio.run(example.arun(model, on_event=on_event))
    return events, state


def _of(kind: str, events: list[tuple[str, Any]]) -> list[Any]:
    return [item for event_kind, item in events if event_kind == kind]


def test_the_text_arrives_token_by_token(
    streamed: tuple[list[tuple[str, Any]], dict[str, Any]],
) -> None:
    events, _ = streamed
    deltas = _of("text", events)
    assert len(deltas) > 1
    assert deltas == streamed_tokens(ANSWER)  # each word as the server sent it, in order
    assert "".join(deltas) == ANSWER


def test_the_tool_call_and_its_result_appear(
    streamed: tuple[list[tuple[str, Any]], dict[str, Any]],
) -> None:
    events, _ = streamed
    [call] = _of("tool_call", events)
    assert {key: call[key] for key in CALL} == CALL
    [result] = _of("tool_result", events)
    assert (result.tool_call_id, result.tool_name, result.input) == (
        CALL["id"],
        CALL["name"],
        CALL["args"],
    )
    assert (result.output, result.error, result.completed) == (WEATHER, None, True)


def test_the_run_streams_in_the_order_it_happens(
    way: str, streamed: tuple[list[tuple[str, Any]], dict[str, Any]]
) -> None:
    events, _ = streamed
    kinds = [
        kind for index, (kind, _) in enumerate(events) if index == 0 or events[index - 1][0] != kind
    ]
    if way == "sync":  # interleave: one sequence in arrival order, the text in one run
        assert kinds == ["tool_call", "message", "tool_result", "text", "message"]
    else:  # two tasks, each in its own order
        model_calls = [kind for kind in kinds if kind != "tool_result"]
        assert model_calls == ["tool_call", "message", "text", "message"]
        assert kinds.count("tool_result") == 1


def test_each_model_call_ends_in_its_message(
    streamed: tuple[list[tuple[str, Any]], dict[str, Any]],
) -> None:
    events, state = streamed
    calling, answering = _of("message", events)
    assert [(c["name"], c["args"], c["id"]) for c in calling.tool_calls] == [
        (CALL["name"], CALL["args"], CALL["id"])
    ]
    assert (answering.text, answering.tool_calls) == (ANSWER, [])
    assert [calling.text, answering.text] == [m.text for m in state["messages"][1::2]]


def test_the_final_state_holds_the_whole_conversation(
    example: ModuleType, streamed: tuple[list[tuple[str, Any]], dict[str, Any]]
) -> None:
    _, state = streamed
    question, calling, result, answer = state["messages"]
    assert isinstance(question, HumanMessage)
    assert question.text == example.QUESTION
    assert isinstance(calling, AIMessage)
    assert [(c["name"], c["args"], c["id"]) for c in calling.tool_calls] == [
        (CALL["name"], CALL["args"], CALL["id"])
    ]
    assert isinstance(result, ToolMessage)
    assert (result.tool_call_id, result.content) == (CALL["id"], WEATHER)
    assert isinstance(answer, AIMessage)
    assert (answer.text, answer.tool_calls) == (ANSWER, [])
    assert example.answer_of(state) == ANSWER
    assert not any(isinstance(m, SystemMessage) for m in state["messages"])


def test_the_tool_call_goes_back_in_the_second_request(
    server: LocalLunarServer, streamed: tuple[list[tuple[str, Any]], dict[str, Any]]
) -> None:
    first, second = (request.body for request in server.requests)
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "tool"]
    assistant, tool = second["messages"][2:]
    # The tool call travels in tool_calls, not as a content block of the v1 message.
    assert assistant["content"] == ""
    assert [(c["id"], c["function"]["name"]) for c in assistant["tool_calls"]] == [
        (CALL["id"], CALL["name"])
    ]
    assert (tool["tool_call_id"], tool["content"]) == (CALL["id"], WEATHER)
