"""The 2026 delta fields of ``LocalLunarServer`` over real TCP, with plain httpx.

Reasoning (``reasoning_content`` / ``reasoning`` / ``reasoning_details``, mixed chunks), refusals,
log probabilities, annotations, usage details, unknown delta fields and keep-alive stalls. As in
``test_local_server.py``, nothing here uses the langchain_lunar client: the raw SSE bytes are
parsed by the tiny reader there and checked against the wire form.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from langchain_lunar.testing import Fault, LocalLunarServer, Reply, ToolCall, WireStyle

from .test_local_server import PATH, body, chunks_of, content_of, sse_data

THINKING = "Two plus two is four."
THINKING_TOKENS = ["Two", " plus", " two", " is", " four."]
ANSWER = "The answer is 4."
ANSWER_TOKENS = ["The", " answer", " is", " 4."]
REASONED = Reply(ANSWER, reasoning=THINKING)
REFUSAL = "I can't help with that."
CITATION = {
    "type": "url_citation",
    "url_citation": {
        "url": "https://example.com/moon",
        "title": "The Moon",
        "start_index": 4,
        "end_index": 10,
    },
}


def post(server: LocalLunarServer, **extra: Any) -> httpx.Response:
    return httpx.post(server.base_url + PATH, json=body(**extra), timeout=5)


def streamed(
    reply: Reply | str, style: WireStyle | None = None, **extra: Any
) -> list[dict[str, Any]]:
    """The chunks of one streamed answer to ``reply``; checks the stream ends with [DONE]."""
    with LocalLunarServer(reply=reply, style=style or WireStyle()) as server:
        raw = post(server, stream=True, **extra).content
    assert sse_data(raw)[-1] == "[DONE]"
    return chunks_of(raw)


def answered(reply: Reply | str, style: WireStyle | None = None, **extra: Any) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` answering ``reply``."""
    with LocalLunarServer(reply=reply, style=style or WireStyle()) as server:
        r = post(server, **extra)
    assert r.status_code == 200
    data: dict[str, Any] = r.json()
    return data


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]]


ROLE = {"role": "assistant", "content": ""}


# --- reasoning ----------------------------------------------------------------------------


def test_reasoning_content_streams_before_the_answer() -> None:
    chunks = streamed(REASONED, stream_options={"include_usage": True})
    assert deltas(chunks) == [
        ROLE,
        *({"reasoning_content": piece} for piece in THINKING_TOKENS),
        *({"content": token} for token in ANSWER_TOKENS),
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["completion_tokens"] == 5 + 4  # reasoning tokens count as completion tokens
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 5}
    assert "prompt_tokens_details" not in usage  # nothing cached: "auto" leaves it out
    assert usage["total_tokens"] == usage["prompt_tokens"] + 9
    assert usage["output_cost_usd"] == pytest.approx(9 * 0.60 / 1e6)


def test_reasoning_field_and_openrouter_details() -> None:
    style = WireStyle(reasoning_field="reasoning", reasoning_details=True)
    chunks = streamed(REASONED, style)
    assert deltas(chunks)[1:6] == [
        {
            "reasoning": piece,
            "reasoning_details": [{"type": "reasoning.text", "text": piece, "index": 0}],
        }
        for piece in THINKING_TOKENS
    ]
    assert deltas(chunks)[6:] == [*({"content": t} for t in ANSWER_TOKENS), {}]

    message = answered(REASONED, style)["choices"][0]["message"]
    assert message == {
        "role": "assistant",
        "content": ANSWER,
        "reasoning": THINKING,
        "reasoning_details": [{"type": "reasoning.text", "text": THINKING, "index": 0}],
    }
    with pytest.raises(ValueError, match="reasoning_field"):
        WireStyle(reasoning_field="thinking")


