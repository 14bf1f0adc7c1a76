"""stream_chunk_timeout: the longest wait for the next data event; comments do not count.

Bodies here are sent piece by piece with real, short sleeps through httpx.MockTransport, which
has no socket: a stall is seen when a read brings only comments past the deadline. The watchdog
that cuts a read blocked past it is tested over TCP (integration_tests).
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessageChunk
from pydantic import ValidationError

from langchain_lunar import (
    APITimeoutError,
    ChatLunar,
    StreamChunkTimeoutError,
    StreamInterruptedError,
    _chunk_timeout,
)
from langchain_lunar._chunk_timeout import NEVER, watch_async, watch_sync

from .calls import CallWay, answer, call, call_sync, streaming_ways
from .helpers import chunk, mock_model, sse, text_stream

TIMEOUT = 0.2
PING = b": ping\n\n"

Steps = list[tuple[float, bytes]]
"""A body: each piece is sent after its delay in seconds."""


class Trickle(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body sent piece by piece with real sleeps, which records how far it got."""

    def __init__(self, steps: Steps) -> None:
        self.steps = steps
        self.sent = 0
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for delay, data in self.steps:
            time.sleep(delay)
            self.sent += 1
            yield data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for delay, data in self.steps:
            await asyncio.sleep(delay)
            self.sent += 1
            yield data

    @property
    def cut_short(self) -> bool:
        """Closed before the end: the client gave up on it."""
        return self.closed and self.sent < len(self.steps)

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


def pings(seconds: float, every: float = 0.05, line: bytes = PING) -> Steps:
    return [(every, line)] * round(seconds / every)


def event(payload: Any) -> bytes:
    return sse(payload, done=False)


OPENING = event(chunk("", role="assistant"))
REST = sse(chunk("!"), chunk(finish="stop"))  # what a stalled model would have said at last


class Server:
    """A MockTransport handler: each request gets the next body of its model."""

    def __init__(self, **bodies: list[Steps]) -> None:
        self.bodies = bodies
        self.models: list[str] = []
        self.streams: list[Trickle] = []
        self.timeouts: list[dict[str, Any]] = []
        self.extensions: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        model = json.loads(request.content)["model"]
        self.models.append(model)
        self.timeouts.append(request.extensions["timeout"])
        self.extensions.append(request.extensions)
        stream = Trickle(self.bodies[model].pop(0))
        self.streams.append(stream)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)

    def body_timeouts(self) -> list[dict[str, Any]]:
        """The timeouts of each request as its body was read (set once its headers were in)."""
        return [extensions["timeout"] for extensions in self.extensions]


def silent(seconds: float = 1.0) -> Steps:
    """The role chunk, then only pings for ``seconds``, then the answer."""
    return [(0.0, OPENING), *pings(seconds), (0.0, REST)]


def stalls_after(*tokens: str, seconds: float = 1.0) -> Steps:
    return [(0.0, OPENING), *((0.0, event(chunk(t))) for t in tokens), *pings(seconds), (0, REST)]


def model_for(server: Server, **fields: Any) -> ChatLunar:
    fields.setdefault("stream_chunk_timeout", TIMEOUT)
    model = mock_model(server, model="primary", **fields)
    model._sleep = lambda seconds: None
    model._asleep = _no_sleep
    return model


async def _no_sleep(seconds: float) -> None:
    return None


@streaming_ways
async def test_a_silent_model_is_retried_then_the_fallback_answers(way: CallWay) -> None:
    server = Server(primary=[silent(), silent()], backup=[[(0.0, text_stream("Hi", "!"))]])
    model = model_for(server, max_retries=1, fallbacks=["backup"])
    message = await answer(model, way)
    assert message.content == "Hi!"
    assert server.models == ["primary", "primary", "backup"]
    assert all(stream.cut_short for stream in server.streams[:2])
    failed = message.response_metadata["failed_attempts"]
    assert [(a["model"], a["error"], a["then"]) for a in failed] == [
        ("primary", "StreamChunkTimeoutError", "retry"),
        ("primary", "StreamChunkTimeoutError", "fallback"),
    ]
    assert "stream_chunk_timeout" in failed[0]["message"]


@streaming_ways
async def test_without_retries_a_silent_model_is_a_timeout_error(way: CallWay) -> None:
    server = Server(primary=[silent()])
    with pytest.raises(StreamChunkTimeoutError) as caught:
        await answer(model_for(server), way)
    error = caught.value
    assert isinstance(error, APITimeoutError)
    assert (error.timeout, error.model) == (TIMEOUT, "primary")
    assert "No data from primary for 0.2 s (stream_chunk_timeout" in str(error)
    assert [a["error"] for a in error.failed_attempts] == ["StreamChunkTimeoutError"]
    assert server.streams[0].cut_short


