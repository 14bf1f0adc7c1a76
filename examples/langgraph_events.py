"""A ``create_agent`` run streamed as protocol events: ``stream_events(version="v3")``.

    python examples/langgraph_events.py            # offline: the local Lunar server plays the model
    python examples/langgraph_events.py --async    # the same with astream_events(version="v3")
    LUNAR_API_KEY=... python examples/langgraph_events.py   # the real thing

An agent is a LangGraph graph, so ``agent.stream_events(..., version="v3")`` returns a run
stream with typed projections instead of raw chunks: ``run.messages`` gives one stream per
model call (its ``.text`` yields the text as it arrives, ``.tool_calls`` the calls it made,
``.output`` the finished ``AIMessage``), ``run.tool_calls`` one stream per tool the agent runs
(``.tool_name``, ``.input``, then ``.output``), and ``run.output`` the final state. Iterating
is what drives the run: there is no background thread. The v3 API is experimental in
LangGraph and langchain-core (it warns so) and may change.

Offline, the local server answers with ``scripted_brain`` (below): first a tool call, then an
answer that uses the tool's result.
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from langchain.agents import create_agent
from langchain_core._api import LangChainBetaWarning
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from langchain_lunar import ChatLunar
from langchain_lunar.testing import LocalLunarServer, Reply, ToolCall

QUESTION = "Will I need a coat in Oslo tomorrow?"


@tool
def get_weather(city: str) -> str:
    """Get tomorrow's weather for a city."""
    return {"Oslo": "light snow, -3 °C", "Paris": "sunny, 21 °C"}.get(city, "no forecast")


def build_agent(model: ChatLunar) -> Any:
    return create_agent(model, tools=[get_weather], system_prompt="You answer about the weather.")


def show(kind: str, item: Any) -> None:
    """Print what the run streams: the text token by token, the tool calls and results."""
    if kind == "text":
        print(item, end="", flush=True)
    elif kind == "message" and item.text:  # a model call that wrote text has finished
        print()
    elif kind == "tool_call":  # what the model asked for
        print(f"[calling {item['name']}({item['args']})]")
    elif kind == "tool_result":  # what the tool gave back
        print(f"[{item.tool_name} -> {item.output}]")


OnEvent = Callable[[str, Any], Any]


def run(model: ChatLunar, question: str = QUESTION, on_event: OnEvent = show) -> dict[str, Any]:
    """Stream the agent's run to ``on_event``; return its final state."""
    agent = build_agent(model)
    with agent.stream_events({"messages": [("user", question)]}, version="v3") as stream:
        # Model calls and tool runs, in the order they happen.
        for projection, item in stream.interleave("messages", "tool_calls"):
            if projection == "messages":
                for delta in item.text:  # each piece of text as it arrives
                    on_event("text", delta)
                for call in item.tool_calls.get():  # the finished calls, args parsed
                    on_event("tool_call", call)
                on_event("message", item.output)
            else:
                for _partial_output in item:  # iterating waits for the tool to finish
                    pass
                on_event("tool_result", item)
        state: dict[str, Any] = stream.output
    return state


async def arun(
    model: ChatLunar, question: str = QUESTION, on_event: OnEvent = show
) -> dict[str, Any]:
    """``run`` with ``astream_events(version="v3")``: model calls and tool runs are read by
    two tasks at once (the async run stream has no ``interleave``)."""
    agent = build_agent(model)
    request = {"messages": [("user", question)]}
    async with await agent.astream_events(request, version="v3") as stream:

        async def model_calls() -> None:
            async for message in stream.messages:
                async for delta in message.text:
                    on_event("text", delta)
                for call in await message.tool_calls:
                    on_event("tool_call", call)
                on_event("message", await message.output)

        async def tool_runs() -> None:
            async for call in stream.tool_calls:
                async for _partial_output in call:
                    pass
                on_event("tool_result", call)

        await asyncio.gather(model_calls(), tool_runs())
        state: dict[str, Any] = await stream.output()
    return state


def answer_of(state: dict[str, Any]) -> str:
    """The agent's final answer: the text of the last message."""
    last: AIMessage = state["messages"][-1]
    return last.text


# --- Offline: what a model would answer at each step -----------------------------------------


def scripted_brain(body: dict[str, Any]) -> Reply:
    """Look up the weather, then answer with it."""
    result = next((m["content"] for m in body["messages"] if m["role"] == "tool"), None)
    if result is None:
        return Reply(tool_calls=[ToolCall("get_weather", {"city": "Oslo"}, id="call_weather")])
    return Reply(text=f"Tomorrow Oslo will have {result}, so yes: take a warm coat.")


def main(argv: list[str]) -> int:
    warnings.filterwarnings("ignore", category=LangChainBetaWarning)  # "v3 is experimental"
    with ExitStack() as stack:
        if os.environ.get("LUNAR_API_KEY"):
            model = ChatLunar(model=os.environ.get("LUNAR_MODEL", "gpt-4o-mini"))
        else:
            server = stack.enter_context(LocalLunarServer(reply=scripted_brain, token_delay=0.02))
            model = ChatLunar(model="gpt-4o-mini", base_url=server.base_url, api_key="sk-local")
            print(f"(offline: the local Lunar server at {server.base_url} plays the model)\n")
        if "--async" in argv:
            asyncio.run(arun(model))
        else:
            run(model)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
