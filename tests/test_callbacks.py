"""Every callback handler sees every token once, in order, before the caller gets it."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tracers._streaming import _V2StreamingCallbackHandler

from .helpers import Recorder, mock_model, text_stream

TOKENS = ["Once", " upon", " a", " time"]


class Tokens(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)


class AsyncTokens(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    async def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)


class V2Events(BaseCallbackHandler, _V2StreamingCallbackHandler):
    def __init__(self) -> None:
        self.events: list[Any] = []

    def on_stream_event(self, event: Any, **kwargs: Any) -> None:
        self.events.append(event)


def text_tokens(tokens: list[str]) -> list[str]:
    return [t for t in tokens if t]


def model() -> Any:
    return mock_model(Recorder(text_stream(*TOKENS)))


def test_stream_fires_each_token_before_yielding_it() -> None:
    handler = Tokens()
    for chunk in model().stream("hi", config={"callbacks": [handler]}):
        if chunk.content:
            assert handler.tokens[-1] == chunk.content  # already seen by the handler
    assert text_tokens(handler.tokens) == TOKENS


async def test_astream_fires_each_token_before_yielding_it() -> None:
    handler, async_handler = Tokens(), AsyncTokens()
    async for chunk in model().astream("hi", config={"callbacks": [handler, async_handler]}):
        if chunk.content:
            assert handler.tokens[-1] == async_handler.tokens[-1] == chunk.content
    assert text_tokens(handler.tokens) == text_tokens(async_handler.tokens) == TOKENS


def test_invoke_with_streaming_fires_each_token_once() -> None:
    handler = Tokens()
    llm = mock_model(Recorder(text_stream(*TOKENS)), streaming=True)
    assert llm.invoke("hi", config={"callbacks": [handler]}).content == "".join(TOKENS)
    assert text_tokens(handler.tokens) == TOKENS


async def test_ainvoke_with_stream_kwarg_fires_each_token_once() -> None:
    handler = AsyncTokens()
    message = await model().ainvoke("hi", stream=True, config={"callbacks": [handler]})
    assert message.content == "".join(TOKENS)
    assert text_tokens(handler.tokens) == TOKENS


async def test_astream_events_fires_each_token_once() -> None:
    handler = Tokens()
    streamed = [
        event["data"]["chunk"].content
        async for event in model().astream_events(
            "hi", version="v2", config={"callbacks": [handler]}
        )
        if event["event"] == "on_chat_model_stream"
    ]
    assert text_tokens(streamed) == TOKENS
    assert text_tokens(handler.tokens) == TOKENS


async def test_lcel_chain_streams_token_by_token() -> None:
    handler = Tokens()
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | model() | StrOutputParser()
    pieces = [
        piece async for piece in chain.astream({"q": "story"}, config={"callbacks": [handler]})
    ]
    assert text_tokens(pieces) == TOKENS
    assert text_tokens(handler.tokens) == TOKENS
    assert [p for p in chain.stream({"q": "story"}) if p] == TOKENS


def test_stream_events_v3_with_a_token_handler() -> None:
    handler = Tokens()
    stream = model().stream_events("hi", version="v3", config={"callbacks": [handler]})
    events = list(stream)
    assert events[0]["event"] == "message-start"
    assert events[-1]["event"] == "message-finish"
    deltas = [e["delta"]["text"] for e in events if e["event"] == "content-block-delta"]
    assert deltas == TOKENS
    assert stream.output.text == "".join(TOKENS)
    assert stream.output.usage_metadata is not None
    assert text_tokens(handler.tokens) == TOKENS


async def test_astream_events_v3() -> None:
    handler = AsyncTokens()
    stream = await model().astream_events("hi", version="v3", config={"callbacks": [handler]})
    events = [event async for event in stream]
    assert events[-1]["event"] == "message-finish"
    assert (await stream.output).text == "".join(TOKENS)
    assert text_tokens(handler.tokens) == TOKENS


def test_invoke_with_a_v2_handler_still_feeds_token_handlers_once() -> None:
    # A v2 handler routes invoke through the event path, which passes run_manager into
    # _stream and fires no token callbacks itself: ChatLunar fires them, exactly once.
    tokens, events = Tokens(), V2Events()
    message = model().invoke("hi", config={"callbacks": [tokens, events]})
    assert message.text == "".join(TOKENS)  # this path assembles v1 content blocks
    assert text_tokens(tokens.tokens) == TOKENS
    assert any(e["event"] == "content-block-delta" for e in events.events)
