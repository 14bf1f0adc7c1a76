"""No event too large: ``max_event_bytes`` bounds what one event, one answer and one error body
may take, decompressed, over real TCP (``raw_server``), sync and async.

- a stream whose event passes the bound ends there (``MalformedResponseError``, or
  ``StreamInterruptedError`` with exactly the text delivered), the connection closed at once,
  the memory within the bound plus a little;
- a non-streamed answer or an error body larger than the bound is refused unread to its end;
  an error keeps at most 4 KiB of its body;
- gzip and deflate are decompressed in bounded steps: 100 KiB that expand to 100 MiB cost no
  100 MiB at once;
- very large events that fit are read whole, in time linear in their size.
"""

from __future__ import annotations

import json
import time
import tracemalloc
import zlib
from typing import Any

import pytest

from langchain_lunar import (
    APIError,
    ChatLunar,
    MalformedResponseError,
    ServerError,
    StreamInterruptedError,
)
from langchain_lunar._error_mapping import KEPT_BODY_CHARS
from langchain_lunar._sse import TOO_LARGE, SSEDecoder

from .calls import ALL_WAYS, INVOKING, STREAMING, CallWay, call_sync
from .helpers import chunk, completion, sse, text_stream
from .raw_server import Answer, RawServer, RawServers, http

MIB = 1 << 20
SSE_HEAD = [b"content-type: text/event-stream"]
JSON_HEAD = [b"content-type: application/json"]
BLOCK = b"x" * MIB
HOLD = 5.0  # a server that would go on: the call must not wait for it


def model_for(server: RawServer, **fields: Any) -> ChatLunar:
    fields.setdefault("max_retries", 0)
    fields.setdefault("timeout", 10.0)
    return ChatLunar(base_url=server.url, api_key="sk-test", model="gpt-4o-mini", **fields)


def endless(head: bytes, megabytes: int = 64) -> Answer:
    """``head``, then ``megabytes`` MiB without a line end: far more than any bound in here."""
    return Answer([head, *[BLOCK] * megabytes], hold=HOLD)