def test_mixed_chunk_carries_reasoning_and_content_at_once() -> None:
    style = WireStyle(mixed_chunk=True, usage="every_chunk")
    chunks = streamed(REASONED, style)
    assert deltas(chunks) == [
        ROLE,
        *({"reasoning_content": piece} for piece in THINKING_TOKENS[:-1]),
        {"reasoning_content": " four.", "content": "The"},
        *({"content": token} for token in ANSWER_TOKENS[1:]),
        {},
    ]
    # The mixed chunk is one delta but two tokens, one of them reasoning.
    running = [
        (c["usage"]["completion_tokens"], c["usage"]["completion_tokens_details"])
        for c in chunks[4:7]
    ]
    assert running == [
        (4, {"reasoning_tokens": 4}),
        (6, {"reasoning_tokens": 5}),
        (7, {"reasoning_tokens": 5}),
    ]
    assert chunks[0]["usage"]["completion_tokens"] == 0
    assert "completion_tokens_details" not in chunks[0]["usage"]  # no reasoning yet
    # Only reasoning, or only text: nothing to mix.
    assert deltas(streamed(Reply("", reasoning="a b"), style))[1:3] == [
        {"reasoning_content": "a"},
        {"reasoning_content": " b"},
    ]
    assert deltas(streamed(Reply("x y"), style))[1:3] == [{"content": "x"}, {"content": " y"}]


def test_non_streamed_reasoning_and_usage() -> None:
    data = answered(REASONED)
    assert data["choices"][0]["message"] == {
        "role": "assistant",
        "content": ANSWER,
        "reasoning_content": THINKING,
    }
    assert data["usage"]["completion_tokens"] == 9
    assert data["usage"]["completion_tokens_details"] == {"reasoning_tokens": 5}
    # The mixed chunk changes how it streams, not what it costs.
    mixed = answered(REASONED, WireStyle(mixed_chunk=True))
    assert mixed["usage"]["completion_tokens"] == 9


def test_stop_and_max_tokens_cut_the_text_not_the_reasoning() -> None:
    chunks = streamed(REASONED, max_tokens=2, stream_options={"include_usage": True})
    assert [d.get("reasoning_content") for d in deltas(chunks)[1:6]] == THINKING_TOKENS
    assert content_of(chunks) == "The answer"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 5 + 2
    message = answered(REASONED, stop=" is")["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == ("The answer", THINKING)


def test_tool_calls_after_reasoning() -> None:
    call = ToolCall("add", {"a": 2, "b": 2}, id="call_1")
    chunks = streamed(Reply(reasoning="I should add.", tool_calls=[call]))
    kinds = [next(iter(d)) for d in deltas(chunks)[1:-1]]
    assert kinds == ["reasoning_content"] * 3 + ["tool_calls"] * 4
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


# --- the server's `reasoning` setting -----------------------------------------------------


def test_server_reasoning_true_thinks_about_every_plain_reply() -> None:
    with LocalLunarServer(reasoning=True) as server:
        chunks = chunks_of(post(server, stream=True).content)
        message = post(server).json()["choices"][0]["message"]
        tool_turn = {
            "model": "m",
            "messages": [
                {"role": "user", "content": "add"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "add", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "content": "4", "tool_call_id": "c1"},
            ],
        }
        after_tools = httpx.post(server.base_url + PATH, json=tool_turn).json()
    thinking = "The user wrote: “hello big world”. Time to answer."
    assert "".join(d.get("reasoning_content", "") for d in deltas(chunks)) == thinking
    assert content_of(chunks) == "You said: hello big world"
    assert message["reasoning_content"] == thinking
    assert message["content"] == "You said: hello big world"
    assert after_tools["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Tool results: 4",
        "reasoning_content": "The tool results are in; time to report them.",
    }


def test_server_reasoning_text_callable_and_reply_overrides() -> None:
    seen: list[dict[str, Any]] = []

    def think(request: dict[str, Any]) -> str:
        seen.append(request)
        return f"thinking about {request['model']}"

    with LocalLunarServer(reply="fixed", reasoning="Hmm.") as server:
        server.script(Reply("own", reasoning="My own."), Reply("none", reasoning=""))
        url = server.base_url + PATH
        messages = [httpx.post(url, json=body()).json()["choices"][0]["message"] for _ in range(3)]
    assert messages == [
        {"role": "assistant", "content": "own", "reasoning_content": "My own."},
        {"role": "assistant", "content": "none"},  # "" means no thinking, even here
        {"role": "assistant", "content": "fixed", "reasoning_content": "Hmm."},
    ]

    with LocalLunarServer(reasoning=think) as server:
        message = post(server, model="deep").json()["choices"][0]["message"]
    assert message["reasoning_content"] == "thinking about deep"
    assert seen == [body(model="deep")]


def test_server_reasoning_callable_errors_and_bad_values() -> None:
    def think(request: dict[str, Any]) -> str:
        raise RuntimeError("no thoughts")

    with LocalLunarServer(reasoning=think) as server:
        r = post(server)
    assert r.status_code == 500
    assert "reasoning callable raised RuntimeError: no thoughts" in r.json()["error"]["message"]
    with pytest.raises(TypeError, match="reasoning"):
        LocalLunarServer(reasoning=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reasoning"):
        Reply("x", reasoning=3)  # type: ignore[arg-type]


# --- refusals -----------------------------------------------------------------------------


def test_refusal_streams_with_null_content() -> None:
    chunks = streamed(Reply(refusal=REFUSAL), stream_options={"include_usage": True})
    assert deltas(chunks) == [
        {"role": "assistant", "content": None, "refusal": ""},
        *(
            {"content": None, "refusal": piece}
            for piece in ["I", " can't", " help", " with", " that."]
        ),
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 5


def test_refusal_non_streamed_and_scripted() -> None:
    data = answered(Reply(refusal=REFUSAL))
    assert data["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": None, "refusal": REFUSAL},
        "finish_reason": "stop",
    }
    with LocalLunarServer() as server:
        server.script(Fault.reply(Reply(refusal="No.", reasoning="Not allowed.")))
        message = post(server).json()["choices"][0]["message"]
    assert message == {
        "role": "assistant",
        "content": None,
        "refusal": "No.",
        "reasoning_content": "Not allowed.",
    }


def test_refusal_excludes_an_answer() -> None:
    for bad in (
        {"text": "x"},
        {"tool_calls": [ToolCall("f", {})]},
        {"annotations": [CITATION]},
    ):
        with pytest.raises(ValueError, match="refusal"):
            Reply(refusal="no", **bad)
    with pytest.raises(ValueError, match="refusal"):
        Reply(refusal="")


# --- log probabilities --------------------------------------------------------------------


def entry(token: str, index: int, alternatives: list[str]) -> dict[str, Any]:
    logprob = -(index + 1) / 100
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode()),
        "top_logprobs": [
            {"token": alt, "logprob": logprob - j, "bytes": list(alt.encode())}
            for j, alt in enumerate(alternatives)
        ],
    }


