"""The clients under test: each streams one chat completion and returns its full text.

Every client family offers the same methods, so the measurement code treats them alike:

- ``stream_sync(model)`` / ``stream_async(model)``: the timed path (``floor_sync``,
  ``lunar_sync``, ``openai_async``, ... of the README), kept as tight as each API allows;
- ``texts_sync(model)`` / ``texts_async(model)``: the same stream as an iterator of content
  pieces, for measuring the time to the first token;
- ``aggregate(model)``: one answer assembled by the library (``invoke(..., stream=True)``);
  the floor assembles it by joining a list of strings.

Model objects and HTTP clients are created once, in ``__init__``, outside any timed region,
as a real application creates them once and reuses their connection pools.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol

import httpx
from pydantic import SecretStr

PROMPT = "Count for the benchmark."
API_KEY = "sk-bench"
# The openai SDK's (and ChatLunar's) pool limits, so 100 concurrent streams get 100 connections
# and keep them alive between rounds in every client alike.
LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
TIMEOUT = httpx.Timeout(60.0, connect=10.0)


class Client(Protocol):
    """What the measurement code needs from a client family."""

    def stream_sync(self, model: str) -> str: ...

    async def stream_async(self, model: str) -> str: ...

    def texts_sync(self, model: str) -> Iterator[str]: ...

    def texts_async(self, model: str) -> AsyncIterator[str]: ...

    def aggregate(self, model: str) -> str: ...


class Floor:
    """The least a client can do: raw httpx lines and one ``json.loads`` per ``data:`` line."""

    def __init__(self, base_url: str) -> None:
        self._url = f"{base_url}/chat/completions"
        self._headers = {"Authorization": f"Bearer {API_KEY}", "Accept": "text/event-stream"}
        self._sync = httpx.Client(timeout=TIMEOUT, limits=LIMITS)
        # Bound to the worker's one event loop on first use, like any app's long-lived client.
        self._async = httpx.AsyncClient(timeout=TIMEOUT, limits=LIMITS)

    def _body(self, model: str) -> dict[str, Any]:
        return {
            "model": model,
            "messages": [{"role": "user", "content": PROMPT}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    # The two timed loops are written out rather than built on texts_sync/texts_async: a
    # generator layer would add to the floor a per-chunk cost that is not the floor's.
    def stream_sync(self, model: str) -> str:
        """``floor_sync``: ``iter_lines()`` and ``json.loads``, texts joined once at the end."""
        parts: list[str] = []
        with self._sync.stream(
            "POST", self._url, json=self._body(model), headers=self._headers
        ) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    choices = json.loads(line[6:])["choices"]
                    if choices:
                        content = choices[0]["delta"].get("content")
                        if content:
                            parts.append(content)
        return "".join(parts)

    async def stream_async(self, model: str) -> str:
        """``floor_async``: ``aiter_lines()`` and ``json.loads``."""
        parts: list[str] = []
        async with self._async.stream(
            "POST", self._url, json=self._body(model), headers=self._headers
        ) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    choices = json.loads(line[6:])["choices"]
                    if choices:
                        content = choices[0]["delta"].get("content")
                        if content:
                            parts.append(content)
        return "".join(parts)

    def texts_sync(self, model: str) -> Iterator[str]:
        with self._sync.stream(
            "POST", self._url, json=self._body(model), headers=self._headers
        ) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                content = _content_of(line)
                if content:
                    yield content

    async def texts_async(self, model: str) -> AsyncIterator[str]:
        async with self._async.stream(
            "POST", self._url, json=self._body(model), headers=self._headers
        ) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                content = _content_of(line)
                if content:
                    yield content

    def aggregate(self, model: str) -> str:
        return self.stream_sync(model)


def _content_of(line: str) -> str | None:
    if not line.startswith("data: ") or line == "data: [DONE]":
        return None
    choices = json.loads(line[6:])["choices"]
    return choices[0]["delta"].get("content") if choices else None


class LangChainClient:
    """A LangChain chat model (ChatLunar or ChatOpenAI) driven through its public API."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm

    def stream_sync(self, model: str) -> str:
        """``lunar_sync`` / ``openai_sync``: ``.stream()``, concatenating ``chunk.content``."""
        return "".join([chunk.content for chunk in self.llm.stream(PROMPT, model=model)])

    async def stream_async(self, model: str) -> str:
        """``lunar_async`` / ``openai_async``: ``.astream()``, concatenating ``chunk.content``."""
        return "".join([chunk.content async for chunk in self.llm.astream(PROMPT, model=model)])

    def texts_sync(self, model: str) -> Iterator[str]:
        for chunk in self.llm.stream(PROMPT, model=model):
            yield chunk.content

    async def texts_async(self, model: str) -> AsyncIterator[str]:
        async for chunk in self.llm.astream(PROMPT, model=model):
            yield chunk.content

    def aggregate(self, model: str) -> str:
        """LangChain merges every chunk into one message: ``invoke(..., stream=True)``."""
        text: str = self.llm.invoke(PROMPT, model=model, stream=True).content
        return text


def lunar(base_url: str) -> LangChainClient:
    """ChatLunar without retries, the same as the ChatOpenAI it is compared with."""
    from langchain_lunar import ChatLunar

    return LangChainClient(
        ChatLunar(model="bench", base_url=base_url, api_key=SecretStr(API_KEY), max_retries=0)
    )


def lunar_resilient(base_url: str) -> LangChainClient:
    """ChatLunar with retries and a fallback model configured; no fault ever happens."""
    from langchain_lunar import ChatLunar

    return LangChainClient(
        ChatLunar(
            model="bench",
            base_url=base_url,
            api_key=SecretStr(API_KEY),
            max_retries=2,
            fallbacks=["bench-fallback"],
        )
    )


def openai(base_url: str) -> LangChainClient:
    """ChatOpenAI (langchain-openai) with usage in streams, no retries."""
    from langchain_openai import ChatOpenAI

    return LangChainClient(
        ChatOpenAI(
            model="bench",
            base_url=base_url,
            api_key=SecretStr(API_KEY),
            stream_usage=True,
            max_retries=0,
        )
    )


FAMILIES: dict[str, Callable[[str], Client]] = {
    "floor": Floor,
    "lunar": lunar,
    "lunar_resilient": lunar_resilient,
    "openai": openai,
}
"""Client families by key; each runs in a worker process of its own."""

LABELS = {
    "floor": "floor (httpx+json)",
    "lunar": "ChatLunar",
    "lunar_resilient": "ChatLunar resilient",
    "openai": "ChatOpenAI",
}
