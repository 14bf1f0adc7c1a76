"""ChatLunar's native protocol events (``stream_events(version="v3")``), over real TCP.

Every reply the local server can script, in every wire style, must give a valid event stream
(langchain-tests' lifecycle check), sync and async, and assemble to the message that
langchain-core's compat bridge assembles from ``_stream``'s chunks; where the bridge loses
something (the pieces of streamed audio, all but the last log probabilities), to what adding up
``stream()``'s chunks gives.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.rate_limiters import InMemoryRateLimiter
from langchain_core.tracers._streaming import _V2StreamingCallbackHandler
from pydantic import ValidationError

from langchain_lunar import ChatLunar, StreamChunkTimeoutError, StreamInterruptedError
from langchain_lunar.testing import Audio, Fault, LocalLunarServer, Reply, ToolCall, WireStyle

from .helpers import merged

lifecycle = pytest.importorskip("langchain_tests.utils.stream_lifecycle")

pytestmark = pytest.mark.filterwarnings(
    "ignore::langchain_core._api.beta_decorator.LangChainBetaWarning"
)


class BridgedChatLunar(ChatLunar):
    """ChatLunar without the hooks: langchain-core converts ``_stream``'s chunks itself."""

    # ClassVar: a plain `_name = None` would be a pydantic private attribute, and the hooks
    # would stay.
    _stream_chat_model_events: ClassVar[None] = None
    _astream_chat_model_events: ClassVar[None] = None


def test_the_bridged_model_has_no_hooks_so_langchain_core_converts_its_chunks() -> None:
    bridged = BridgedChatLunar(model="m", base_url="http://127.0.0.1:9/v1")
    for name in ("_stream_chat_model_events", "_astream_chat_model_events"):
        assert getattr(bridged, name, None) is None
        assert callable(getattr(ChatLunar, name))


STYLES = (
    WireStyle(),
    WireStyle(mixed_chunk=True, reasoning_field="reasoning", usage="every_chunk"),
    WireStyle(reasoning_details=True, interleave_tool_calls=False, tool_fragment=1),
    WireStyle(role_chunk=False, model_in="every", usage="with_finish", usage_details="openai"),
    WireStyle(usage="never", extra_delta_fields={"provider_note": {"n": 1}}),
    WireStyle(split_data=True, comments=True, tool_fragment=100, usage_details="anthropic"),
)

_examples = itertools.count()
_TIMING = ("latency_ms", "ttft_ms")  # the server's own clock: differs between two answers


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[WireStyle, LocalLunarServer]]:
    started = {style: LocalLunarServer(style=style).start() for style in STYLES}
    yield started
    for server in started.values():
        server.stop()


words = st.lists(
    st.sampled_from(["alpha", "beta", " gamma", "δέλτα", "\n", "x", "{", '"q"', "  "]),
    min_size=1,
    max_size=6,
).map(" ".join)
arguments = st.one_of(
    st.dictionaries(st.sampled_from(["a", "b", "city"]), st.integers() | words, max_size=3),
    st.sampled_from(['{"a": ', "[1, 2]", "3", "not json", ""]),
)
tool_calls = st.lists(
    st.builds(ToolCall, name=st.sampled_from(["get", "put"]), arguments=arguments),
    max_size=3,
).map(lambda calls: [ToolCall(c.name, c.arguments, id=f"call_{i}") for i, c in enumerate(calls)])
images = st.lists(
    st.sampled_from(["https://img.example/a.png", "data:image/png;base64,iVBORw0KGgo="]),
    max_size=2,
)
audio = st.none() | st.builds(
    Audio,
    data=st.sampled_from(["UklGRiQAAABXQVZF", "AAAA" * 40]),
    transcript=words,
    id=st.just("audio_1"),
    piece_size=st.integers(4, 64),
)


@st.composite
def replies(draw: st.DrawFn) -> Reply:
    reasoning = draw(st.none() | words)
    if draw(st.booleans()) and draw(st.booleans()):
        return Reply(refusal=draw(words), reasoning=reasoning)
    return Reply(
        text=draw(st.just("") | words),
        reasoning=reasoning,
        tool_calls=draw(tool_calls),
        annotations=draw(st.sampled_from([(), ({"type": "url_citation", "url": "u"},)])),
        images=draw(images),
        audio=draw(audio),
    )