def test_stream_logprobs_only_when_asked() -> None:
    reply = Reply("héllo world", reasoning="hm")
    chunks = streamed(reply, logprobs=True, top_logprobs=2, stream_options={"include_usage": True})
    choices = [c["choices"][0] for c in chunks if c["choices"]]
    assert [c["logprobs"] for c in choices] == [
        None,  # role chunk
        None,  # reasoning
        {"content": [entry("héllo", 0, ["héllo", "<alt1>"])]},
        {"content": [entry(" world", 1, [" world", "<alt1>"])]},
        None,  # finish chunk
    ]
    assert list(choices[2]) == ["index", "delta", "logprobs", "finish_reason"]
    assert choices[2]["logprobs"]["content"][0]["bytes"] == [104, 195, 169, 108, 108, 111]
    assert chunks[-1]["choices"] == []

    without = streamed(reply, logprobs=False)
    assert all("logprobs" not in c["choices"][0] for c in without if c["choices"])
    assert all("logprobs" not in c["choices"][0] for c in streamed(reply) if c["choices"])
    # logprobs without top_logprobs: no alternatives.
    plain = streamed(reply, logprobs=True)
    assert plain[2]["choices"][0]["logprobs"] == {"content": [entry("héllo", 0, [])]}


def test_non_streamed_logprobs_cover_every_token() -> None:
    data = answered("a b c", logprobs=True, top_logprobs=1)
    assert data["choices"][0]["logprobs"] == {
        "content": [entry(t, i, [t]) for i, t in enumerate(["a", " b", " c"])]
    }
    assert "logprobs" not in answered("a b c")["choices"][0]
    refusal = answered(Reply(refusal="No way."), logprobs=True)
    assert refusal["choices"][0]["logprobs"] == {
        "content": None,
        "refusal": [entry("No", 0, []), entry(" way.", 1, [])],
    }
    chunks = streamed(Reply(refusal="No way."), logprobs=True)
    assert chunks[1]["choices"][0]["logprobs"] == {"content": None, "refusal": [entry("No", 0, [])]}


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"logprobs": "yes"}, "'logprobs'"),
        ({"top_logprobs": 2}, "'top_logprobs' requires 'logprobs'"),
        ({"logprobs": False, "top_logprobs": 2}, "'top_logprobs' requires 'logprobs'"),
        ({"logprobs": True, "top_logprobs": 21}, "'top_logprobs'"),
        ({"logprobs": True, "top_logprobs": True}, "'top_logprobs'"),
    ],
)
def test_logprobs_validation(extra: dict[str, Any], named: str) -> None:
    with LocalLunarServer() as server:
        r = post(server, **extra)
        assert r.status_code == 400
        assert named in r.json()["error"]["message"]
        assert post(server, logprobs=True, top_logprobs=20).status_code == 200


