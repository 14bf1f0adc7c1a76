"""Tests of ``langchain_lunar.testing.LocalLunarServer`` over real TCP, with plain httpx.

Nothing here uses the langchain_lunar client: the server is checked against the protocol
description directly, with a tiny SSE reader written below.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import langchain_lunar
from langchain_lunar.testing import (
    DEFAULT_PRICE,
    Fault,
    LocalLunarServer,
    RecordedRequest,
    WireStyle,
)

PATH = "/chat/completions"


# --- helpers ------------------------------------------------------------------------------


def body(text: str = "hello big world", model: str = "m", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def sse_data(raw: bytes) -> list[str]:
    """The ``data`` of each complete SSE event (WHATWG rules: any line ending, comments,
    other fields ignored, one optional space after the colon, data lines joined by "\\n")."""
    events: list[str] = []
    data: list[str] = []
    for line in re.split(r"\r\n|\r|\n", raw.decode("utf-8")):
        if line == "":
            if data:
                events.append("\n".join(data))
            data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
    return events


def chunks_of(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(d) for d in sse_data(raw) if d != "[DONE]"]


def content_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )


def stream(server: LocalLunarServer, **extra: Any) -> httpx.Response:
    return httpx.post(server.base_url + PATH, json=body(stream=True, **extra), timeout=5)


@pytest.fixture
def server() -> Iterator[LocalLunarServer]:
    with LocalLunarServer() as s:
        yield s


# --- non-streaming ------------------------------------------------------------------------


def test_non_streaming_body_and_usage_costs() -> None:
    with LocalLunarServer(prices={"m": (1.0, 2.0)}) as server:
        parts = [{"type": "text", "text": "hello"}, {"type": "text", "text": "big world"}]
        messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": parts}]
        r = httpx.post(server.base_url + PATH, json={"model": "m", "messages": messages})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    data = r.json()
    assert data["id"].startswith("chatcmpl-")
    assert data["object"] == "chat.completion"
    assert isinstance(data["created"], int)
    assert data["model"] == "m"
    assert data["system_fingerprint"] == "fp_lunar_local"
    assert data["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "You said: hello big world"},
            "finish_reason": "stop",
        }
    ]
    usage = data["usage"]
    # prompt: "be brief" (2) + "hello big world" (3) + 1 per message (2) = 7 words
    assert usage["prompt_tokens"] == 7
    assert usage["completion_tokens"] == 5  # "You", " said:", " hello", " big", " world"
    assert usage["total_tokens"] == 12
    assert usage["input_cost_usd"] == pytest.approx(7 * 1.0 / 1e6)
    assert usage["output_cost_usd"] == pytest.approx(5 * 2.0 / 1e6)
    assert usage["cache_input_cost_usd"] == 0.0
    assert usage["total_cost_usd"] == pytest.approx(7e-6 + 10e-6)
    assert 0 <= usage["ttft_ms"] <= usage["latency_ms"] < 1000


def test_default_price_reply_forms_and_served_model() -> None:
    seen: list[dict[str, Any]] = []

    def reply(request: dict[str, Any]) -> str:
        seen.append(request)
        return f"model was {request['model']}"

    with LocalLunarServer(reply=reply, served_model="gpt-4o-mini-2024") as server:
        data = httpx.post(server.base_url + PATH, json=body(model="other")).json()
    assert data["choices"][0]["message"]["content"] == "model was other"
    assert data["model"] == "gpt-4o-mini-2024"
    assert seen == [body(model="other")]
    usage = data["usage"]
    assert usage["input_cost_usd"] == pytest.approx(usage["prompt_tokens"] * DEFAULT_PRICE[0] / 1e6)
    assert usage["output_cost_usd"] == pytest.approx(3 * DEFAULT_PRICE[1] / 1e6)

    with LocalLunarServer(reply="fixed text") as server:
        data = httpx.post(server.base_url + PATH, json=body()).json()
    assert data["choices"][0]["message"]["content"] == "fixed text"


def test_reply_callable_error_is_a_500_naming_it() -> None:
    def reply(request: dict[str, Any]) -> str:
        raise ValueError("boom")

    with LocalLunarServer(reply=reply) as server:
        r = httpx.post(server.base_url + PATH, json=body())
    assert r.status_code == 500
    assert "ValueError: boom" in r.json()["error"]["message"]


def test_max_tokens_and_stop() -> None:
    with LocalLunarServer(reply="one two three four five") as server:
        url = server.base_url + PATH
        r = httpx.post(url, json=body(max_tokens=2)).json()
        assert r["choices"][0]["message"]["content"] == "one two"
        assert r["choices"][0]["finish_reason"] == "length"
        assert r["usage"]["completion_tokens"] == 2

        r = httpx.post(url, json=body(stop=[" four", "three"])).json()
        assert r["choices"][0]["message"]["content"] == "one two "
        assert r["choices"][0]["finish_reason"] == "stop"

        r = httpx.post(url, json=body(stop="nowhere", max_tokens=5)).json()
        assert r["choices"][0]["message"]["content"] == "one two three four five"
        assert r["choices"][0]["finish_reason"] == "stop"

        raw = stream(server, max_tokens=3).content
        chunks = chunks_of(raw)
        assert content_of(chunks) == "one two three"
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"


# --- streaming ----------------------------------------------------------------------------


def test_stream_event_sequence(server: LocalLunarServer) -> None:
    r = stream(server, stream_options={"include_usage": True})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream"
    assert r.headers["transfer-encoding"] == "chunked"
    events = sse_data(r.content)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert chunks[0]["id"].startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["system_fingerprint"] == "fp_lunar_local" for c in chunks)
    assert all(isinstance(c["created"], int) for c in chunks)
    # model only in the first chunk, as in the protocol doc's example
    assert chunks[0]["model"] == "m"
    assert all("model" not in c for c in chunks[1:])

    first, *content, finish, usage = chunks
    assert first["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    ]
    assert [c["choices"][0]["delta"] for c in content] == [
        {"content": t} for t in ["You", " said:", " hello", " big", " world"]
    ]
    assert all(c["choices"][0]["finish_reason"] is None for c in content)
    assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert usage["choices"] == []
    assert usage["usage"]["prompt_tokens"] == 4
    assert usage["usage"]["completion_tokens"] == 5
    assert usage["usage"]["total_tokens"] == 9
    assert usage["usage"]["total_cost_usd"] == pytest.approx((4 * 0.15 + 5 * 0.60) / 1e6)
    assert 0 <= usage["usage"]["ttft_ms"] <= usage["usage"]["latency_ms"]


def test_stream_without_include_usage_has_no_usage(server: LocalLunarServer) -> None:
    chunks = chunks_of(stream(server).content)
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_stream_tokens_rejoin_exactly_and_empty_reply() -> None:
    text = "  leading\tand\n\nnewlines, héllo 世界 trailing  "
    with LocalLunarServer(reply=text) as server:
        assert content_of(chunks_of(stream(server).content)) == text
    with LocalLunarServer(reply="") as server:
        chunks = chunks_of(stream(server).content)
    assert [c["choices"][0]["delta"] for c in chunks] == [{"role": "assistant", "content": ""}, {}]


def test_each_event_is_sent_as_soon_as_written() -> None:
    with (
        LocalLunarServer(reply="a b c d", token_delay=0.1) as server,
        httpx.Client() as client,
        client.stream("POST", server.base_url + PATH, json=body(stream=True)) as r,
    ):
        arrivals = [time.monotonic() for part in r.iter_raw() if b'"content":"' in part]
    # 5 chunks carry "content" (role chunk + 4 tokens) and arrive spread over the delays
    assert len(arrivals) >= 4
    assert arrivals[-1] - arrivals[1] >= 0.2


# --- WireStyle, observed on the raw bytes -------------------------------------------------


def styled(style: WireStyle, **extra: Any) -> tuple[bytes, list[dict[str, Any]]]:
    with LocalLunarServer(reply="hi there", style=style) as server:
        raw = stream(server, **extra).content
    return raw, chunks_of(raw)


def test_style_crlf() -> None:
    raw, chunks = styled(WireStyle(line_ending="\r\n"))
    assert raw.endswith(b"data: [DONE]\r\n\r\n")
    assert raw.count(b"\n") == raw.count(b"\r\n")
    assert content_of(chunks) == "hi there"


def test_style_cr() -> None:
    raw, chunks = styled(WireStyle(line_ending="\r"))
    assert b"\n" not in raw
    assert raw.endswith(b"data: [DONE]\r\r")
    assert content_of(chunks) == "hi there"


def test_style_comments() -> None:
    raw, chunks = styled(WireStyle(comments=True))
    assert raw.startswith(b": keep-alive\n\ndata: ")
    assert raw.count(b": keep-alive\n\n") == len(sse_data(raw))
    assert content_of(chunks) == "hi there"


def test_style_split_data() -> None:
    raw, chunks = styled(WireStyle(split_data=True))
    first_event = raw.split(b"\n\n")[0].split(b"\n")
    assert len(first_event) > 5
    assert all(line.startswith(b"data: ") for line in first_event)
    assert first_event[0] == b"data: {"
    assert content_of(chunks) == "hi there"


def test_style_extra_fields() -> None:
    raw, chunks = styled(WireStyle(extra_fields=True))
    events = raw.split(b"\n\n")[:-1]
    assert events[0].startswith(b"event: message\nid: 1\nretry: 3000\ndata: {")
    assert events[1].startswith(b"event: message\nid: 2\ndata: {")
    assert raw.count(b"retry:") == 1
    assert events[-1] == b"event: message\nid: %d\ndata: [DONE]" % len(events)
    assert content_of(chunks) == "hi there"


def test_style_no_space() -> None:
    raw, chunks = styled(WireStyle(no_space=True))
    assert raw.startswith(b'data:{"id"')
    assert b"data: " not in raw
    assert raw.endswith(b"data:[DONE]\n\n")
    assert content_of(chunks) == "hi there"


@pytest.mark.parametrize(("model_in", "expected"), [("every", 4), ("none", 0), ("first", 1)])
def test_style_model_in(model_in: str, expected: int) -> None:
    _, chunks = styled(WireStyle(model_in=model_in))
    assert sum("model" in c for c in chunks) == expected


def test_style_no_role_chunk() -> None:
    _, chunks = styled(WireStyle(role_chunk=False))
    assert chunks[0]["choices"][0]["delta"] == {"content": "hi"}
    assert chunks[0]["model"] == "m"  # "first" means the first chunk actually sent
    assert all("role" not in c["choices"][0]["delta"] for c in chunks)


def test_style_usage_never() -> None:
    _, chunks = styled(WireStyle(usage="never"), stream_options={"include_usage": True})
    assert all("usage" not in c for c in chunks)


def test_style_usage_every_chunk() -> None:
    _, chunks = styled(WireStyle(usage="every_chunk"))  # without include_usage
    assert all("usage" in c for c in chunks)
    assert [c["usage"]["completion_tokens"] for c in chunks] == [0, 1, 2, 2]
    assert all(c["choices"] for c in chunks)  # no separate usage chunk
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["total_tokens"] == chunks[-1]["usage"]["prompt_tokens"] + 2


def test_style_usage_with_finish() -> None:
    _, chunks = styled(WireStyle(usage="with_finish"), stream_options={"include_usage": True})
    assert [("usage" in c) for c in chunks] == [False, False, False, True]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 2


def test_style_no_done_and_no_finish_reason() -> None:
    raw, chunks = styled(WireStyle(done=False))
    assert b"[DONE]" not in raw
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"

    raw, chunks = styled(WireStyle(finish_reason=False), stream_options={"include_usage": True})
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks if c["choices"])
    assert chunks[-1]["choices"] == []  # the usage chunk is still sent when asked
    assert sse_data(raw)[-1] == "[DONE]"


def test_style_rejects_unknown_values() -> None:
    with pytest.raises(ValueError, match="line_ending"):
        WireStyle(line_ending="\n\n")
    with pytest.raises(ValueError, match="usage"):
        WireStyle(usage="sometimes")


# --- auth, routing, validation ------------------------------------------------------------


def test_auth_bearer_or_x_api_key() -> None:
    with LocalLunarServer(api_key="sk-test") as server:
        url = server.base_url + PATH

        r = httpx.post(url, json=body())
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "authentication_error"
        assert r.json()["error"]["code"] == 401
        assert httpx.post(url, json=body(), headers={"x-api-key": "wrong"}).status_code == 401
        bad_bearer = {"Authorization": "Bearer wrong"}
        assert httpx.post(url, json=body(), headers=bad_bearer).status_code == 401

        ok_bearer = {"Authorization": "Bearer sk-test"}
        assert httpx.post(url, json=body(), headers=ok_bearer).status_code == 200
        assert httpx.post(url, json=body(), headers={"x-api-key": "sk-test"}).status_code == 200
        both = {"x-api-key": "sk-test", "Authorization": "Bearer some-jwt"}
        assert httpx.post(url, json=body(), headers=both).status_code == 200


def test_unknown_routes_are_404(server: LocalLunarServer) -> None:
    for method, path in [("POST", "/v1/completions"), ("GET", "/v1/chat/completions")]:
        r = httpx.request(method, f"http://127.0.0.1:{server.port}{path}", json=body())
        assert r.status_code == 404
        assert r.json()["error"]["code"] == 404
    url = f"http://127.0.0.1:{server.port}/chat/completions"  # without /v1
    assert httpx.post(url, json=body()).status_code == 200


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "'model'"),
        (b'{"model": "", "messages": [{"role": "user", "content": "x"}]}', "'model'"),
        (b'{"model": "m"}', "'messages'"),
        (b'{"model": "m", "messages": []}', "'messages'"),
        (b'{"model": "m", "messages": ["hi"]}', "messages[0]"),
        (b'{"model": "m", "messages": [{"content": "x"}]}', "messages[0].role"),
        (b'{"model": "m", "messages": [{"role": "user"}, {"role": "bot"}]}', "messages[1].role"),
        (b'{"model": "m", "messages": [{"role": "user"}], "max_tokens": "9"}', "'max_tokens'"),
        (b'{"model": "m", "messages": [{"role": "user"}], "stop": 3}', "'stop'"),
    ],
)
def test_validation_400_names_the_problem(
    server: LocalLunarServer, payload: bytes, named: str
) -> None:
    r = httpx.post(
        server.base_url + PATH, content=payload, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == 400
    assert named in error["message"]


def test_all_roles_accepted_and_chunked_request_body(server: LocalLunarServer) -> None:
    messages: list[dict[str, Any]] = [
        {"role": role, "content": "x"} for role in ("developer", "system", "assistant")
    ]
    # A tool message must answer a tool call of an earlier assistant message.
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages[-1]["tool_calls"] = [call]
    messages += [{"role": "tool", "content": "42", "tool_call_id": "c1"}]
    messages += [{"role": "user", "content": "last"}]
    payload = json.dumps({"model": "m", "messages": messages}).encode()
    # An iterator body makes httpx use Transfer-Encoding: chunked for the request.
    r = httpx.post(server.base_url + PATH, content=iter([payload[:10], payload[10:]]))
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "You said: last"
    assert server.requests[-1].headers["transfer-encoding"] == "chunked"


# --- faults -------------------------------------------------------------------------------


def test_fault_status_with_headers_and_bodies(server: LocalLunarServer) -> None:
    server.script(
        Fault.status(429, headers={"Retry-After": "1"}),
        Fault.status(429, headers={"retry-after-ms": "1500"}, body={"detail": "slow down"}),
        Fault.status(502, body="upstream exploded"),
        Fault.status(503),
    )
    url = server.base_url + PATH
    r = httpx.post(url, json=body(stream=True))
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert r.json()["error"]["code"] == 429

    r = httpx.post(url, json=body())
    assert (r.status_code, r.headers["retry-after-ms"], r.json()) == (
        429,
        "1500",
        {"detail": "slow down"},
    )

    r = httpx.post(url, json=body())
    assert r.status_code == 502
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == "upstream exploded"

    r = httpx.post(url, json=body())
    assert r.status_code == 503
    assert set(r.json()["error"]) == {"message", "type", "code"}

    assert httpx.post(url, json=body()).status_code == 200  # script used up


def test_fault_stream_error(server: LocalLunarServer) -> None:
    server.script(
        Fault.stream_error(after=2), Fault.stream_error(error={"message": "x", "code": 500})
    )
    r = stream(server)  # the body ends cleanly: no exception
    assert r.status_code == 200
    events = sse_data(r.content)
    assert "[DONE]" not in events
    *chunks, error = [json.loads(e) for e in events]
    assert content_of(chunks) == "You said:"
    assert len(chunks) == 3  # role + 2 tokens
    assert error == {
        "error": {"message": "Upstream overloaded", "type": "server_error", "code": 503}
    }

    r = httpx.post(server.base_url + PATH, json=body())  # not streaming: an HTTP error
    assert r.status_code == 500
    assert r.json() == {"error": {"message": "x", "code": 500}}


def test_fault_disconnect_mid_stream(server: LocalLunarServer) -> None:
    server.script(Fault.disconnect(after=1), Fault.disconnect())
    received: list[bytes] = []

    def read_all(client: httpx.Client) -> None:
        with client.stream("POST", server.base_url + PATH, json=body(stream=True)) as r:
            for part in r.iter_raw():
                received.append(part)

    with httpx.Client() as client, pytest.raises(httpx.RemoteProtocolError):
        read_all(client)
    assert content_of(chunks_of(b"".join(received))) == "You"
    assert b"[DONE]" not in b"".join(received)

    with pytest.raises(httpx.RemoteProtocolError):  # not streaming: no response at all
        httpx.post(server.base_url + PATH, json=body())
    assert server.disconnects == 0  # the server hung up, not the client


def test_fault_no_done(server: LocalLunarServer) -> None:
    server.script(Fault.no_done(), Fault.no_done(after=1))
    raw = stream(server, stream_options={"include_usage": True}).content
    chunks = chunks_of(raw)
    assert b"[DONE]" not in raw
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert "usage" in chunks[-1]

    raw = stream(server).content
    chunks = chunks_of(raw)
    assert b"[DONE]" not in raw
    assert content_of(chunks) == "You"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)


def test_fault_malformed(server: LocalLunarServer) -> None:
    server.script(Fault.malformed(after=1), Fault.malformed(line="data: {oops"))
    raw = stream(server).content
    assert b'{"content":"You"}' in raw.split(b"data: {not json\n\n")[0]
    events = sse_data(raw)
    assert "{not json" in events
    assert events[-1] == "[DONE]"
    good = [json.loads(e) for e in events if e not in ("{not json", "[DONE]")]
    assert content_of(good) == "You said: hello big world"

    r = httpx.post(server.base_url + PATH, json=body())  # not streaming: invalid JSON body
    assert r.status_code == 200
    assert r.text == "data: {oops"


def test_fault_stall(server: LocalLunarServer) -> None:
    server.script(Fault.stall(0.5))
    start = time.monotonic()
    r = stream(server)
    elapsed = time.monotonic() - start
    assert 0.45 <= elapsed < 1.5
    assert sse_data(r.content)[-1] == "[DONE]"


def test_fault_slow_and_token_delay() -> None:
    with LocalLunarServer(reply="a b c d e") as server:
        server.script(Fault.slow(0.05), Fault.slow(0.05))
        start = time.monotonic()
        assert content_of(chunks_of(stream(server).content)) == "a b c d e"
        assert time.monotonic() - start >= 0.25
        start = time.monotonic()
        r = httpx.post(server.base_url + PATH, json=body())  # non-streaming waits the total
        assert time.monotonic() - start >= 0.25
        assert r.json()["usage"]["latency_ms"] >= 250
        start = time.monotonic()
        stream(server)  # the script is used up: no delay any more
        assert time.monotonic() - start < 0.2


@pytest.mark.parametrize(
    ("build", "names"),
    [
        (lambda: Fault.disconnect(after=-1), "after"),
        (lambda: Fault.stream_error(after=True), "after"),
        (lambda: Fault.status(99), "status code"),
        (lambda: Fault.status(429.5), "status code"),
        (lambda: Fault.stall(-1), "seconds"),
        (lambda: Fault.stall(float("nan")), "seconds"),
        (lambda: Fault.slow(float("nan")), "token_delay"),
    ],
)
def test_fault_constructors_validate(build: Callable[[], Fault], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        build()


# --- scripting ----------------------------------------------------------------------------


def test_script_sequence_then_normal_reply(server: LocalLunarServer) -> None:
    server.script("one", Fault.reply("two"))
    url = server.base_url + PATH
    replies = [
        httpx.post(url, json=body()).json()["choices"][0]["message"]["content"] for _ in range(3)
    ]
    assert replies == ["one", "two", "You said: hello big world"]


def test_script_per_model(server: LocalLunarServer) -> None:
    server.script(Fault.status(500), model="primary")
    server.script("any model")
    url = server.base_url + PATH
    assert (
        httpx.post(url, json=body(model="fallback")).json()["choices"][0]["message"]["content"]
        == "any model"
    )
    assert httpx.post(url, json=body(model="fallback")).status_code == 200
    assert httpx.post(url, json=body(model="primary")).status_code == 500
    assert httpx.post(url, json=body(model="primary")).status_code == 200


def test_rejected_requests_do_not_consume_steps() -> None:
    with LocalLunarServer(api_key="k") as server:
        server.script(Fault.status(503))
        url = server.base_url + PATH
        assert httpx.post(url, json=body()).status_code == 401
        assert httpx.post(url, json={"model": "m"}, headers={"x-api-key": "k"}).status_code == 400
        assert httpx.post(url, json=body(), headers={"x-api-key": "k"}).status_code == 503


def test_script_rejects_other_steps(server: LocalLunarServer) -> None:
    with pytest.raises(TypeError):
        server.script(42)  # type: ignore[arg-type]


# --- observation: requests, connections, disconnects --------------------------------------


def test_requests_are_recorded(server: LocalLunarServer) -> None:
    before = time.monotonic()
    httpx.post(server.base_url + PATH, json=body(model="a"), headers={"X-Trace": "t1"})
    httpx.get(f"http://127.0.0.1:{server.port}/nope")
    after = time.monotonic()
    first, second = server.requests
    assert isinstance(first, RecordedRequest)
    assert (first.method, first.path, first.model) == ("POST", "/v1/chat/completions", "a")
    assert first.body == body(model="a")
    assert first.headers["x-trace"] == "t1"
    assert first.headers["content-type"] == "application/json"
    assert before <= first.time <= second.time <= after
    assert (second.method, second.path, second.body, second.model) == ("GET", "/nope", None, None)
    snapshot = server.requests
    snapshot.clear()
    assert len(server.requests) == 2  # a copy


def test_keep_alive_reuses_one_connection(server: LocalLunarServer) -> None:
    with httpx.Client() as client:
        for _ in range(2):
            r = client.post(server.base_url + PATH, json=body(stream=True))
            assert sse_data(r.content)[-1] == "[DONE]"
        assert client.post(server.base_url + PATH, json=body()).status_code == 200
        assert client.post(server.base_url + "/missing", json=body()).status_code == 404
        assert client.post(server.base_url + PATH, json=body(stream=True)).status_code == 200
    assert server.connections == 1
    assert len(server.requests) == 5


def test_client_closing_a_stream_counts_a_disconnect() -> None:
    with LocalLunarServer(reply="word " * 200, token_delay=0.005) as server:
        with (
            httpx.Client() as client,
            client.stream("POST", server.base_url + PATH, json=body(stream=True)) as r,
        ):
            next(r.iter_raw())  # read a little, then close mid-stream
        assert server.wait_for_disconnects(1, timeout=5)
        assert server.disconnects == 1
        assert not server.wait_for_disconnects(2, timeout=0.05)


def test_stop_returns_fast_with_a_stream_in_flight_and_an_idle_connection() -> None:
    server = LocalLunarServer(reply="word " * 100, token_delay=0.2).start()
    url = server.base_url + PATH
    idle = httpx.Client()
    # A 404 answers at once (a non-streaming reply would take token_delay per token) and
    # leaves a keep-alive connection open.
    assert idle.post(server.base_url + "/nope", json=body(), timeout=5).status_code == 404
    streaming = threading.Event()
    outcome: list[BaseException | None] = []

    def read_stream() -> None:
        try:
            with httpx.stream("POST", url, json=body(stream=True), timeout=5) as r:
                for _ in r.iter_raw():
                    streaming.set()
            outcome.append(None)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read_stream)
    reader.start()
    assert streaming.wait(2)
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 1.0
    reader.join(2)
    idle.close()
    assert isinstance(outcome[0], httpx.RemoteProtocolError)
    assert server.disconnects == 0  # stopping is not a client disconnect
    with pytest.raises(httpx.ConnectError):
        httpx.post(url, json=body(), timeout=1)
    server.stop()  # twice is fine


def test_lunar_server_fixture_from_the_plugin(lunar_server: LocalLunarServer) -> None:
    assert lunar_server.base_url.startswith("http://127.0.0.1:")
    assert lunar_server.base_url.endswith("/v1")
    r = httpx.post(lunar_server.base_url + PATH, json=body(text="fixture"))
    assert r.json()["choices"][0]["message"]["content"] == "You said: fixture"


def test_base_url_needs_a_started_server() -> None:
    server = LocalLunarServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.base_url


CLI = [sys.executable, "-m", "langchain_lunar.testing"]

# Runs the CLI with a stdout whose write of the URL line sends the signal from inside print():
# the earliest moment a user could react to the URL.
SIGNAL_DURING_PRINT = """
import os, runpy, sys

