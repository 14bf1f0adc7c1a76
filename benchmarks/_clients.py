"""The clients under test: each streams one chat completion and returns its full text.

Every client family offers the same methods, so the measurement code treats them alike:

- ``stream_sync(model)`` / ``stream_async(model)``: the timed path (``floor_sync``,
  ``lunar_sync``, ``openai_async``, ... of the README), kept as tight as each API allows;
- ``texts_sync(model)`` / ``texts_async(model)``: the same stream as an iterator of content
  pieces, for measuring the time to the first token;
- ``aggregate(model)``: one answer assembled by the library (``invoke(..., stream=True)``);
  the floor assembles it by joining a list of strings.

The LangChain families also offer ``events_sync(model)`` / ``events_async(model)``:
``stream_events(version="v3")`` read as a UI reads it, through its ``.text`` deltas (the floor
has no such API; run.py asks only ChatLunar and ChatOpenAI for it).

The families: the floor (raw httpx), this package's ``ChatLunar`` (plain and resilient),
langchain-openai's ``ChatOpenAI``, and the vendor SDK's own LangChain class (lunar-sdk's
``lunar.integrations.langchain.ChatLunar``, family ``vendor``).

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

    def events_sync(self, model: str) -> str:
        """``lunar_v3_sync`` / ``openai_v3_sync``: ``stream_events(version="v3")``, joining the
        deltas of its ``.text`` projection."""
        return "".join(self.llm.stream_events(PROMPT, version="v3", model=model).text)

    async def events_async(self, model: str) -> str:
        """``lunar_v3_async`` / ``openai_v3_async``: ``await astream_events(version="v3")``,
        joining the deltas of its ``.text`` projection."""
        stream = await self.llm.astream_events(PROMPT, version="v3", model=model)
        return "".join([delta async for delta in stream.text])


class VendorClient(LangChainClient):
    """lunar-sdk's ``ChatLunar``, driven as the other LangChain models are, with two
    differences its source forces (lunar-sdk 0.2.0, ``lunar/integrations/langchain.py``):

    - its ``_stream``/``_astream`` pass ``model=self.model`` *and* the per-call kwargs to
      ``create()``, so a per-call ``model=`` raises ``TypeError`` (a duplicate keyword). Each
      model name gets a copy of one model object instead (``model_copy``, about 7 us, made at
      its first use and kept, as an application keeps one model object per model name). The
      copies share the one instance's private SDK clients, created here up front, and so
      their connection pools;
    - the same duplicate breaks ``invoke(..., stream=True)`` (``stream=True`` is passed twice:
      ``TypeError``), so it has no streamed aggregate; run.py tries it once and leaves the
      family out of figure d with the error it gets.

    Its SSE reader stops at ``[DONE]`` without reading the response to its end, so httpx
    closes the connection rather than returning it to the pool: every request of this family
    opens a new connection (to 127.0.0.1 here; over TLS elsewhere), which the other families
    do not. That is the SDK's own behaviour, so it is measured as it is.

    Its pools allow 100 connections (``lunar._config.DEFAULT_MAX_CONNECTIONS``; no separate
    keep-alive limit): exactly the 100 concurrent streams of figure b, so none of them waits
    for a connection. More concurrent streams than that would queue in its pool.
    """

    def __init__(self, llm: Any) -> None:
        super().__init__(llm)
        llm._get_client()  # the sync and async SDK clients, shared by every copy below
        llm._get_async_client()
        self._by_model: dict[str, Any] = {}

    def _for(self, model: str) -> Any:
        llm = self._by_model.get(model)
        if llm is None:
            llm = self.llm.model_copy(update={"model": model})
            # A copy shares the private attributes: the same SDK clients, so the same pools.
            assert llm._client is self.llm._client
            assert llm._async_client is self.llm._async_client
            self._by_model[model] = llm
        return llm

    def stream_sync(self, model: str) -> str:
        """``vendor_sync``: ``.stream()``, concatenating ``chunk.content``."""
        return "".join([chunk.content for chunk in self._for(model).stream(PROMPT)])

    async def stream_async(self, model: str) -> str:
        """``vendor_async``: ``.astream()``, concatenating ``chunk.content``."""
        return "".join([chunk.content async for chunk in self._for(model).astream(PROMPT)])

    def texts_sync(self, model: str) -> Iterator[str]:
        for chunk in self._for(model).stream(PROMPT):
            yield chunk.content

    async def texts_async(self, model: str) -> AsyncIterator[str]:
        async for chunk in self._for(model).astream(PROMPT):
            yield chunk.content

    def aggregate(self, model: str) -> str:
        """``invoke(..., stream=True)``, as for the others (a TypeError at lunar-sdk 0.2.0)."""
        text: str = self._for(model).invoke(PROMPT, stream=True).content
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


def vendor(base_url: str) -> VendorClient:
    """lunar-sdk's ChatLunar with its defaults. It posts to ``/v1/chat/completions`` under its
    ``base_url``, so it is given the server's root, without the ``/v1``."""
    from lunar.integrations.langchain import ChatLunar

    root = base_url.removesuffix("/v1")
    return VendorClient(ChatLunar(model="bench", base_url=root, api_key=API_KEY))


FAMILIES: dict[str, Callable[[str], Client]] = {
    "floor": Floor,
    "lunar": lunar,
    "lunar_resilient": lunar_resilient,
    "openai": openai,
    "vendor": vendor,
}
"""Client families by key; each runs in a worker process of its own."""

LABELS = {
    "floor": "floor (httpx+json)",
    "lunar": "ChatLunar",
    "lunar_resilient": "ChatLunar resilient",
    "openai": "ChatOpenAI",
    "vendor": "lunar-sdk ChatLunar",
}
