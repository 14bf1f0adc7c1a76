"""A one-page web chat that streams a ``ChatLunar`` answer into the browser token by token.

    pip install -e ".[examples]"
    python examples/web_chat/app.py [--port 8000] [--host 127.0.0.1]

With ``LUNAR_API_KEY`` set it asks Lunar (``LUNAR_MODEL`` picks the model, default
gpt-4o-mini); without one it starts a local Lunar-compatible server that plays a reasoning
model, so the page works offline and shows its thinking.

``POST /chat`` takes ``{"prompt": "..."}`` and answers with Server-Sent Events, forwarded from a
``LunarStreamHandler`` watching the LCEL chain. Every ``data:`` payload is JSON:

    event: reasoning  data: " piece"     (a JSON string: the new piece of the model's thinking)
    event: token      data: " piece"     (a JSON string: the new text of the answer)
    event: done       data: {"model", "input_tokens", "output_tokens", "reasoning_tokens",
                             "total_tokens", "cost_usd"}
    event: error      data: {"message": "..."}

A reasoning model's ``reasoning`` events come before the answer's ``token`` events; the page
shows them in a "Thinking" panel above the answer, never in it.

When the browser goes away (its Stop button aborts the fetch), the chain's task is cancelled,
which closes the HTTP request to Lunar at once, so nobody pays for tokens no one reads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from langchain_lunar import ChatLunar, LunarStreamHandler, StreamEvent
from langchain_lunar.testing import LocalLunarServer

STATIC = Path(__file__).resolve().parent / "static"
SYSTEM_PROMPT = "You are a friendly assistant. Answer clearly in a few short paragraphs."
DISCONNECT_POLL_SECONDS = 0.1
CLEANUP_TIMEOUT_SECONDS = 5.0

OFFLINE_REPLY = (
    "The Moon is grey because its surface is covered in regolith, a layer of crushed rock and "
    "fine dust made by billions of years of meteorite impacts. Most of that rock is basalt and "
    "anorthosite, minerals that reflect only a small share of the sunlight that falls on them, "
    "about as much as worn asphalt. With no air to scatter light and no water or plants to add "
    "colour, what we see is simply the rock itself. The darker patches, the maria, are old lava "
    "plains rich in iron and titanium, while the brighter highlands are older and lighter in "
    "tone. Up close, astronauts described shades of brown and tan, and careful photographs "
    "show faint hues of blue and orange that hint at different minerals. From Earth, though, "
    "our eyes blend it all together against the black sky, and the Moon looks like a calm, "
    "silvery grey lamp. That quiet grey is the record of a world without weather, where "
    "footprints left decades ago still wait in the dust."
)
"""What the local server answers offline: about 150 words, so streaming is easy to watch."""

OFFLINE_THINKING = (
    "The question is why the Moon looks grey. The short answer is its surface: regolith, "
    "crushed basalt and anorthosite that reflect little sunlight. Then the dark maria against "
    "the brighter highlands, the faint colours seen up close, and why from Earth it all blends "
    "into one grey."
)
"""What the local server thinks before every answer offline, as a reasoning model does."""


def create_app(model: ChatLunar) -> Starlette:
    """The chat app: ``GET /`` serves the page, ``POST /chat`` streams an answer from ``model``."""
    prompt = ChatPromptTemplate.from_messages([("system", SYSTEM_PROMPT), ("human", "{prompt}")])
    chain = prompt | model
    secret = model.api_key.get_secret_value() if model.api_key is not None else None

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def chat(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body must be JSON"}, status_code=400)
        text = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            return JSONResponse({"error": 'send {"prompt": "..."}'}, status_code=400)
        return StreamingResponse(
            answer_events(chain, text, request, secret=secret),
            media_type="text/event-stream",
            # No caching or proxy buffering: every event must reach the page as it is sent.
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return Starlette(
        routes=[
            Route("/", index),
            Route("/chat", chat, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )


async def answer_events(
    chain: Runnable[dict[str, Any], Any], prompt: str, request: Request, *, secret: str | None
) -> AsyncIterator[str]:
    """Run ``chain`` in a task and yield its answer as SSE text, until done or disconnected."""
    handler = LunarStreamHandler()
    run = asyncio.create_task(_run_chain(chain, prompt, handler))
    # events() ends with the outermost run; close() also ends it if the task dies before that.
    run.add_done_callback(lambda _task: handler.close())
    watcher = asyncio.create_task(_cancel_on_disconnect(request, run))
    reported = False
    try:
        async for event in handler.events():
            if event.kind == "reasoning":
                yield sse("reasoning", event.reasoning)
            elif event.kind == "content":
                yield sse("token", event.content)
            elif event.kind == "done":
                reported = True
                yield sse("done", usage_summary(event))
            elif event.kind == "error":
                reported = True
                yield sse("error", {"message": public_message(event.error, secret)})
        # A failure outside the model run (the prompt, say) reaches no handler: report it too.
        if not reported and run.done() and not run.cancelled() and run.exception() is not None:
            yield sse("error", {"message": public_message(run.exception(), secret)})
    finally:
        # Whatever ended the stream (the end of the answer, a disconnect, Starlette cancelling
        # this generator), the model's task must not outlive it: cancelling it closes the
        # upstream response at once.
        run.cancel()
        watcher.cancel()
        # Then wait for that close, shielded: Starlette cancels through an anyio scope, which
        # cancels every await in here again, and a gather() would pass that second cancel on to
        # the run and break off its cleanup, leaving the upstream connection open.
        with anyio.CancelScope(shield=True):
            await asyncio.wait({run, watcher}, timeout=CLEANUP_TIMEOUT_SECONDS)
        if run.done() and not run.cancelled():
            run.exception()  # already reported to the page; mark it seen so asyncio won't log it


async def _run_chain(
    chain: Runnable[dict[str, Any], Any], prompt: str, handler: LunarStreamHandler
) -> None:
    # astream, not ainvoke: ainvoke may make a non-streaming request, and then no token
    # would reach the handler before the whole answer is there.
    async for _chunk in chain.astream({"prompt": prompt}, config={"callbacks": [handler]}):
        pass


async def _cancel_on_disconnect(request: Request, run: asyncio.Task[None]) -> None:
    """Cancel ``run`` as soon as the client is gone.

    Over ASGI spec 2.3 Starlette notices the disconnect itself and cancels the generator, but
    over 2.4 it only learns of it from a failing send, and a server may drop sends to a closed
    connection silently; polling makes the stop prompt either way.
    """
    while not run.done():
        if await request.is_disconnected():
            run.cancel()
            return
        await asyncio.sleep(DISCONNECT_POLL_SECONDS)


def sse(event: str, data: Any) -> str:
    """One Server-Sent Event; JSON keeps spaces and line breaks of a token intact."""
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def usage_summary(event: StreamEvent) -> dict[str, Any]:
    """The ``done`` event's payload: which model served and what it cost."""
    usage: dict[str, Any] = dict(event.usage or {})
    return {
        "model": event.model,
        "input_tokens": usage.get("input_tokens"),
        "output_tokens": usage.get("output_tokens"),
        "reasoning_tokens": (usage.get("output_token_details") or {}).get("reasoning"),
        "total_tokens": usage.get("total_tokens"),
        "cost_usd": event.cost_usd,
    }