class Stdout:
    def __init__(self, real, sig):
        self.real, self.sig = real, sig
    def write(self, text):
        n = self.real.write(text)
        self.real.flush()
        if "\\n" in text and self.sig:
            os.kill(os.getpid(), self.sig)
            self.sig = 0
        return n
    def flush(self):
        self.real.flush()

sys.stdout = Stdout(sys.stdout, int(sys.argv.pop(1)))
runpy.run_module("langchain_lunar.testing", run_name="__main__", alter_sys=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
@pytest.mark.parametrize(
    "sigint",
    [
        "as-inherited",
        # A shell without job control starts background jobs (`cmd &`) with SIGINT ignored,
        # and a plain Python program keeps it ignored: Ctrl-C used to do nothing there.
        "ignored-by-parent",
    ],
)
def test_cli_prints_base_url_and_stops_on_ctrl_c(sigint: str) -> None:
    args = [*CLI, "--api-key", "k", "--token-delay", "0"]
    if sigint == "ignored-by-parent":
        args = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *args]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", base_url)
        r = httpx.post(base_url + PATH, json=body(), headers={"Authorization": "Bearer k"})
        assert r.status_code == 200
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=5)  # drains both pipes while waiting
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert (proc.returncode, err) == (0, "")


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT and SIGTERM")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_stops_cleanly_on_a_signal_sent_while_printing_the_url(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGNAL_DURING_PRINT, str(int(sig))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert (proc.returncode, err) == (0, "")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1\n", out)


