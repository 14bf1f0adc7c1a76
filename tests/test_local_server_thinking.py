"""``Fault.think``: the local server plays a model that thinks in silence before its first token.

Read with plain httpx over TCP, with read timeouts short of the thinking: what times out shows
what the server sent meanwhile (nothing, the headers, or comments).
"""

from __future__ import annotations

import time

import httpx
import pytest

from langchain_lunar.testing import Fault, LocalLunarServer

from .test_local_server import PATH, body, chunks_of, content_of, sse_data

THINK = 0.6
SHORT_READ = httpx.Timeout(5.0, read=0.3)  # shorter than the thinking


def test_by_default_not_even_the_headers_come_while_it_thinks() -> None:
    with LocalLunarServer(reply="one two") as server:
        server.script(Fault.think(THINK))
        with pytest.raises(httpx.ReadTimeout), httpx.Client(timeout=SHORT_READ) as client:
            client.post(server.base_url + PATH, json=body(stream=True))


def test_with_headers_they_come_at_once_and_then_nothing_until_the_answer() -> None:
    with LocalLunarServer(reply="one two") as server:
        server.script(Fault.think(THINK, headers=True))
        with httpx.Client(timeout=SHORT_READ) as client:
            request = client.build_request("POST", server.base_url + PATH, json=body(stream=True))
            response = client.send(request, stream=True)
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream"
            with pytest.raises(httpx.ReadTimeout):
                next(response.iter_raw())  # not a byte of the body while it thinks
            response.close()
        assert server.wait_for_disconnects(1, timeout=2.0)  # leaving ends the thinking


def test_with_pings_only_comments_come_until_the_answer() -> None:
    with LocalLunarServer(reply="one two") as server:
        server.script(Fault.think(0.35, ping_every=0.1, comment="keep-alive"))
        start = time.monotonic()
        raw = httpx.post(server.base_url + PATH, json=body(stream=True), timeout=5).content
        assert time.monotonic() - start >= 0.35
    pings, rest = raw[: raw.index(b"data:")], raw[raw.index(b"data:") :]
    assert pings.count(b": keep-alive\n\n") >= 3
    assert pings == b": keep-alive\n\n" * pings.count(b": keep-alive\n\n")
    assert content_of(chunks_of(rest)) == "one two"


@pytest.mark.parametrize("headers", [False, True], ids=["no headers", "headers"])
def test_after_the_thinking_the_answer_is_whole(headers: bool) -> None:
    with LocalLunarServer(reply="one two") as server:
        server.script(Fault.think(0.3, headers=headers))
        start = time.monotonic()
        raw = httpx.post(server.base_url + PATH, json=body(stream=True), timeout=5).content
        assert time.monotonic() - start >= 0.3
    assert content_of(chunks_of(raw)) == "one two"
    assert sse_data(raw)[-1] == "[DONE]"


def test_without_streaming_the_whole_answer_comes_after_the_thinking() -> None:
    with LocalLunarServer(reply="one two") as server:
        server.script(Fault.think(0.3, headers=True))
        start = time.monotonic()
        answer = httpx.post(server.base_url + PATH, json=body(), timeout=5).json()
        assert time.monotonic() - start >= 0.3
    assert answer["choices"][0]["message"]["content"] == "one two"


@pytest.mark.parametrize("seconds", [-1.0, float("nan")])
def test_a_bad_thinking_time_is_a_value_error(seconds: float) -> None:
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        Fault.think(seconds)
    with pytest.raises(ValueError, match="every must be > 0"):
        Fault.think(1.0, ping_every=0)
