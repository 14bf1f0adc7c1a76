"""stream_chunk_timeout over real TCP: keep-alive comments do not hold a stalled stream open.

The server here is written in the test (a raw socket thread), so that it does exactly this: the
response headers, a role chunk and one token, then whatever the test scripts, while it watches
for the client's disconnect.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from langchain_lunar import (
    ChatLunar,
    FirstChunkTimeoutError,
    StreamChunkTimeoutError,
    StreamInterruptedError,
)
from tests.calls import CallWay, call, streaming_ways

TIMEOUT = 0.4
GIVE_UP = 5.0  # the server stops on its own after this, so a broken client cannot hang the test


def event(payload: Any) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def delta(**fields: Any) -> bytes:
    choice = {"index": 0, "delta": fields, "finish_reason": None}
    return event({"id": "c1", "object": "chat.completion.chunk", "choices": [choice]})


HEADERS = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
FRAMINGS = {
    "until-close": b"connection: close\r\n\r\n",  # the body runs until the server closes
    "chunked": b"transfer-encoding: chunked\r\n\r\n",
}
OPENING = delta(role="assistant", content="") + delta(content="Hello")
FINISH = (
    event({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    + b"data: [DONE]\n\n"
)


Steps = list[tuple[float, "bytes | None"]]
"""What the server sends after the opening chunks: (delay, bytes), None to close."""


class StallingServer:
    """One connection on 127.0.0.1: the headers and opening chunks, then ``script``, or with no
    script ``: ping`` every 0.1 s until the client leaves; after the script, silence."""

    def __init__(
        self, script: Steps | None, *, headers: bool = True, framing: str = "until-close"
    ) -> None:
        self.script = script
        self.headers = headers
        self.chunked = framing == "chunked"
        self.head = HEADERS + FRAMINGS[framing]
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"
        self.disconnected_at: float | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            _read_request(connection)
            try:
                if self.headers:
                    connection.sendall(self.head + self._framed(OPENING))
                self._follow_script(connection)
            except OSError:  # a send after the client has gone
                self.disconnected_at = time.monotonic()
        self.done.set()

    def _follow_script(self, connection: socket.socket) -> None:
        steps = None if self.script is None else list(self.script)
        start = time.monotonic()
        while time.monotonic() - start < GIVE_UP:
            if steps is None:
                delay, data = 0.1, b": ping\n\n"
            elif steps:
                delay, data = steps.pop(0)
            else:
                delay, data = 0.1, b""
            # Wait while watching for the client's disconnect (readable, then no bytes).
            readable, _, _ = select.select([connection], [], [], delay)
            if readable and not connection.recv(65536):
                self.disconnected_at = time.monotonic()
                return
            if data is None:
                return
            if data:
                connection.sendall(self._framed(data))

    def _framed(self, data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data

    def close(self) -> None:
        self.listener.close()


def _read_request(connection: socket.socket) -> None:
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[StallingServer] = []

    def start(script: Steps | None = None, **kwargs: Any) -> StallingServer:
        servers.append(StallingServer(script, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def model(server: StallingServer, **fields: Any) -> ChatLunar:
    fields.setdefault("stream_chunk_timeout", TIMEOUT)
    return ChatLunar(
        model="silent-model",
        base_url=server.url,
        api_key="k",
        max_retries=0,
        http_client=httpx.Client(),
        http_async_client=httpx.AsyncClient(),
        **fields,
    )


@streaming_ways
@pytest.mark.parametrize("framing", FRAMINGS)
async def test_pings_do_not_keep_a_stalled_stream_open(
    serve: Any, way: CallWay, framing: str
) -> None:
    server = serve(framing=framing)  # pings every 0.1 s, forever
    delivered: list[Any] = []
    with pytest.raises(StreamInterruptedError) as caught:
        await call(model(server), way, into=delivered)
    failed_at = time.monotonic()
    assert [chunk.text for chunk in delivered] == ["Hello"]
    assert caught.value.text == "Hello"
    assert isinstance(caught.value.__cause__, StreamChunkTimeoutError)
    assert "stream_chunk_timeout" in str(caught.value)
    assert "silent-model" in str(caught.value)
    assert server.done.wait(1.0)
    assert server.disconnected_at is not None
    assert server.disconnected_at - failed_at < 1.0


@streaming_ways
async def test_a_read_blocked_past_the_deadline_is_cut_there(serve: Any, way: CallWay) -> None:
    # A ping inside the deadline, then silence until a token after it, which comes before the
    # read timeout would end the read that the ping began. Checking only after each read would
    # take that token; the watchdog cuts the read first, though it first looked at the far
    # deadline of the first event (first_chunk_timeout, 600 s by default).
    timeout = 0.6
    server = serve([(0.45, b": ping\n\n"), (0.4, delta(content=" late"))])
    delivered: list[Any] = []
    with pytest.raises(StreamInterruptedError) as caught:
        await call(model(server, stream_chunk_timeout=timeout), way, into=delivered)
    assert [chunk.text for chunk in delivered] == ["Hello"]
    assert caught.value.text == "Hello"
    assert isinstance(caught.value.__cause__, StreamChunkTimeoutError)
    assert server.done.wait(1.0)
    assert server.disconnected_at is not None


@streaming_ways
async def test_a_server_that_sends_no_headers_is_a_first_chunk_timeout_error(
    serve: Any, way: CallWay
) -> None:
    # The headers are part of the wait for the first event: first_chunk_timeout bounds them
    # (stream_chunk_timeout did, before there were two bounds).
    server = serve([], headers=False)
    with pytest.raises(FirstChunkTimeoutError) as caught:
        await call(model(server, first_chunk_timeout=TIMEOUT, stream_chunk_timeout=0.1), way)
    assert caught.value.timeout == TIMEOUT
    assert server.done.wait(1.0)
    assert server.disconnected_at is not None


@streaming_ways
async def test_a_stream_that_goes_on_is_not_cut(serve: Any, way: CallWay) -> None:
    # Longer than the timeout in all, but a data event comes within it each time.
    gap = TIMEOUT / 2
    script = [(gap, b": ping\n\n" + delta(content=f" t{i}")) for i in range(5)]
    server = serve([*script, (0.0, FINISH), (0.0, None)])
    chunks = await call(model(server), way)
    assert "".join(chunk.text for chunk in chunks) == "Hello t0 t1 t2 t3 t4"