@streaming_ways
async def test_a_stall_after_tokens_interrupts_with_exactly_the_delivered_text(
    way: CallWay,
) -> None:
    server = Server(primary=[stalls_after("Hello", " world")])
    delivered: list[AIMessageChunk] = []
    with pytest.raises(StreamInterruptedError) as caught:
        await call(model_for(server, max_retries=2, fallbacks=["backup"]), way, into=delivered)
    assert [chunk.text for chunk in delivered] == ["Hello", " world"]
    assert caught.value.text == "Hello world"
    assert isinstance(caught.value.__cause__, StreamChunkTimeoutError)
    assert server.models == ["primary"]  # delivered tokens are never retried
    assert server.streams[0].cut_short


KEEP_ALIVES = {
    "comment": PING,
    "bare comment": b":\n\n",
    "event without data": b"event: ping\n\n",
    "id and retry": b"id: 7\nretry: 1000\n\n",
    "blank lines": b"\n\n",
}


@streaming_ways
@pytest.mark.parametrize("line", KEEP_ALIVES.values(), ids=KEEP_ALIVES.keys())
async def test_lines_without_data_do_not_keep_a_stream_alive(way: CallWay, line: bytes) -> None:
    server = Server(primary=[[(0.0, OPENING), (0.0, event(chunk("a"))), *pings(1.0, line=line)]])
    with pytest.raises(StreamInterruptedError) as caught:
        await answer(model_for(server), way)
    assert isinstance(caught.value.__cause__, StreamChunkTimeoutError)
    assert server.streams[0].cut_short


@streaming_ways
async def test_data_events_keep_a_stream_alive_longer_than_the_timeout(way: CallWay) -> None:
    # 1 s in all, 0.1 s between data events, pings in between; an empty delta counts too.
    steps: Steps = [(0.0, OPENING)]
    for n in range(10):
        steps += [(0.05, PING), (0.05, event(chunk(str(n)) if n % 3 else chunk("")))]
    server = Server(primary=[[*steps, (0.0, REST)]])
    message = await answer(model_for(server, stream_chunk_timeout=0.3), way)
    assert message.content == "124578!"


def callers_time_server() -> Server:
    return Server(primary=[[(0.0, OPENING + event(chunk("a"))), (0.0, PING), (0.0, REST)]])


def test_the_callers_time_with_a_chunk_is_not_a_wait() -> None:
    texts: list[str] = []
    for piece in model_for(callers_time_server()).stream("hi"):
        texts.append(piece.text)
        time.sleep(1.5 * TIMEOUT)  # longer than the timeout, with every chunk
    assert "".join(texts) == "a!"


async def test_the_callers_time_with_a_chunk_is_not_a_wait_async() -> None:
    texts: list[str] = []
    async for piece in model_for(callers_time_server()).astream("hi"):
        texts.append(piece.text)
        await asyncio.sleep(1.5 * TIMEOUT)
    assert "".join(texts) == "a!"


@streaming_ways
async def test_a_body_left_open_after_done_ends_at_the_deadline(way: CallWay) -> None:
    server = Server(primary=[[(0.0, text_stream("Hi")), *pings(1.0)]])
    message = await answer(model_for(server), way)
    assert message.content == "Hi"
    assert message.response_metadata["finish_reason"] == "stop"
    assert server.streams[0].cut_short


@streaming_ways
@pytest.mark.parametrize("off", [None, 0])
async def test_none_or_zero_turns_it_off(way: CallWay, off: float | None) -> None:
    server = Server(primary=[silent(0.5)])
    message = await answer(model_for(server, stream_chunk_timeout=off), way)
    assert message.content == "!"
    assert not server.streams[0].cut_short


@streaming_ways
async def test_a_per_call_value_overrides_the_models(way: CallWay) -> None:
    server = Server(primary=[silent(), silent(0.5)])
    with pytest.raises(StreamChunkTimeoutError):
        await call(model_for(server, stream_chunk_timeout=None), way, stream_chunk_timeout=0.2)
    # 0 turns it off for one call (None per call means the model's own setting).
    bound = model_for(server).bind(stream_chunk_timeout=0)
    assert (await answer(bound, way)).content == "!"
    assert [stream.cut_short for stream in server.streams] == [True, False]


