"""What LangChain's agents do with a ChatLunar's profile, against the local server over TCP.

Needs ``langchain`` (the `examples` extra); at the dependency floors it cannot be installed
(langgraph-sdk needs orjson>=3.10.1), so these tests are skipped there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip(
    "langchain.agents", reason="needs langchain (the `examples` extra); not at the floors"
)

from langchain.agents import create_agent
from langchain.agents.factory import _supports_provider_strategy
from langchain.agents.middleware import SummarizationMiddleware
from langchain_core.messages import AIMessage, HumanMessage
from pydantic import BaseModel

from langchain_lunar import ChatLunar
from langchain_lunar.testing import LocalLunarServer, Reply, ToolCall

from .calls import CallWay, call, invoking_ways


class Forecast(BaseModel):
    city: str
    degrees: int


FORECAST = {"city": "Oslo", "degrees": -3}


def forecaster(body: dict[str, Any]) -> Reply:
    """Answer the way the request asks: JSON text for a response_format, else a tool call."""
    if body.get("response_format", {}).get("type") == "json_schema":
        return Reply(json.dumps(FORECAST))
    return Reply(tool_calls=[ToolCall("Forecast", FORECAST)])


@pytest.fixture
def server() -> Iterator[LocalLunarServer]:
    with LocalLunarServer(reply=forecaster) as s:
        yield s


def model_for(server: LocalLunarServer, model: str, **fields: Any) -> ChatLunar:
    return ChatLunar(
        model=model, base_url=server.base_url, api_key="sk-local", max_retries=0, **fields
    )


@invoking_ways
async def test_create_agent_uses_native_structured_output_for_a_profiled_model(
    server: LocalLunarServer, way: CallWay
) -> None:
    # LangChain's own name patterns do not know this id: only the profile can tell.
    assert not _supports_provider_strategy("deepseek/deepseek-chat")
    llm = model_for(server, "deepseek/deepseek-chat")
    agent = create_agent(llm, response_format=Forecast)
    result = await call(agent, way, {"messages": [("user", "Weather in Oslo?")]})
    assert result["structured_response"] == Forecast(**FORECAST)
    [request] = server.requests
    assert request.body is not None
    response_format = request.body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"]["properties"].keys() == {"city", "degrees"}
    assert "tools" not in request.body  # no tool stands in for the answer, nor an empty list


@invoking_ways
async def test_create_agent_falls_back_to_a_tool_for_an_unknown_model(
    server: LocalLunarServer, way: CallWay
) -> None:
    agent = create_agent(model_for(server, "house-model-7"), response_format=Forecast)
    result = await call(agent, way, {"messages": [("user", "Weather in Oslo?")]})
    assert result["structured_response"] == Forecast(**FORECAST)
    body = server.requests[0].body
    assert body is not None
    assert "response_format" not in body
    assert [t["function"]["name"] for t in body["tools"]] == ["Forecast"]


def test_fractional_summarization_needs_and_finds_the_context_window() -> None:
    llm = ChatLunar(model="gpt-4o-mini", api_key="sk-test")
    SummarizationMiddleware(model=llm, trigger=("fraction", 0.8))  # raised without a profile
    with pytest.raises(ValueError, match="profile"):
        SummarizationMiddleware(
            model=ChatLunar(model="house-model-7", api_key="sk-test"), trigger=("fraction", 0.8)
        )


def summarizing_brain(body: dict[str, Any]) -> Reply:
    first = body["messages"][0]["content"]
    text = first if isinstance(first, str) else json.dumps(first)
    if "summar" in text.lower() and len(body["messages"]) == 1:
        return Reply("SUMMARY: the user asked about the weather many times.")
    return Reply("It is cold in Oslo.")


@invoking_ways
async def test_summarization_at_a_fraction_of_the_profiled_context(way: CallWay) -> None:
    with LocalLunarServer(reply=summarizing_brain) as server:
        llm = model_for(server, "gpt-4")  # an 8,191-token context in the data
        profile = llm.profile
        assert profile is not None
        assert profile["max_input_tokens"] <= 8192
        middleware = SummarizationMiddleware(
            model=llm, trigger=("fraction", 0.8), keep=("messages", 1)
        )
        agent = create_agent(llm, middleware=[middleware])
        # About 10,000 tokens by LangChain's approximate count (4 characters a token): more
        # than 80% of 8,191.
        history: list[Any] = []
        for i in range(10):
            history += [HumanMessage(f"question {i}: " + "weather " * 500), AIMessage("cold")]
        history.append(HumanMessage("And in Oslo?"))
        result = await call(agent, way, {"messages": history})
        assert result["messages"][-1].content == "It is cold in Oslo."
        summary_request, answer_request = (r.body for r in server.requests)
        assert summary_request is not None
        assert answer_request is not None
        assert len(summary_request["messages"]) == 1  # the summarization prompt
        sent = json.dumps(answer_request["messages"])
        assert "SUMMARY: the user asked about the weather" in sent
        assert "question 0" not in sent  # the old turns were replaced by the summary