def _comparable(message: AIMessage, *, audio_and_logprobs: bool = True) -> dict[str, Any]:
    """The message without what differs between two answers to the same script (the run's
    message id, the server's timings), and without the audio block and log probabilities
    unless ``audio_and_logprobs``."""
    fields = message.model_dump()
    fields.pop("id")
    metadata = fields["response_metadata"]
    for name in _TIMING:
        metadata.pop(name, None)
    if not audio_and_logprobs:
        metadata.pop("logprobs", None)
        fields["content"] = [b for b in fields["content"] if b.get("type") != "audio"]
    fields["content"] = _timeless(fields["content"])
    return fields


def _timeless(content: Any) -> Any:
    """``content`` with each audio block's ``expires_at`` (set from the server's clock) left
    out."""
    if not isinstance(content, list):
        return content
    return [
        {**b, "extras": {k: v for k, v in b["extras"].items() if k != "expires_at"}}
        if isinstance(b, dict) and b.get("type") == "audio" and "extras" in b
        else b
        for b in content
    ]


def _json_but_no_object(arguments: Any) -> bool:
    try:
        return type(json.loads(arguments)) is not dict if isinstance(arguments, str) else False
    except ValueError:
        return False


def _events(llm: ChatLunar, **kwargs: Any) -> tuple[list[dict[str, Any]], AIMessage]:
    stream = llm.stream_events("hi", version="v3", **kwargs)
    events = list(stream)
    return events, stream.output


async def _aevents(llm: ChatLunar, **kwargs: Any) -> tuple[list[dict[str, Any]], AIMessage]:
    stream = await llm.astream_events("hi", version="v3", **kwargs)
    events = [event async for event in stream]
    return events, await stream.output


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(reply=replies(), style=st.sampled_from(STYLES), logprobs=st.booleans())
def test_every_scripted_reply_gives_a_valid_stream_that_assembles_as_the_bridge_does(
    servers: dict[WireStyle, LocalLunarServer], reply: Reply, style: WireStyle, logprobs: bool
) -> None:
    server = servers[style]
    options: dict[str, Any] = {"logprobs": True, "top_logprobs": 1} if logprobs else {}
    model = f"m{next(_examples)}"  # its own script: a failed example leaves steps behind
    native = ChatLunar(model=model, base_url=server.base_url, max_retries=0)
    bridged = BridgedChatLunar(model=model, base_url=server.base_url, max_retries=0)
    server.script(reply, reply, reply, reply, model=model)

    events, message = _events(native, **options)
    lifecycle.assert_valid_event_stream(events)
    aevents, amessage = asyncio.run(_aevents(native, **options))
    lifecycle.assert_valid_event_stream(aevents)
    assert _comparable(amessage) == _comparable(message)
    assert aevents[0]["id"] != events[0]["id"]  # each run's own message id

    if any(_json_but_no_object(call.arguments) for call in reply.tool_calls):
        # The bridge makes a tool_call of them, which its own message refuses to hold.
        with pytest.raises(ValidationError):
            _events(bridged, **options)
        sent_as_text = {c.arguments for c in reply.tool_calls if _json_but_no_object(c.arguments)}
        assert sent_as_text <= {c["args"] for c in message.invalid_tool_calls}
    else:
        _, bridged_message = _events(bridged, **options)
        assert _comparable(message, audio_and_logprobs=False) == _comparable(
            bridged_message, audio_and_logprobs=False
        )
    # What the bridge loses: the audio's pieces, every log probability but the last.
    added = merged(list(native.stream("hi", **options)))
    audio_blocks = [b for b in _timeless(message.content) if b["type"] == "audio"]
    assert audio_blocks == [
        b for b in _timeless(added.content) if isinstance(b, dict) and b["type"] == "audio"
    ]
    assert message.response_metadata.get("logprobs") == added.response_metadata.get("logprobs")


# --- The same behaviour as stream(): callbacks, retries, fallbacks, errors, timeouts ---------


class TokenRecorder(BaseCallbackHandler):
    """Records every token callback: its text and the chunk's message."""

    def __init__(self) -> None:
        self.tokens: list[tuple[str, dict[str, Any]]] = []

    def on_llm_new_token(self, token: str, *, chunk: Any = None, **kwargs: Any) -> None:
        message = chunk.message.model_dump()
        message["response_metadata"] = {
            k: v for k, v in message["response_metadata"].items() if k not in _TIMING
        }
        self.tokens.append((token, message))