def test_the_read_timeout_of_a_streams_request_is_at_most_the_first_chunk_timeout() -> None:
    # The response headers are part of the wait for the first event, which no watchdog can cut
    # yet (stream_chunk_timeout no longer lowers it: a model may think longer before its first
    # token than it may pause between two).
    server = Server(primary=[[(0.0, text_stream("a"))] for _ in range(4)])
    model = model_for(server, timeout=httpx.Timeout(30.0, connect=5.0), first_chunk_timeout=0.5)
    list(model.stream("hi"))
    list(model.stream("hi", timeout=0.1))  # shorter: kept
    list(model.stream("hi", first_chunk_timeout=0))
    list(model.stream("hi", first_chunk_timeout=None, stream_chunk_timeout=0.1))
    assert [t["read"] for t in server.timeouts] == [0.5, 0.1, 30.0, 0.5]
    assert server.timeouts[0]["connect"] == 5.0


def test_once_the_headers_are_in_the_body_reads_wait_for_the_longer_bound() -> None:
    server = Server(primary=[[(0.0, text_stream("a"))] for _ in range(3)])
    model = model_for(server, timeout=httpx.Timeout(30.0), first_chunk_timeout=0.2)
    list(model.stream("hi", stream_chunk_timeout=1.0))  # a gap may last longer than the first
    list(model.stream("hi", stream_chunk_timeout=0.1))  # the first is the longer: kept
    list(model.stream("hi", stream_chunk_timeout=1.0, timeout=0.15))  # the user's is shorter
    assert [request["read"] for request in server.body_timeouts()] == [1.0, 0.2, 0.15]


@pytest.mark.parametrize("way", ["invoke", "stream", "astream"])
@pytest.mark.parametrize("value", [-1, "soon", math.nan, [1]])
def test_a_bad_per_call_value_is_a_value_error_before_any_request(way: CallWay, value: Any) -> None:
    with pytest.raises(ValidationError):
        ChatLunar(model="m", api_key="k", stream_chunk_timeout=value)
    server = Server(primary=[])
    with pytest.raises(ValueError, match="Invalid per-call setting stream_chunk_timeout") as caught:
        call_sync(model_for(server).bind(stream_chunk_timeout=value), way)
    assert not isinstance(caught.value, ValidationError)
    assert server.models == []


def test_the_default_is_120_seconds_as_chat_openais() -> None:
    assert ChatLunar(model="m", api_key="k").stream_chunk_timeout == 120.0


def test_the_defaults_are_600_seconds_to_the_first_event_and_120_between_events() -> None:
    llm = ChatLunar(model="m", api_key="k")
    assert (llm.first_chunk_timeout, llm.stream_chunk_timeout) == (600.0, 120.0)


@pytest.mark.parametrize("way", ["invoke", "stream", "astream"])
@pytest.mark.parametrize("value", [-1, "soon", math.nan, [1]])
def test_a_bad_first_chunk_timeout_is_a_value_error_before_any_request(
    way: CallWay, value: Any
) -> None:
    with pytest.raises(ValidationError):
        ChatLunar(model="m", api_key="k", first_chunk_timeout=value)
    server = Server(primary=[])
    with pytest.raises(ValueError, match="Invalid per-call setting first_chunk_timeout") as caught:
        call_sync(model_for(server).bind(first_chunk_timeout=value), way)
    assert not isinstance(caught.value, ValidationError)
    assert server.models == []


class NetworkStream:
    """What the watchdog asks of httpcore's network stream: its socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None


class PoolStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body of one piece whose closing is where httpx gives the connection back to the pool:
    it records whether the watchdog could still cut the connection at that moment."""

    def __init__(self) -> None:
        self.guard: Any = None
        self.cuttable_at_close: list[bool] = []

    def __iter__(self) -> Iterator[bytes]:
        yield b"data: [DONE]\n\n"

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"data: [DONE]\n\n"

    def close(self) -> None:
        self.cuttable_at_close.append(self.guard.can_cut)

    async def aclose(self) -> None:
        self.close()


def response_over(sock: socket.socket) -> httpx.Response:
    """An HTTP/1.1 response over ``sock``, as httpx hands it to the transport."""
    return httpx.Response(
        200, stream=PoolStream(), extensions={"network_stream": NetworkStream(sock)}
    )


