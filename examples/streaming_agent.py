"""A tool-using agent that streams its tokens as it thinks, built with ``create_agent``.

    python examples/streaming_agent.py            # offline: the local Lunar server plays the model
    LUNAR_API_KEY=... python examples/streaming_agent.py   # the real thing

Offline, the local server answers with a small scripted "brain" (below) that calls the tools
the way a model would: two weather look-ups in parallel, then a packing tool, then a summary.
The agent, the tool loop and the token streaming are all real.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from typing import Any

from langchain.agents import create_agent
from langchain_core.messages import AIMessageChunk, ToolMessage
from langchain_core.tools import tool

from langchain_lunar import ChatLunar
from langchain_lunar.testing import LocalLunarServer, Reply, ToolCall

QUESTION = (
    "I'm flying from Paris to Oslo tomorrow. What's the weather in both, and what should I pack?"
)
WEATHER = {"Paris": "sunny, 21 °C", "Oslo": "light snow, -3 °C"}


@tool
def get_weather(city: str) -> str:
    """Get tomorrow's weather for a city."""
    return WEATHER.get(city, "no forecast")


@tool
def packing_list(conditions: list[str]) -> str:
    """Suggest what to pack for a trip through the given weather conditions."""
    cold = any("snow" in c or "-" in c for c in conditions)
    return "a warm coat, gloves and boots" if cold else "light clothes and sunglasses"


def scripted_brain(body: dict[str, Any]) -> Reply:
    """What a model would answer at each step of this task (used offline only)."""
    messages = body["messages"]
    results = {m["tool_call_id"]: m["content"] for m in messages if m["role"] == "tool"}
    if not results:
        cities = [city for city in WEATHER if city in messages[-1]["content"]]
        return Reply(tool_calls=[ToolCall("get_weather", {"city": c}, id=f"w_{c}") for c in cities])
    forecasts = {city: results[f"w_{city}"] for city in WEATHER if f"w_{city}" in results}
    if "pack" not in results:
        return Reply(
            text="Let me check what to pack.",
            tool_calls=[
                ToolCall("packing_list", {"conditions": list(forecasts.values())}, id="pack")
            ],
        )
    lines = ", ".join(f"{city}: {forecast}" for city, forecast in forecasts.items())
    return Reply(text=f"Tomorrow's weather is {lines}. Pack {results['pack']}.")


def build_agent(model: ChatLunar) -> Any:
    return create_agent(model, tools=[get_weather, packing_list], system_prompt="You plan trips.")


def run(model: ChatLunar, question: str = QUESTION) -> str:
    """Stream the agent's tokens and tool activity to stdout; return the final answer."""
    agent = build_agent(model)
    answer = ""
    for message, _metadata in agent.stream(
        {"messages": [("user", question)]}, stream_mode="messages"
    ):
        if isinstance(message, AIMessageChunk):
            if message.content:
                print(message.content, end="", flush=True)
                answer += str(message.content)
            for call in message.tool_call_chunks:
                if call.get("name"):
                    print(f"\n[calling {call['name']}]", end="", flush=True)
            if message.chunk_position == "last":
                print(flush=True)
                answer = answer if not message.tool_calls else ""
        elif isinstance(message, ToolMessage):
            print(f"[{message.name} -> {message.content}]", flush=True)
    return answer


def main() -> int:
    with ExitStack() as stack:
        if os.environ.get("LUNAR_API_KEY"):
            model = ChatLunar(model=os.environ.get("LUNAR_MODEL", "gpt-4o-mini"))
        else:
            server = stack.enter_context(LocalLunarServer(reply=scripted_brain, token_delay=0.02))
            model = ChatLunar(model="gpt-4o-mini", base_url=server.base_url)
            print(f"(offline: the local Lunar server at {server.base_url} plays the model)\n")
        run(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
