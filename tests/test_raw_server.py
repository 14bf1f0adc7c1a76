"""The raw test server itself: exact bytes out, requests recorded, connections held open."""

from __future__ import annotations

import time

import httpx

from .raw_server import Answer, RawServers, http


def test_sends_exactly_the_bytes_given_and_records_the_request(raw_server: RawServers) -> None:
    server = raw_server.start(Answer([http(b"418 I am a teapot", [b"x-odd: 1"], b"short")]))
    response = httpx.post(server.url + "/chat", content=b'{"a":1}', headers={"x-api-key": "k"})
    assert (response.status_code, response.reason_phrase) == (418, "I am a teapot")
    assert response.headers["x-odd"] == "1"
    assert response.content == b"short"
    (request,) = server.requests
    assert request.head[0] == b"POST /v1/chat HTTP/1.1"
    assert request.header("x-api-key") == "k"
    assert request.body == b'{"a":1}'


def test_answers_in_order_then_the_last_again(raw_server: RawServers) -> None:
    server = raw_server.start(
        Answer([http(b"200 OK", body=b"1")]), Answer([http(b"200 OK", body=b"2")])
    )
    with httpx.Client() as client:
        assert [client.get(server.url).text for _ in range(3)] == ["1", "2", "2"]
    assert server.connections == 1  # kept alive between requests


def test_pauses_and_holds_the_connection_open_until_the_client_leaves(
    raw_server: RawServers,
) -> None:
    head = http(b"200 OK", [b"content-type: text/event-stream"], length=False)
    server = raw_server.start(Answer([head, b"data: 1\n\n", 0.2, b"data: 2\n\n"], hold=5.0))
    started = time.monotonic()
    with httpx.stream("GET", server.url, timeout=5) as response:
        received = b""
        for data in response.iter_bytes():
            received += data
            if b"data: 2" in received:
                break
    assert time.monotonic() - started >= 0.2
    deadline = time.monotonic() + 2
    while not server.disconnects and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.disconnects  # the server saw the client go, long before its hold ended