@pytest.fixture
def socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_the_watchdog_cuts_a_blocked_read_at_the_deadline(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = socket_pair
    guard = watch_sync(response_over(ours), TIMEOUT)
    ours.settimeout(5.0)
    assert ours.recv(1) == b""  # woken by the shutdown, not the socket timeout
    assert guard.fired
    assert theirs.recv(1) == b""  # the peer sees the disconnect
    guard.release()


def test_while_the_caller_holds_the_chunks_nothing_is_cut(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    ours = socket_pair[0]
    guard = watch_sync(response_over(ours), TIMEOUT)
    guard.deadline = NEVER
    time.sleep(2 * TIMEOUT)
    assert not guard.fired
    guard.deadline = time.monotonic()  # the caller came back, and the model is silent
    ours.settimeout(5.0)
    assert ours.recv(1) == b""
    assert guard.fired


def test_a_released_stream_is_never_cut(socket_pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = socket_pair
    guard = watch_sync(response_over(ours), 0.05)
    guard.release()  # the connection may now serve another request
    time.sleep(0.2)
    assert not guard.fired
    theirs.sendall(b"x")
    assert ours.recv(1) == b"x"


def test_a_body_that_ends_releases_the_watch_before_the_connection_goes_back(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    # httpx closes a response whose body has ended, which gives its connection back to the
    # pool, before the transport's loop sees the end: a late watchdog would cut the connection
    # of whichever request took it next.
    response = response_over(socket_pair[0])
    pool_stream = response.stream
    assert isinstance(pool_stream, PoolStream)
    guard = pool_stream.guard = watch_sync(response, 0.05)
    assert b"".join(response.iter_bytes()) == b"data: [DONE]\n\n"
    assert pool_stream.cuttable_at_close == [False]
    time.sleep(0.2)
    assert not guard.fired


async def test_an_async_body_that_ends_releases_the_watch_before_the_connection_goes_back(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    response = response_over(socket_pair[0])
    pool_stream = response.stream
    assert isinstance(pool_stream, PoolStream)
    guard = pool_stream.guard = watch_async(response, 0.05)
    assert b"".join([data async for data in response.aiter_bytes()]) == b"data: [DONE]\n\n"
    assert pool_stream.cuttable_at_close == [False]
    await asyncio.sleep(0.2)
    assert not guard.fired


def test_closing_a_response_early_releases_its_watch_first(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    response = response_over(socket_pair[0])
    pool_stream = response.stream
    assert isinstance(pool_stream, PoolStream)
    pool_stream.guard = watch_sync(response, 120.0)
    response.close()
    assert pool_stream.cuttable_at_close == [False]


def test_released_streams_do_not_pile_up_in_the_watchdog(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    response = response_over(socket_pair[0])
    for _ in range(1000):
        watch_sync(response, 120.0).release()
    assert _chunk_timeout._WATCHDOG is not None
    assert len(_chunk_timeout._WATCHDOG._due) < 200


async def test_the_event_loop_timer_cuts_a_blocked_read_at_the_deadline(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    ours = socket_pair[0]
    ours.setblocking(False)
    guard = watch_async(response_over(ours), TIMEOUT)
    received = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(ours, 1), 5.0)
    assert received == b""
    assert guard.fired
    guard.release()


def test_the_watchdog_cuts_at_the_first_deadline_however_long_the_gaps_may_be(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    ours = socket_pair[0]
    guard = watch_sync(response_over(ours), 60.0, time.monotonic() + TIMEOUT)
    ours.settimeout(5.0)
    assert ours.recv(1) == b""
    assert guard.fired


def test_a_data_event_can_bring_a_far_first_deadline_closer(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    # The first event may be waited for far longer than a gap: once it came, the watchdog
    # must not sleep on until the first deadline.
    ours = socket_pair[0]
    guard = watch_sync(response_over(ours), TIMEOUT, time.monotonic() + 60.0)
    guard.deadline = time.monotonic() + TIMEOUT  # the first event came; then nothing
    ours.settimeout(5.0)
    assert ours.recv(1) == b""
    assert guard.fired


async def test_a_data_event_can_bring_a_far_first_deadline_closer_async(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    ours = socket_pair[0]
    ours.setblocking(False)
    guard = watch_async(response_over(ours), TIMEOUT, time.monotonic() + 60.0)
    guard.deadline = time.monotonic() + TIMEOUT
    received = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(ours, 1), 5.0)
    assert received == b""
    assert guard.fired
    guard.release()


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_without_a_bound_between_events_the_watch_ends_with_the_first_event(
    socket_pair: tuple[socket.socket, socket.socket], is_async: bool
) -> None:
    ours, theirs = socket_pair
    watch = watch_async if is_async else watch_sync
    guard = watch(response_over(ours), NEVER, time.monotonic() + 0.05)
    guard.deadline = NEVER  # the first event came, and gaps have no bound
    await asyncio.sleep(0.2)
    assert not guard.fired
    assert not guard.can_cut  # nothing left to watch
    theirs.sendall(b"x")
    assert ours.recv(1) == b"x"