def public_message(error: BaseException | None, secret: str | None) -> str:
    """A one-line message for the page, with the API key masked should it ever appear."""
    text = " ".join(str(error).split()) if error is not None else ""
    message = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return message.replace(secret, "***") if secret else message


@contextlib.contextmanager
def chat_model() -> Iterator[ChatLunar]:
    """Lunar when ``LUNAR_API_KEY`` is set, else a local server that lives as long as this and
    plays a reasoning model: it thinks ``OFFLINE_THINKING``, then answers ``OFFLINE_REPLY``."""
    model_name = os.environ.get("LUNAR_MODEL", "gpt-4o-mini")
    if os.environ.get("LUNAR_API_KEY"):
        model = ChatLunar(model=model_name)
        print(f"Using Lunar at {model.base_url} with model {model_name}.")
        yield model
        return
    with LocalLunarServer(
        reply=OFFLINE_REPLY, reasoning=OFFLINE_THINKING, token_delay=0.03
    ) as server:
        print(
            f"LUNAR_API_KEY is not set: using a local Lunar-compatible server at {server.base_url}."
        )
        yield ChatLunar(model=model_name, api_key="local-demo", base_url=server.base_url)


def main(argv: list[str] | None = None) -> None:
    """Serve the chat page until Ctrl-C."""
    parser = argparse.ArgumentParser(description="A web chat streaming answers from Lunar.")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    args = parser.parse_args(argv)
    with chat_model() as model:
        print(f"Open http://{args.host}:{args.port}/ in your browser.", flush=True)
        uvicorn.run(create_app(model), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