class V2Recorder(TokenRecorder, _V2StreamingCallbackHandler):
    """A handler that asks langchain-core for protocol events (as LangGraph's do)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def on_stream_event(self, event: Any, **kwargs: Any) -> None:
        self.events.append(event)


REPLY = Reply(
    text="It is sunny in Paris.",
    reasoning="Look it up.",
    tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_1")],
)


@pytest.fixture
def server() -> Iterator[LocalLunarServer]:
    with LocalLunarServer(style=WireStyle(model_in="none")) as running:
        yield running


def test_the_native_hook_serves_v3_with_the_run_s_message_id(server: LocalLunarServer) -> None:
    server.script(REPLY)
    llm = ChatLunar(model="m", base_url=server.base_url)
    stream = llm.stream_events("hi", version="v3")
    events = list(stream)
    # The bridge gives no provider or model on message-start (ChatLunar's first chunk has none).
    assert events[0]["metadata"] == {"provider": "lunar", "model": "m"}
    assert events[0]["id"] == stream.output.id
    assert stream.output.id.startswith("lc_run-")
    assert events[-1]["usage"] == {
        "input_tokens": 2,
        "output_tokens": stream.output.usage_metadata["output_tokens"],
        "total_tokens": stream.output.usage_metadata["total_tokens"],
        "output_token_details": {"reasoning": 3},
    }
    assert events[-1]["finish_reason"] == "tool_calls"
    assert events[-1]["metadata"]["total_cost_usd"] > 0  # Lunar's cost fields


@pytest.mark.parametrize("way", ["sync", "async"])
def test_token_callbacks_get_the_chunks_stream_gives_them_once_each(
    server: LocalLunarServer, way: str
) -> None:
    server.script(REPLY, REPLY)
    recorders = {"native": TokenRecorder(), "bridge": TokenRecorder()}
    for kind, llm_class in (("native", ChatLunar), ("bridge", BridgedChatLunar)):
        llm = llm_class(model="m", base_url=server.base_url)
        config = {"callbacks": [recorders[kind]]}
        if way == "sync":
            list(llm.stream_events("hi", version="v3", config=config))
        else:

            async def run(llm: ChatLunar = llm, config: Any = config) -> None:
                async for _ in await llm.astream_events("hi", version="v3", config=config):
                    pass

            asyncio.run(run())
    native, bridge = (
        [(token, {**message, "id": None}) for token, message in recorders[kind].tokens]
        for kind in ("native", "bridge")
    )
    assert native == bridge
    assert "".join(token for token, _ in native) == "It is sunny in Paris."
    assert len(native) > 5  # token by token


@pytest.mark.parametrize("way", ["invoke", "ainvoke"])
def test_invoke_with_a_v2_handler_goes_through_the_events(
    server: LocalLunarServer, way: str
) -> None:
    server.script(REPLY)
    handler = V2Recorder()
    llm = ChatLunar(model="m", base_url=server.base_url)
    config = {"callbacks": [handler]}
    if way == "invoke":
        message = llm.invoke("hi", config=config)
    else:
        message = asyncio.run(llm.ainvoke("hi", config=config))
    lifecycle.assert_valid_event_stream(handler.events)
    assert handler.events[0]["metadata"]["provider"] == "lunar"  # the native hook's
    assert [b["type"] for b in message.content] == ["reasoning", "text", "tool_call"]
    assert message.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
    ]
    assert message.additional_kwargs["reasoning_content"] == "Look it up."  # sent back later
    assert "".join(t for t, _ in handler.tokens) == "It is sunny in Paris."


def _v3(llm: ChatLunar, way: str, into: list[dict[str, Any]], **kwargs: Any) -> AIMessage:
    """Run ``stream_events(version="v3")`` (or the async twin), events into ``into``."""
    if way == "sync":
        stream = llm.stream_events("hi", version="v3", **kwargs)
        into.extend(stream)
        return stream.output

    async def run() -> AIMessage:
        stream = await llm.astream_events("hi", version="v3", **kwargs)
        async for event in stream:
            into.append(event)
        return await stream.output

    return asyncio.run(run())


ways = pytest.mark.parametrize("way", ["sync", "async"])


@ways
def test_a_failure_before_the_first_token_is_retried_then_the_fallback_asked(
    server: LocalLunarServer, way: str
) -> None:
    server.script(Fault.status(503), "Fine.", model="first")
    server.script(Fault.status(500), Fault.status(500), model="broken")
    server.script("From the fallback.", model="second")
    options: dict[str, Any] = {"max_retries": 1, "backoff_base": 0, "backoff_jitter": 0}
    llm = ChatLunar(model="first", base_url=server.base_url, **options)
    answer = _v3(llm, way, [])
    assert answer.text == "Fine."
    assert [a["status_code"] for a in answer.response_metadata["failed_attempts"]] == [503]

    events: list[dict[str, Any]] = []
    llm = ChatLunar(model="broken", fallbacks=["second"], base_url=server.base_url, **options)
    answer = _v3(llm, way, events)
    assert answer.text == "From the fallback."
    assert answer.response_metadata["model_requested"] == "second"
    assert [a["model"] for a in answer.response_metadata["failed_attempts"]] == ["broken"] * 2
    lifecycle.assert_valid_event_stream(events)


@ways
def test_a_break_after_the_first_token_raises_stream_interrupted(
    server: LocalLunarServer, way: str
) -> None:
    server.script(Fault.disconnect(after=3), "never asked")
    llm = ChatLunar(model="m", base_url=server.base_url, fallbacks=["other"])
    events: list[dict[str, Any]] = []
    with pytest.raises(StreamInterruptedError) as raised:
        _v3(llm, way, events)
    deltas = [e["delta"]["text"] for e in events if e["event"] == "content-block-delta"]
    assert raised.value.text == "".join(deltas) != ""
    assert len(server.requests) == 1  # neither retried nor handed to the fallback


@ways
def test_a_stall_after_the_first_token_is_cut_at_stream_chunk_timeout(
    server: LocalLunarServer, way: str
) -> None:
    server.script(Reply("one two three four"), model="m")
    server.script(Fault.keepalive_stall(None, every=0.1, after=2), model="m")
    llm = ChatLunar(model="m", base_url=server.base_url, stream_chunk_timeout=0.5)
    _v3(llm, way, [])  # the connection is open: the stall below is the stream's, not a connect
    with pytest.raises(StreamInterruptedError) as raised:
        _v3(llm, way, [])
    assert isinstance(raised.value.__cause__, StreamChunkTimeoutError)
    assert raised.value.text  # the two tokens before it


@ways
def test_silence_before_the_first_token_goes_to_the_fallback(
    server: LocalLunarServer, way: str
) -> None:
    server.script(Fault.think(1.0), model="thinker")
    server.script("Quick answer.", model="quick")
    llm = ChatLunar(
        model="thinker", base_url=server.base_url, first_chunk_timeout=0.3, fallbacks=["quick"]
    )
    answer = _v3(llm, way, [])
    assert answer.text == "Quick answer."
    assert answer.response_metadata["failed_attempts"][0]["error"] == "FirstChunkTimeoutError"


class CountingLimiter(InMemoryRateLimiter):
    def __init__(self) -> None:
        super().__init__(requests_per_second=1000, max_bucket_size=1000)
        self.taken = 0

    def acquire(self, *, blocking: bool = True) -> bool:
        self.taken += 1
        return super().acquire(blocking=blocking)

    async def aacquire(self, *, blocking: bool = True) -> bool:
        self.taken += 1
        return await super().aacquire(blocking=blocking)


@ways
def test_every_request_takes_a_rate_limiter_token(server: LocalLunarServer, way: str) -> None:
    server.script(Fault.status(503), Fault.status(503), "Third time.")
    limiter = CountingLimiter()
    llm = ChatLunar(
        model="m",
        base_url=server.base_url,
        rate_limiter=limiter,
        max_retries=2,
        backoff_base=0,
        backoff_jitter=0,
    )
    assert _v3(llm, way, []).text == "Third time."
    assert limiter.taken == 3  # langchain-core's for the first request, ChatLunar's for two


@ways
def test_a_key_the_server_echoes_reaches_no_event(way: str) -> None:
    key = "sk-lunar-protocol-events-0123456789"
    with LocalLunarServer(api_key=key, served_model=f"echo-{key}") as echoing:
        echoing.script(REPLY)
        llm = ChatLunar(model="m", base_url=echoing.base_url, api_key=key)
        events: list[dict[str, Any]] = []
        message = _v3(llm, way, events)
    assert message.text == "It is sunny in Paris."
    assert events[0]["metadata"]["model"] != "echo-" + key  # the served model, masked
    assert key not in repr(events)
    assert key not in repr(message)
