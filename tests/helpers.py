"""Builders for canned Lunar responses, served through httpx.MockTransport."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from langchain_core.messages import AIMessageChunk

from langchain_lunar import ChatLunar

Handler = Callable[[httpx.Request], httpx.Response]


def chunk(content: str | None = None, *, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    """One ``chat.completion.chunk`` with a single choice."""
    if content is not None:
        delta["content"] = content
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def usage_chunk(prompt: int = 9, completion: int = 2, **extra: Any) -> dict[str, Any]:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    usage["total_tokens"] = prompt + completion
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": {**usage, **extra},
    }


def completion(content: str, *, model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` answering ``content``."""
    message = {"role": "assistant", "content": content}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return {"id": "c1", "model": model, "choices": [choice], **extra}


def sse(*payloads: Any, done: bool = True, eol: str = "\n") -> bytes:
    """A Server-Sent Events body: each payload as one ``data:`` event, then ``[DONE]``."""
    events = [p if isinstance(p, str) else json.dumps(p) for p in payloads]
    if done:
        events.append("[DONE]")
    return "".join(f"data: {e}{eol}{eol}" for e in events).encode()


def text_stream(*tokens: str, model: str = "gpt-4o-mini", usage: bool = True) -> bytes:
    """The plain stream of the protocol doc for ``tokens``."""
    first = chunk("", role="assistant")
    first["model"] = model
    payloads: list[Any] = [first, *(chunk(t) for t in tokens), chunk(finish="stop")]
    if usage:
        payloads.append(usage_chunk(completion=len(tokens)))
    return sse(*payloads)


def sse_response(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, headers={"content-type": "text/event-stream"}, content=body)


class Recorder:
    """A MockTransport handler that answers with ``body`` and keeps every request."""

    def __init__(self, body: bytes | Handler) -> None:
        self.body = body
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if callable(self.body):
            return self.body(request)
        return sse_response(self.body)

    @property
    def last_json(self) -> dict[str, Any]:
        return json.loads(self.requests[-1].content)


def merged(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    """The chunks added up, as LangChain aggregates a stream."""
    return chunks[0] + chunks[1:]


def mock_model(handler: Handler, **fields: Any) -> ChatLunar:
    """A ChatLunar whose sync and async clients both answer through ``handler``."""
    transport = httpx.MockTransport(handler)
    fields.setdefault("model", "gpt-4o-mini")
    fields.setdefault("api_key", "test-key")
    fields.setdefault("max_retries", 0)  # tests of one exchange; retries have their own tests
    return ChatLunar(
        http_client=httpx.Client(transport=transport),
        http_async_client=httpx.AsyncClient(transport=transport),
        **fields,
    )


class PiecewiseStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body delivered in the given pieces, which records whether it was closed."""

    def __init__(self, pieces: list[bytes], *, async_delay: float = 0.0) -> None:
        self.pieces = pieces
        self.async_delay = async_delay
        self.sent = 0
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.pieces:
            self.sent += 1
            yield piece

    async def __aiter__(self) -> Any:
        for piece in self.pieces:
            if self.sent:
                await asyncio.sleep(self.async_delay)
            self.sent += 1
            yield piece

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


def load_example(path: Path, name: str) -> ModuleType:
    """Import a file of examples/ by its path (examples/ is not a package), as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def streamed_tokens(text: str) -> list[str]:
    """``text`` as the local server streams it: a word with the whitespace before it each."""
    return re.findall(r"\s*\S+|\s+$", text)