@pytest.mark.parametrize("opted_in", [False, True])
def test_the_pytest_plugin_is_loaded_only_when_a_conftest_asks(
    tmp_path: Any, opted_in: bool
) -> None:
    (tmp_path / "test_uses_it.py").write_text(
        "def test_it(lunar_server):\n    assert lunar_server.base_url.startswith('http://')\n"
    )
    if opted_in:
        (tmp_path / "conftest.py").write_text(
            'pytest_plugins = ["langchain_lunar.testing.pytest_plugin"]\n'
        )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if opted_in:
        assert run.returncode == 0, run.stdout
    else:
        assert "fixture 'lunar_server' not found" in run.stdout


USER_SUITE = """
import httpx
import pytest

from langchain_lunar import ChatLunar

pytestmark = pytest.mark.usefixtures(FIXTURES)


def model(handler):
    return ChatLunar(
        model="m",
        api_key="k",
        base_url="http://lunar.test/v1",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )


def test_a_rate_limit():
    def limited(request):
        return httpx.Response(429, headers={"retry-after": "120"}, json={"error": {}})

    with pytest.raises(Exception, match="429"):
        model(limited).invoke("hi")


def test_an_answer_after_it():
    def answer(request):
        choice = {"index": 0, "message": {"content": "hi"}, "finish_reason": "stop"}
        return httpx.Response(200, json={"choices": [choice]})

    assert model(answer).invoke("hi").content == "hi"
"""


@pytest.mark.parametrize("fresh", [False, True])
def test_fresh_lunar_cooldowns_keeps_a_mocked_429_from_cooling_the_next_test(
    tmp_path: Any, fresh: bool
) -> None:
    fixtures = '"fresh_lunar_cooldowns"' if fresh else ""
    (tmp_path / "test_suite.py").write_text(USER_SUITE.replace("FIXTURES", fixtures))
    (tmp_path / "conftest.py").write_text(
        'pytest_plugins = ["langchain_lunar.testing.pytest_plugin"]\n'
    )
    # The package of this checkout, wherever the interpreter's installed one points.
    package_root = str(Path(langchain_lunar.__file__).parents[1])
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": package_root},
    )
    if fresh:
        assert run.returncode == 0, run.stdout
    else:  # the first test's cooldown (120 s, above max_retry_wait) fails the second at once
        assert "1 failed, 1 passed" in run.stdout, run.stdout
        assert "RateLimitError" in run.stdout
