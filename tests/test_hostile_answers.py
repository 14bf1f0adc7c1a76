"""A hostile or broken server gets nothing: byte-exact answers over real TCP (``raw_server``).

- ``[DONE]`` ends the stream at once, whatever the server does after it (holds the connection
  open, goes on sending); a well-behaved server's connection still goes back to the pool;
- a redirect, a web page, an empty body or a body without events gives a typed error that says
  what came, retried only when a retry may help;
- redirects are never followed, even by a client of the user's that follows them;
- what an error or a log line quotes of the server's answer is masked of the key before it is cut.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import pytest

from langchain_lunar import (
    APIConnectionError,
    APIError,
    ChatLunar,
    LunarError,
    MalformedResponseError,
)

from .calls import ALL_WAYS, INVOKING, STREAMING, CallWay, call, call_sync
from .helpers import chunk, sse, text_stream
from .raw_server import Answer, RawServer, RawServers, http

# Long enough that a secret cut in two would still show most of itself.
KEY = "sk-lunar-9f8e7d6c5b4a39281706f5e4d3c2b1a0ZYXWVUTSRQ"

SSE_HEAD = [b"content-type: text/event-stream"]
STREAM = text_stream("Hel", "lo")  # ends with data: [DONE]
HOLD = 5.0  # how long a hostile server keeps the connection open; a call must not wait it out


def model_for(server: RawServer, **fields: Any) -> ChatLunar:
    fields.setdefault("max_retries", 0)
    fields.setdefault("backoff_base", 0.001)
    fields.setdefault("backoff_jitter", 0.0)
    fields.setdefault("timeout", 10.0)
    return ChatLunar(base_url=server.url, api_key=KEY, model="gpt-4o-mini", **fields)


def leaks(text: str) -> bool:
    """Whether ``text`` shows 8 or more characters of the key in a row."""
    return any(KEY[i : i + 8] in text for i in range(len(KEY) - 7))


def chunked(*pieces: bytes) -> bytes:
    """``pieces`` as chunks of a chunked body, without the terminator."""
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)


CHUNKED_HEAD = http(b"200 OK", [*SSE_HEAD, b"transfer-encoding: chunked"], length=False)
UNTIL_CLOSE_HEAD = http(b"200 OK", SSE_HEAD, length=False)


def timed(model: ChatLunar, way: CallWay) -> tuple[Any, float]:
    started = time.monotonic()
    result = call_sync(model, way)
    return result, time.monotonic() - started


def text_of(result: Any, way: CallWay) -> str:
    if way in STREAMING:
        return "".join(str(piece.content) for piece in result)
    return str(result.content)


# --- [DONE] ends the stream at once ---------------------------------------------------------


@pytest.mark.parametrize("way", ALL_WAYS)
@pytest.mark.parametrize("chunk_timeout", [120.0, None])
@pytest.mark.parametrize(
    "answer",
    [
        Answer([UNTIL_CLOSE_HEAD, STREAM], hold=HOLD),
        Answer([CHUNKED_HEAD, chunked(STREAM)], hold=HOLD),
    ],
    ids=["until-close", "chunked"],
)
def test_done_ends_the_call_while_the_server_holds_the_connection(
    raw_server: RawServers, answer: Answer, chunk_timeout: float | None, way: CallWay
) -> None:
    server = raw_server.start(answer)
    model = model_for(server, streaming=True, stream_chunk_timeout=chunk_timeout)
    result, took = timed(model, way)
    assert text_of(result, way) == "Hello"
    assert took < 1.0  # not the HOLD, nor the chunk timeout, nor the read timeout
    if way in STREAMING:
        last = result[-1]
        assert last.chunk_position == "last"
        assert last.usage_metadata is not None
        assert last.response_metadata["finish_reason"] == "stop"


@pytest.mark.parametrize("way", STREAMING)
def test_the_last_chunk_comes_before_the_drain_ends(raw_server: RawServers, way: CallWay) -> None:
    server = raw_server.start(Answer([UNTIL_CLOSE_HEAD, STREAM], hold=HOLD))
    model = model_for(server, stream_chunk_timeout=None)
    arrived: list[float] = []

    async def consume() -> None:
        started = time.monotonic()
        if way == "stream":
            for piece in model.stream("hi"):
                if piece.chunk_position == "last":
                    arrived.append(time.monotonic() - started)
        else:
            async for piece in model.astream("hi"):
                if piece.chunk_position == "last":
                    arrived.append(time.monotonic() - started)
        arrived.append(time.monotonic() - started)

    asyncio.run(consume())
    last_chunk, end = arrived
    # The drain after [DONE] (cut at 0.25 s, as the server holds the connection) runs once the
    # caller has the last chunk, and is short.
    assert end - last_chunk >= 0.1
    assert end < 1.0


@pytest.mark.parametrize("way", ALL_WAYS)
def test_events_after_done_sent_slowly_are_not_waited_on_and_logged_once(
    raw_server: RawServers, way: CallWay, caplog: pytest.LogCaptureFixture
) -> None:
    # The junk quotes the key across the 300-character cut of the log line.
    junk = b"data: " + b"x" * 290 + KEY.encode() + b"\n\n"
    server = raw_server.start(Answer([CHUNKED_HEAD, chunked(STREAM), *[0.05, chunked(junk)] * 100]))
    model = model_for(server, streaming=True)
    with caplog.at_level(logging.WARNING, logger="langchain_lunar"):
        result, took = timed(model, way)
    assert text_of(result, way) == "Hello"
    assert took < 1.0
    warnings = [r for r in caplog.records if "after [DONE]" in r.getMessage()]
    assert len(warnings) <= 1
    assert not leaks(caplog.text)


@pytest.mark.parametrize("way", STREAMING)
def test_events_after_done_in_the_same_read_are_logged_once_masked(
    raw_server: RawServers, way: CallWay, caplog: pytest.LogCaptureFixture
) -> None:
    junk = b"data: " + b"x" * 290 + KEY.encode() + b"\n\n"
    server = raw_server.start(Answer([http(b"200 OK", SSE_HEAD, STREAM + junk * 5)]))
    with caplog.at_level(logging.WARNING, logger="langchain_lunar"):
        result = call_sync(model_for(server), way)
    assert text_of(result, way) == "Hello"
    warnings = [r for r in caplog.records if "after [DONE]" in r.getMessage()]
    assert len(warnings) == 1
    assert "**********" in caplog.text
    assert not leaks(caplog.text)


@pytest.mark.parametrize("way", ALL_WAYS)
@pytest.mark.parametrize(
    "answer",
    [
        Answer([http(b"200 OK", SSE_HEAD, STREAM)]),
        Answer([CHUNKED_HEAD, chunked(STREAM) + b"0\r\n\r\n"]),
        # The body's end a moment after [DONE], as a server's second write may come.
        Answer([CHUNKED_HEAD, chunked(STREAM), 0.05, b"0\r\n\r\n"]),
    ],
    ids=["content-length", "chunked", "chunked-end-later"],
)
def test_a_well_behaved_servers_connection_is_reused(
    raw_server: RawServers, answer: Answer, way: CallWay
) -> None:
    server = raw_server.start(answer)
    model = model_for(server, streaming=True)

    async def twice() -> list[Any]:
        return [await call(model, way), await call(model, way)]

    results = asyncio.run(twice()) if way in ("ainvoke", "astream") else twice_sync(model, way)
    assert [text_of(result, way) for result in results] == ["Hello", "Hello"]
    assert len(server.requests) == 2
    assert server.connections == 1


def twice_sync(model: ChatLunar, way: CallWay) -> list[Any]:
    return [call_sync(model, way), call_sync(model, way)]


# --- answers that are not an event stream, nor JSON ----------------------------------------

PAGE = b"<html><head><title>Hotel Wi-Fi: log in</title></head><body>...</body></html>"


def failure(server: RawServer, way: CallWay, **fields: Any) -> LunarError:
    model = model_for(server, **fields)
    with pytest.raises(LunarError) as caught:
        call_sync(model, way)
    return caught.value


@pytest.mark.parametrize("way", ALL_WAYS)
def test_a_web_page_is_a_malformed_answer_not_retried(raw_server: RawServers, way: CallWay) -> None:
    page = http(b"200 OK", [b"content-type: text/html; charset=utf-8"], PAGE)
    server = raw_server.start(Answer([page]))
    error = failure(server, way, max_retries=2)
    assert type(error) is MalformedResponseError
    assert "HTTP 200" in str(error)
    assert "text/html" in str(error)
    assert len(server.requests) == 1


@pytest.mark.parametrize("way", ALL_WAYS)
@pytest.mark.parametrize("content_type", [[], SSE_HEAD, [b"content-type: application/json"]])
def test_an_empty_200_is_a_connection_error_retried(
    raw_server: RawServers, way: CallWay, content_type: list[bytes]
) -> None:
    server = raw_server.start(Answer([http(b"200 OK", content_type, b"")]))
    error = failure(server, way, max_retries=2)
    assert type(error) is APIConnectionError
    assert "empty body" in str(error)
    assert "HTTP 200" in str(error)
    assert len(server.requests) == 3


@pytest.mark.parametrize("way", STREAMING)
def test_a_body_without_events_is_a_malformed_answer_not_retried(
    raw_server: RawServers, way: CallWay
) -> None:
    server = raw_server.start(Answer([http(b"200 OK", [b"content-type: text/plain"], b"hello")]))
    error = failure(server, way, max_retries=2)
    assert type(error) is MalformedResponseError
    assert "text/plain" in str(error)
    assert "without a single Server-Sent Event" in str(error)
    assert len(server.requests) == 1


@pytest.mark.parametrize("way", STREAMING)
def test_an_event_stream_of_comments_alone_is_a_connection_error_retried(
    raw_server: RawServers, way: CallWay
) -> None:
    server = raw_server.start(Answer([http(b"200 OK", SSE_HEAD, b": ping\n\n: ping\n\n")]))
    error = failure(server, way, max_retries=1)
    assert type(error) is APIConnectionError
    assert "without a single data event" in str(error)
    assert len(server.requests) == 2


@pytest.mark.parametrize("way", ALL_WAYS)
@pytest.mark.parametrize("status", [b"302 Found", b"307 Temporary Redirect", b"308 Moved"])
def test_a_redirect_is_an_api_error_naming_the_masked_location_not_retried(
    raw_server: RawServers, way: CallWay, status: bytes
) -> None:
    location = b"location: https://portal.example/login?next=/v1&key=" + KEY.encode()
    server = raw_server.start(Answer([http(status, [location], b"")]))
    error = failure(server, way, max_retries=2)
    assert type(error) is APIError
    assert error.status_code == int(status[:3])
    assert "https://portal.example/login" in str(error)
    assert "**********" in str(error)
    assert not leaks(str(error))
    assert len(server.requests) == 1


# --- redirects are never followed -----------------------------------------------------------


@pytest.mark.parametrize("way", ALL_WAYS)
@pytest.mark.parametrize("streaming", [False, True])
def test_a_redirect_to_another_server_is_not_followed_by_a_following_client(
    raw_server: RawServers, way: CallWay, streaming: bool
) -> None:
    other = raw_server.start(Answer([http(b"200 OK", SSE_HEAD, STREAM)]))
    # Another host for httpx: 127.0.0.1 and localhost differ, so only Authorization is dropped.
    where = other.url.replace("127.0.0.1", "localhost") + "/chat/completions"
    server = raw_server.start(
        Answer([http(b"307 Temporary Redirect", [b"location: " + where.encode()], b"")])
    )
    model = model_for(
        server,
        streaming=streaming,
        http_client=httpx.Client(follow_redirects=True),
        http_async_client=httpx.AsyncClient(follow_redirects=True),
    )
    with pytest.raises(APIError) as caught:
        call_sync(model, way)
    assert caught.value.status_code == 307
    assert len(server.requests) == 1
    assert other.requests == []


# --- quoting the answer: masked, then cut ---------------------------------------------------

ACROSS_THE_CUT = "x" * 270 + KEY + "y" * 100  # the cut at 300 falls inside the key


@pytest.mark.parametrize("way", INVOKING)
def test_a_body_that_is_not_json_is_quoted_masked(raw_server: RawServers, way: CallWay) -> None:
    body = ACROSS_THE_CUT.encode()
    server = raw_server.start(Answer([http(b"200 OK", [b"content-type: text/plain"], body)]))
    error = failure(server, way)
    assert type(error) is MalformedResponseError
    assert "xxxxx" in str(error)
    assert not leaks(str(error))


@pytest.mark.parametrize("way", INVOKING)
def test_a_json_body_of_the_wrong_shape_is_quoted_masked(
    raw_server: RawServers, way: CallWay
) -> None:
    body = b'{"pad": "%s", "choices": 5}' % ACROSS_THE_CUT.encode()
    server = raw_server.start(Answer([http(b"200 OK", [b"content-type: application/json"], body)]))
    error = failure(server, way)
    assert type(error) is MalformedResponseError
    assert "xxxxx" in str(error)
    assert not leaks(str(error))


@pytest.mark.parametrize("way", STREAMING)
def test_json_answering_a_stream_is_quoted_masked(raw_server: RawServers, way: CallWay) -> None:
    body = b'{"pad": "%s", "choices": []}' % ACROSS_THE_CUT.encode()
    server = raw_server.start(Answer([http(b"200 OK", [b"content-type: application/json"], body)]))
    error = failure(server, way)
    assert type(error) is MalformedResponseError
    assert "instead of Server-Sent Events" in str(error)
    assert not leaks(str(error))


@pytest.mark.parametrize("way", STREAMING)
@pytest.mark.parametrize("before", ["", "é" * 290], ids=["ascii", "two-byte-chars"])
def test_a_data_line_that_is_not_json_is_quoted_masked(
    raw_server: RawServers, way: CallWay, before: str
) -> None:
    line = (before or "x" * 290) + KEY + "y" * 2000
    server = raw_server.start(Answer([http(b"200 OK", SSE_HEAD, sse(line, chunk("a")))]))
    error = failure(server, way)
    assert type(error) is MalformedResponseError
    assert "not a JSON object" in str(error)
    assert not leaks(str(error))


def echoing(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with the key echoed as its id, model and fingerprint."""
    return {**payload, "id": "chatcmpl-" + KEY, "model": KEY, "system_fingerprint": "fp-" + KEY}


@pytest.mark.parametrize("way", STREAMING)
def test_a_key_echoed_as_id_model_or_fingerprint_is_masked(
    raw_server: RawServers, way: CallWay
) -> None:
    body = sse(echoing(chunk("Hel")), echoing(chunk("lo", finish="stop")))
    server = raw_server.start(Answer([http(b"200 OK", SSE_HEAD, body)]))
    chunks = call_sync(model_for(server), way)
    assert text_of(chunks, way) == "Hello"
    assert chunks[-1].response_metadata["model_name"] == "**********"
    assert not leaks(repr(chunks))


@pytest.mark.parametrize("way", STREAMING)
def test_a_key_echoed_as_the_model_is_masked_in_errors(
    raw_server: RawServers, way: CallWay
) -> None:
    body = sse(echoing(chunk("Hel")), "not json")
    server = raw_server.start(Answer([http(b"200 OK", SSE_HEAD, body)]))
    error = failure(server, way)
    assert "not a JSON object" in str(error.__cause__)
    assert not leaks(str(error))
    assert not leaks(str(error.__cause__))
