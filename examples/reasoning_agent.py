"""A reasoning model in a tool loop, streamed token by token, ending in a structured answer.

    python examples/reasoning_agent.py            # offline: the local Lunar server plays the model
    LUNAR_API_KEY=... python examples/reasoning_agent.py   # the real thing

``create_agent`` runs ``get_weather`` for the model and asks for a ``Forecast`` as the final
answer (``response_format``). The model thinks before each step; its thinking streams first,
token by token, and ChatLunar sends it back with the tool call in the next request, as
DeepSeek's thinking mode and OpenRouter require inside a tool loop. Offline, the local server
answers with ``scripted_brain`` (below), which reasons and calls tools as such a model would.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from langchain.agents import create_agent
from langchain_core.messages import AIMessageChunk
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_lunar import ChatLunar
from langchain_lunar.testing import LocalLunarServer, Reply, ToolCall

QUESTION = "Will I need a coat in Oslo tomorrow?"
MODEL = "deepseek/deepseek-reasoner"  # a reasoning model


class Forecast(BaseModel):
    """The answer: tomorrow's weather in a city, and whether to take a coat."""

    city: str
    weather: str
    take_a_coat: bool


@tool
def get_weather(city: str) -> str:
    """Get tomorrow's weather for a city."""
    return {"Oslo": "light snow, -3 °C", "Paris": "sunny, 21 °C"}.get(city, "no forecast")


def build_agent(model: ChatLunar) -> Any:
    # response_format=Forecast lets LangChain choose: the server's native structured output
    # when the model's profile says it has it, else a tool call that carries the answer.
    return create_agent(model, tools=[get_weather], response_format=Forecast)


def show(token: AIMessageChunk) -> None:
    """Print a token as it arrives: thinking dimmed (on a terminal), then the text."""
    thinking = token.additional_kwargs.get("reasoning_content", "")
    if thinking:
        dim, plain = ("\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "")
        print(f"{dim}{thinking}{plain}", end="", flush=True)
    else:
        print(token.content, end="\n" if token.chunk_position == "last" else "", flush=True)


def run(
    model: ChatLunar, question: str = QUESTION, on_token: Callable[[AIMessageChunk], Any] = show
) -> Forecast:
    """Stream the agent's tokens to ``on_token`` as they arrive; return its structured answer."""
    state: dict[str, Any] = {}
    for mode, data in build_agent(model).stream(
        {"messages": [("user", question)]}, stream_mode=["messages", "values"]
    ):
        if mode == "messages":
            token, _metadata = data  # each model token, and each tool's result
            if isinstance(token, AIMessageChunk):
                on_token(token)
        else:
            state = data  # the agent's whole state after each step
    answer: Forecast = state["structured_response"]
    return answer


# --- Offline: what a reasoning model would answer at each step -------------------------------


def scripted_brain(body: dict[str, Any]) -> Reply:
    """Think, look up the weather, think again, answer in the requested form."""
    messages = body["messages"]
    result = next((m["content"] for m in messages if m["role"] == "tool"), None)
    if result is None:
        return Reply(
            reasoning="The user asks about Oslo tomorrow. I should look up the forecast first.",
            tool_calls=[ToolCall("get_weather", {"city": "Oslo"}, id="call_weather_oslo")],
        )
    forecast = {"city": "Oslo", "weather": result, "take_a_coat": "-" in result}
    reasoning = f"The forecast is {result}. Below zero, so a coat is needed."
    if body.get("response_format", {}).get("type") == "json_schema":
        # Native structured output: the answer is the JSON text itself.
        return Reply(reasoning=reasoning, text=json.dumps(forecast, ensure_ascii=False))
    # LangChain's tool strategy: the answer goes in a call of the tool named after the schema.
    return Reply(
        reasoning=reasoning,
        text="Yes: take a coat.",
        tool_calls=[ToolCall("Forecast", forecast, id="call_answer")],
    )


def main() -> int:
    with ExitStack() as stack:
        if os.environ.get("LUNAR_API_KEY"):
            model = ChatLunar(model=os.environ.get("LUNAR_MODEL", MODEL))
        else:
            server = stack.enter_context(LocalLunarServer(reply=scripted_brain, token_delay=0.02))
            model = ChatLunar(model=MODEL, base_url=server.base_url, api_key="sk-local")
            print(f"(offline: the local Lunar server at {server.base_url} plays the model)\n")
        print(run(model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
