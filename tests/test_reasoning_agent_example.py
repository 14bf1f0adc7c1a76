"""examples/reasoning_agent.py, run against the local server over TCP: a reasoning model in a
``create_agent`` tool loop, streamed token by token, with a structured final answer.

Whichever way LangChain asks for the answer (a tool call, or the server's native structured
output when the model's profile says it has it), the checks hold: the scripted model answers
the form it is asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from langchain_lunar import ChatLunar
from langchain_lunar.testing import LocalLunarServer

from .helpers import load_example, streamed_tokens

pytest.importorskip("langchain.agents", reason='needs langchain (pip install -e ".[examples]")')

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "reasoning_agent.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    """examples/reasoning_agent.py, imported by path (examples/ is not a package)."""
    return load_example(EXAMPLE, "reasoning_agent_example")


@pytest.fixture
def server(example: ModuleType) -> Iterator[LocalLunarServer]:
    with LocalLunarServer(reply=example.scripted_brain, api_key="sk-local") as server:
        yield server


@pytest.fixture
def run(example: ModuleType, server: LocalLunarServer) -> tuple[Any, list[Any]]:
    """The example's agent run: its answer, and every token the agent's stream gave."""
    model = ChatLunar(
        model=example.MODEL, base_url=server.base_url, api_key="sk-local", max_retries=0
    )
    tokens: list[Any] = []
    answer = example.run(model, on_token=tokens.append)
    return answer, tokens


def test_the_answer_is_the_structured_forecast(
    example: ModuleType, run: tuple[Any, list[Any]]
) -> None:
    answer, _ = run
    assert answer == example.Forecast(city="Oslo", weather="light snow, -3 °C", take_a_coat=True)


def test_one_tool_loop_two_requests(server: LocalLunarServer, run: tuple[Any, list[Any]]) -> None:
    first, second = (request.body for request in server.requests)
    assert [m["role"] for m in first["messages"]] == ["user"]
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool"
    assert tool_message["tool_call_id"] == "call_weather_oslo"
    assert tool_message["content"] == "light snow, -3 °C"


def test_the_reasoning_goes_back_with_the_tool_call(
    example: ModuleType, server: LocalLunarServer, run: tuple[Any, list[Any]]
) -> None:
    first_step = example.scripted_brain(server.requests[0].body)
    assistant = server.requests[1].body["messages"][-2]
    assert assistant["role"] == "assistant"
    assert [call["id"] for call in assistant["tool_calls"]] == ["call_weather_oslo"]
    assert assistant["reasoning_content"] == first_step.reasoning


def test_the_agent_streams_token_by_token(
    example: ModuleType, server: LocalLunarServer, run: tuple[Any, list[Any]]
) -> None:
    steps = [example.scripted_brain(request.body) for request in server.requests]
    _, tokens = run
    thinking = [t.additional_kwargs["reasoning_content"] for t in tokens if t.additional_kwargs]
    text = [t.content for t in tokens if t.content]
    # Each word reaches the caller as a chunk of its own, as the server sent it.
    assert thinking == [piece for step in steps for piece in streamed_tokens(step.reasoning or "")]
    assert text == [piece for step in steps for piece in streamed_tokens(step.text)]
    assert len(text) > 1
    # Each step's thinking comes before its text and its tool call.
    assert tokens[0].additional_kwargs["reasoning_content"] == thinking[0]
    first_text = next(i for i, t in enumerate(tokens) if t.content)
    assert tokens[first_text - 1].additional_kwargs["reasoning_content"] == thinking[-1]
    assert tokens[-1].chunk_position == "last"
