"""Leaving a stream early closes the HTTP response at once."""

from __future__ import annotations

import asyncio
import gc

import httpx

from .helpers import PiecewiseStream, chunk, mock_model, sse

PIECES = [sse(chunk(f"t{i} "), done=False) for i in range(50)] + [sse(chunk(finish="stop"))]


def streaming_model(body: PiecewiseStream):  # type: ignore[no-untyped-def]
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)

    return mock_model(handler)


def test_break_closes_the_response() -> None:
    body = PiecewiseStream(PIECES)
    for n, _ in enumerate(streaming_model(body).stream("hi")):
        if n == 2:
            break
    assert body.closed
    assert body.sent == 3  # nothing more was read after the break


def test_closing_the_generator_closes_the_response() -> None:
    body = PiecewiseStream(PIECES)
    stream = streaming_model(body).stream("hi")
    next(stream)
    stream.close()
    assert body.closed


def test_thousands_of_aborted_streams_leave_nothing_open() -> None:
    bodies = []
    model = None
    for _ in range(2000):
        body = PiecewiseStream(PIECES)
        bodies.append(body)
        model = model or streaming_model(body)
        model.http_client._transport.handler = (  # type: ignore[union-attr]
            lambda request, body=body: httpx.Response(
                200, headers={"content-type": "text/event-stream"}, stream=body
            )
        )
        stream = model.stream("hi")
        next(stream)
        stream.close()
    assert all(body.closed for body in bodies)


async def test_cancelling_an_astream_task_while_it_waits_closes_the_response_at_once() -> None:
    body = PiecewiseStream(PIECES, async_delay=10)
    first_token = asyncio.Event()

    async def consume() -> None:
        async for _ in streaming_model(body).astream("hi"):
            first_token.set()  # then waits inside ChatLunar for a token that takes 10 s

    task = asyncio.create_task(consume())
    await first_token.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert body.closed


async def test_cancelling_a_task_busy_in_user_code_closes_the_response_soon() -> None:
    # Here the generator is suspended at a yield; asyncio closes abandoned async generators
    # through its finalizer hook, a few loop turns later.
    body = PiecewiseStream(PIECES)
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in streaming_model(body).astream("hi"):
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    for _ in range(20):
        if body.closed:
            break
        await asyncio.sleep(0)
    assert body.closed


async def test_closing_an_astream_closes_the_response() -> None:
    body = PiecewiseStream(PIECES)
    stream = streaming_model(body).astream("hi")
    await stream.__anext__()
    await stream.aclose()  # type: ignore[attr-defined]
    gc.collect()
    await asyncio.sleep(0)
    assert body.closed