def peak_of(way: CallWay, llm: ChatLunar, **kwargs: Any) -> tuple[int, BaseException | None]:
    """The peak of the memory Python allocated during one call, and what it raised."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        try:
            call_sync(llm, way, **kwargs)
            raised = None
        except Exception as error:
            raised = error
        return tracemalloc.get_traced_memory()[1] - start, raised
    finally:
        tracemalloc.stop()


def closed_soon(server: RawServer) -> bool:
    """Whether the server saw the client leave within a second."""
    end = time.monotonic() + 1.0
    while not server.disconnects and time.monotonic() < end:
        time.sleep(0.01)
    return bool(server.disconnects)


def gzipped(data: bytes, wbits: int = 31) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


# -- the decoder ---------------------------------------------------------------------------


def test_the_decoder_refuses_an_event_once_its_pieces_pass_the_bound() -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    assert decoder.feed(b"data: 1\n\ndata: ") == [(b"1", None)]
    assert decoder.feed(b"x" * 60) == []
    events = decoder.feed(b"x" * 60)
    assert events == [TOO_LARGE]
    assert events[0][1] is TOO_LARGE[1]
    assert decoder.close() == []  # what was kept is dropped


def test_an_event_within_the_bound_is_whole() -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    assert decoder.feed(b"data: ") == []
    assert decoder.feed(b"x" * 90) == []
    assert decoder.feed(b"\n\n") == [(b"x" * 90, None)]


def test_a_server_cannot_name_its_event_as_the_bound_does() -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    ((_data, name),) = decoder.feed(b"event: too large\ndata:\n\n")
    assert name == TOO_LARGE[1]
    assert name is not TOO_LARGE[1]


# -- streams -------------------------------------------------------------------------------


@pytest.mark.parametrize("way", STREAMING)
@pytest.mark.parametrize("per_call", [False, True])
def test_an_event_past_the_bound_ends_the_stream(
    raw_server: RawServers, way: CallWay, per_call: bool
) -> None:
    server = raw_server.start(endless(http(b"200 OK", SSE_HEAD, length=False) + b"data: "))
    settings = {"max_event_bytes": 2 * MIB}
    llm = model_for(server) if per_call else model_for(server, **settings)
    started = time.monotonic()
    with pytest.raises(MalformedResponseError) as caught:
        call_sync(llm, way, **(settings if per_call else {}))
    assert time.monotonic() - started < HOLD
    message = str(caught.value)
    assert "max_event_bytes=2097152" in message
    assert "ChatLunar(..., max_event_bytes=" in message
    assert closed_soon(server)


@pytest.mark.parametrize("way", STREAMING)
def test_once_text_was_delivered_the_error_holds_exactly_that_text(
    raw_server: RawServers, way: CallWay
) -> None:
    start = sse(chunk("", role="assistant"), chunk("Hel"), chunk("lo"), done=False)
    server = raw_server.start(endless(http(b"200 OK", SSE_HEAD, length=False) + start, 8))
    delivered: list[Any] = []
    with pytest.raises(StreamInterruptedError) as caught:
        call_sync(model_for(server, max_event_bytes=MIB), way, into=delivered)
    assert caught.value.text == "Hello" == "".join(c.content for c in delivered)
    assert isinstance(caught.value.__cause__, MalformedResponseError)
    assert "max_event_bytes=1048576" in str(caught.value)
    assert closed_soon(server)


@pytest.mark.parametrize("way", STREAMING)
def test_an_endless_line_costs_the_bound_and_a_little(raw_server: RawServers, way: CallWay) -> None:
    bound = 4 * MIB
    server = raw_server.start(endless(http(b"200 OK", SSE_HEAD, length=False)))
    peak, raised = peak_of(way, model_for(server, max_event_bytes=bound))
    assert isinstance(raised, MalformedResponseError)
    assert peak < bound + MIB, f"{peak / MIB:.1f} MiB"


@pytest.mark.parametrize("way", STREAMING)
def test_a_large_event_within_the_bound_is_read_whole(raw_server: RawServers, way: CallWay) -> None:
    content = "A" * (8 * MIB)
    body = sse(chunk(content, role="assistant"), chunk(finish="stop"))
    server = raw_server.start(Answer([http(b"200 OK", SSE_HEAD, body)]))
    chunks = call_sync(model_for(server, max_event_bytes=9 * MIB), way)
    assert "".join(c.content for c in chunks) == content


# -- whole bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize("way", INVOKING)
def test_an_answer_past_the_bound_is_refused_unread(raw_server: RawServers, way: CallWay) -> None:
    # It says 1 GiB and sends 64 MiB: a client reading it all would wait for the rest.
    head = http(b"200 OK", [*JSON_HEAD, b"content-length: %d" % (1 << 30)], length=False)
    server = raw_server.start(endless(head + b'{"id": "c1", "choices": [], "x": "'))
    started = time.monotonic()
    with pytest.raises(MalformedResponseError) as caught:
        call_sync(model_for(server), way, max_event_bytes=MIB)
    assert time.monotonic() - started < HOLD
    assert str(caught.value).startswith("The answer from gpt-4o-mini passed max_event_bytes=")
    assert closed_soon(server)


@pytest.mark.parametrize("way", ALL_WAYS)
def test_an_error_body_past_the_bound_is_cut_and_the_error_kept(
    raw_server: RawServers, way: CallWay
) -> None:
    said = [*JSON_HEAD, b"content-length: %d" % (1 << 30)]
    server = raw_server.start(endless(http(b"500 Internal Server Error", said, length=False)))
    started = time.monotonic()
    with pytest.raises(ServerError) as caught:
        call_sync(model_for(server), way, max_event_bytes=MIB)
    assert time.monotonic() - started < HOLD
    error = caught.value
    assert error.status_code == 500
    assert "max_event_bytes=1048576" in error.message
    assert isinstance(error.body, str)
    assert len(error.body) == KEPT_BODY_CHARS + 3


@pytest.mark.parametrize("way", ALL_WAYS)
def test_an_error_keeps_a_few_kib_of_a_large_body(raw_server: RawServers, way: CallWay) -> None:
    body = json.dumps({"error": {"message": "Overloaded", "padding": "p" * MIB}}).encode()
    server = raw_server.start(Answer([http(b"503 Service Unavailable", JSON_HEAD, body)]))
    with pytest.raises(APIError) as caught:
        call_sync(model_for(server), way)
    error = caught.value
    assert error.message == "Overloaded"  # read from the whole body
    assert isinstance(error.body, str)
    assert len(error.body) == KEPT_BODY_CHARS + 3
    assert error.body.startswith('{"error": {"message": "Overloaded"')


# -- compressed bodies ------------------------------------------------------------------------

ENCODINGS = {"gzip": 31, "deflate": 15, "deflate-raw": -15}


@pytest.mark.parametrize("way", STREAMING)
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_compressed_stream_is_decompressed_in_steps(
    raw_server: RawServers, way: CallWay, encoding: str
) -> None:
    # 8 MiB of blank lines (some 8 KiB of gzip), then the answer.
    body = gzipped(b"\n" * (8 * MIB) + text_stream("Hel", "lo"), ENCODINGS[encoding])
    named = b"content-encoding: " + encoding.partition("-")[0].encode()
    server = raw_server.start(Answer([http(b"200 OK", [*SSE_HEAD, named], body)]))
    chunks: list[Any] = []
    peak, raised = peak_of(way, model_for(server), into=chunks)
    assert raised is None
    assert "".join(c.content for c in chunks) == "Hello"
    assert peak < 4 * MIB, f"{peak / MIB:.1f} MiB"
    assert server.requests[0].header("accept-encoding") == "gzip, deflate"


@pytest.mark.parametrize("way", ALL_WAYS)
@pytest.mark.parametrize("status", [b"200 OK", b"500 Internal Server Error"])
def test_a_gzip_bomb_is_refused_at_the_bound(
    raw_server: RawServers, way: CallWay, status: bytes
) -> None:
    payload = completion("Hi") if status == b"200 OK" else {"error": {"message": "Broke"}}
    text = json.dumps(payload).encode()
    bomb = gzipped(text[:-1] + b" " * (64 * MIB) + text[-1:])
    head = [*JSON_HEAD, b"content-encoding: gzip"]
    server = raw_server.start(Answer([http(status, head, bomb)]))
    peak, raised = peak_of(way, model_for(server, max_event_bytes=2 * MIB))
    if status == b"200 OK":
        assert isinstance(raised, MalformedResponseError), raised
        assert "max_event_bytes=2097152" in str(raised)
    else:
        assert isinstance(raised, ServerError), raised
        assert isinstance(raised.body, str)
        assert len(raised.body) == KEPT_BODY_CHARS + 3
    assert peak < 2 * MIB + MIB, f"{peak / MIB:.1f} MiB"


@pytest.mark.parametrize("way", ALL_WAYS)
def test_a_gzip_answer_within_the_bound_is_read(raw_server: RawServers, way: CallWay) -> None:
    streamed = way in STREAMING
    body = text_stream("Hel", "lo") if streamed else json.dumps(completion("Hello")).encode()
    head = [*(SSE_HEAD if streamed else JSON_HEAD), b"content-encoding: gzip"]
    server = raw_server.start(Answer([http(b"200 OK", head, gzipped(body))]))
    result = call_sync(model_for(server, max_event_bytes=MIB), way)
    text = "".join(c.content for c in result) if streamed else result.content
    assert text == "Hello"


# -- the setting ------------------------------------------------------------------------------


def test_max_event_bytes_is_checked_per_call(raw_server: RawServers) -> None:
    server = raw_server.start(Answer([http(b"200 OK", JSON_HEAD, b"{}")]))
    with pytest.raises(ValueError, match="max_event_bytes=0"):
        model_for(server).invoke("hi", max_event_bytes=0)
    assert not server.requests
    with pytest.raises(ValueError, match="max_event_bytes"):
        ChatLunar(model="m", api_key="k", max_event_bytes=-1)
    assert ChatLunar(model="m", api_key="k").max_event_bytes == 128 * MIB