# --- annotations --------------------------------------------------------------------------


def test_annotations_stream_in_one_chunk_after_the_text() -> None:
    reply = Reply("See the Moon page.", annotations=[CITATION])
    chunks = streamed(reply, stream_options={"include_usage": True})
    found = deltas(chunks)
    assert found[-2] == {"annotations": [CITATION]}
    assert [d for d in found if "annotations" in d] == [{"annotations": [CITATION]}]
    assert found[:-2] == [ROLE, *({"content": t} for t in ["See", " the", " Moon", " page."])]
    assert chunks[-1]["usage"]["completion_tokens"] == 4  # the annotations chunk is free

    message = answered(reply)["choices"][0]["message"]
    assert message == {
        "role": "assistant",
        "content": "See the Moon page.",
        "annotations": [CITATION],
    }
    # A cut text drops them, as it drops tool calls.
    assert "annotations" not in answered(reply, max_tokens=1)["choices"][0]["message"]


def test_annotations_are_copied_and_checked() -> None:
    mine = {"type": "url_citation", "url_citation": {"url": "u"}}
    reply = Reply("x", annotations=[mine])
    mine["type"] = "changed"
    assert answered(reply)["choices"][0]["message"]["annotations"][0]["type"] == "url_citation"
    with pytest.raises(TypeError):
        Reply("x", annotations=["not a dict"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        Reply("x", annotations=[{"when": object()}])


# --- usage details ------------------------------------------------------------------------


def usage_of(reply: Reply, details: str, stream: bool) -> dict[str, Any]:
    style = WireStyle(usage_details=details)
    if stream:
        chunk = streamed(reply, style, stream_options={"include_usage": True})[-1]
    else:
        chunk = answered(reply, style)
    usage: dict[str, Any] = chunk["usage"]
    return usage


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_usage_details_forms(stream: bool) -> None:
    cached = Reply("a b", reasoning="r", cached_tokens=3, cache_write_tokens=1)
    # prompt: "hello big world" (3 words) + 1 for the message = 4 tokens
    auto = usage_of(cached, "auto", stream)
    assert auto["prompt_tokens"] == 4
    assert auto["prompt_tokens_details"] == {"cached_tokens": 3}
    assert auto["completion_tokens_details"] == {"reasoning_tokens": 1}
    assert "prompt_cache_hit_tokens" not in auto
    assert "cache_read_input_tokens" not in auto

    none = usage_of(cached, "none", stream)
    assert "prompt_tokens_details" not in none
    assert "completion_tokens_details" not in none
    assert none["completion_tokens"] == 3

    openai = usage_of(Reply("a"), "openai", stream)  # zeros are sent too
    assert openai["prompt_tokens_details"] == {"cached_tokens": 0}
    assert openai["completion_tokens_details"] == {"reasoning_tokens": 0}

    deepseek = usage_of(cached, "deepseek", stream)
    assert (deepseek["prompt_cache_hit_tokens"], deepseek["prompt_cache_miss_tokens"]) == (3, 1)
    assert deepseek["prompt_tokens_details"] == {"cached_tokens": 3}
    assert "cache_read_input_tokens" not in deepseek

    anthropic = usage_of(cached, "anthropic", stream)
    assert anthropic["cache_read_input_tokens"] == 3
    assert anthropic["cache_creation_input_tokens"] == 1
    assert anthropic["prompt_tokens_details"] == {"cached_tokens": 3}
    assert "prompt_cache_hit_tokens" not in anthropic


def test_usage_cache_figures_are_capped_at_the_prompt() -> None:
    usage = usage_of(Reply("a", cached_tokens=3, cache_write_tokens=9), "anthropic", False)
    assert (usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]) == (3, 1)
    usage = usage_of(Reply("a", cached_tokens=50), "deepseek", False)
    assert (usage["prompt_cache_hit_tokens"], usage["prompt_cache_miss_tokens"]) == (4, 0)
    with pytest.raises(ValueError, match="cached_tokens"):
        Reply("a", cached_tokens=-1)
    with pytest.raises(ValueError, match="usage_details"):
        WireStyle(usage_details="gemini")


# --- unknown delta fields -----------------------------------------------------------------


def test_extra_delta_fields_on_every_text_delta() -> None:
    extra = {"provider_meta": {"shard": 7}, "stop_reason": None}
    style = WireStyle(extra_delta_fields=extra, mixed_chunk=True)
    found = deltas(streamed(Reply("a b", reasoning="r s"), style))
    assert found == [
        ROLE,  # not on the role chunk
        {"reasoning_content": "r"},  # nor on pure reasoning
        {"reasoning_content": " s", "content": "a", **extra},
        {"content": " b", **extra},
        {},  # nor on the finish chunk
    ]
    message = answered("a b", style)["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "a b", **extra}


def test_extra_delta_fields_are_checked_and_copied() -> None:
    with pytest.raises(ValueError, match="content"):
        WireStyle(extra_delta_fields={"content": "x"})
    with pytest.raises(ValueError, match="reasoning"):
        WireStyle(extra_delta_fields={"reasoning": "x"})
    with pytest.raises(TypeError):
        WireStyle(extra_delta_fields={"x": object()})
    mine: dict[str, Any] = {"foo": [1]}
    style = WireStyle(extra_delta_fields=mine)
    mine["foo"].append(2)
    assert style.extra_delta_fields == {"foo": [1]}
    assert hash(style) == hash(WireStyle(extra_delta_fields={"foo": [1]}))


# --- keep-alive stalls --------------------------------------------------------------------


def timed_parts(server: LocalLunarServer, **extra: Any) -> tuple[list[tuple[float, bytes]], float]:
    """Every raw body part of one stream with its arrival time (from the request)."""
    parts: list[tuple[float, bytes]] = []
    start = time.monotonic()
    with httpx.stream("POST", server.base_url + PATH, json=body(stream=True, **extra)) as r:
        for part in r.iter_raw():
            parts.append((time.monotonic() - start, part))
    return parts, time.monotonic() - start


def split_at_first_data(raw: bytes) -> tuple[bytes, bytes]:
    at = raw.index(b"data:")
    return raw[:at], raw[at:]


def test_keepalive_stall_before_the_first_chunk() -> None:
    with LocalLunarServer(reply="one two") as server:
        server.script(Fault.keepalive_stall(0.35, every=0.1))
        parts, elapsed = timed_parts(server)
    raw = b"".join(part for _, part in parts)
    pings, rest = split_at_first_data(raw)
    # A ping at once, then every 0.1 s until 0.35 s: at 0, 0.1, 0.2, 0.3 (on a busy machine
    # the waits can drift so that the last one falls after the end).
    count = pings.count(b": ping\n\n")
    assert pings == b": ping\n\n" * count
    assert count in (3, 4)
    assert elapsed >= 0.35
    first_data = next(t for t, part in parts if b"data:" in part)
    assert first_data >= 0.35
    assert b": ping" not in rest
    chunks = chunks_of(rest)
    assert chunks[0]["choices"][0]["delta"] == ROLE
    assert content_of(chunks) == "one two"
    assert sse_data(raw)[-1] == "[DONE]"


def test_keepalive_stall_after_some_deltas_with_its_own_comment() -> None:
    style = WireStyle(line_ending="\r\n")
    with LocalLunarServer(reply=REASONED, style=style) as server:
        server.script(Fault.keepalive_stall(0.2, every=0.1, after=6, comment="keep-alive"))
        raw = httpx.post(server.base_url + PATH, json=body(stream=True)).content
    before, stall_and_after = raw.split(b": keep-alive\r\n\r\n", 1)
    # role chunk, 5 reasoning pieces, 1 text token; then the pings; then the rest.
    assert [next(iter(d)) for d in deltas(chunks_of(before))] == (
        ["role"] + ["reasoning_content"] * 5 + ["content"]
    )
    after = stall_and_after.replace(b": keep-alive\r\n\r\n", b"")
    assert stall_and_after.startswith(b": keep-alive\r\n\r\n")  # at least two pings
    assert content_of(chunks_of(after)) == " answer is 4."
    assert sse_data(raw)[-1] == "[DONE]"


def test_endless_keepalive_stall_lets_a_chunk_timeout_fire_and_counts_the_disconnect() -> None:
    """A client that gives up after 0.3 s without a data event, while pings keep coming
    (each would reset an HTTP read timeout), and the server notices the close."""
    with LocalLunarServer(reply="one two three") as server:
        server.script(Fault.keepalive_stall(None, every=0.05, after=1))
        pings_during_silence = 0
        gave_up = False
        with httpx.Client(timeout=httpx.Timeout(5, read=0.5)) as client:
            url = server.base_url + PATH
            with client.stream("POST", url, json=body(stream=True)) as r:
                last_data = time.monotonic()
                for part in r.iter_raw():
                    if b"data:" in part:
                        last_data = time.monotonic()
                    pings_during_silence += part.count(b": ping\n\n")
                    if time.monotonic() - last_data > 0.3:
                        gave_up = True
                        break
        assert gave_up
        assert pings_during_silence >= 4
        assert server.wait_for_disconnects(1, timeout=2)
        assert server.disconnects == 1


def test_a_closed_connection_is_noticed_between_rare_pings() -> None:
    # With a ping every 30 s, a write would find the close only after a minute.
    with LocalLunarServer() as server:
        server.script(Fault.keepalive_stall(None, every=30))
        with httpx.stream("POST", server.base_url + PATH, json=body(stream=True)) as r:
            assert next(r.iter_raw()) == b": ping\n\n"
        start = time.monotonic()
        assert server.wait_for_disconnects(1, timeout=2)
        assert time.monotonic() - start < 1.0


def test_stop_returns_fast_during_an_endless_keepalive_stall() -> None:
    server = LocalLunarServer().start()
    server.script(Fault.keepalive_stall(None, every=0.05))
    pinged = threading.Event()
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            with httpx.stream(
                "POST", server.base_url + PATH, json=body(stream=True), timeout=5
            ) as r:
                for _ in r.iter_raw():
                    pinged.set()
            outcome.append(None)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    assert pinged.wait(2)
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 1.0
    reader.join(2)
    assert isinstance(outcome[0], httpx.RemoteProtocolError)  # dropped, no terminating chunk
    assert server.disconnects == 0  # stopping is not a client disconnect


def test_keepalive_stall_without_streaming_waits_silently() -> None:
    with LocalLunarServer(reply="done") as server:
        server.script(Fault.keepalive_stall(0.3, every=0.05))
        start = time.monotonic()
        r = post(server)
        assert time.monotonic() - start >= 0.3
        assert r.json()["choices"][0]["message"]["content"] == "done"
        # An endless one never answers; the client's read timeout ends it.
        server.script(Fault.keepalive_stall(None))
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(server.base_url + PATH, json=body(), timeout=0.3)
        assert post(server).status_code == 200  # the server is still fine
        assert server.disconnects == 0


def test_keepalive_stall_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="every"):
        Fault.keepalive_stall(1, every=0)
    with pytest.raises(ValueError, match="seconds"):
        Fault.keepalive_stall(-1)
    with pytest.raises(ValueError, match="after"):
        Fault.keepalive_stall(1, after=-1)
    with pytest.raises(ValueError, match="comment"):
        Fault.keepalive_stall(1, comment="a\ndata: {}")
