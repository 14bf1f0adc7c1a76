"""The ways a test calls a model: one vocabulary for the unit and the integration tests.

A *way* is the Runnable method called: ``invoke``, ``ainvoke``, ``stream`` or ``astream``. Tests
parametrize over ways with the marks below, so their ids read ``[invoke]`` ... ``[astream]``, and
call through ``call`` (in an async test) or ``call_sync`` (in a plain one). A model with
``streaming=True`` still answers ``invoke``: that is the ``invoke`` way of such a model.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import pytest

from .helpers import merged

CallWay = Literal["invoke", "ainvoke", "stream", "astream"]

INVOKING: tuple[CallWay, ...] = ("invoke", "ainvoke")
STREAMING: tuple[CallWay, ...] = ("stream", "astream")
ALL_WAYS: tuple[CallWay, ...] = (*INVOKING, *STREAMING)
ASYNC_WAYS: tuple[CallWay, ...] = ("ainvoke", "astream")

all_ways = pytest.mark.parametrize("way", ALL_WAYS)
invoking_ways = pytest.mark.parametrize("way", INVOKING)
streaming_ways = pytest.mark.parametrize("way", STREAMING)


async def call(
    runnable: Any, way: CallWay, prompt: Any = "hi", *, into: list[Any] | None = None, **kwargs: Any
) -> Any:
    """Call ``runnable`` the ``way`` given. An invoke way returns its result; a streaming way
    returns the list of chunks, each appended to ``into`` as it arrives, so that a test sees
    what was delivered before an error."""
    if way == "ainvoke":
        return await runnable.ainvoke(prompt, **kwargs)
    if way == "astream":
        into = [] if into is None else into
        async for chunk in runnable.astream(prompt, **kwargs):
            into.append(chunk)
        return into
    return call_sync(runnable, way, prompt, into=into, **kwargs)


def call_sync(
    runnable: Any, way: CallWay, prompt: Any = "hi", *, into: list[Any] | None = None, **kwargs: Any
) -> Any:
    """``call`` from a plain (not async) test: an async way runs in an event loop of its own."""
    if way == "invoke":
        return runnable.invoke(prompt, **kwargs)
    if way == "stream":
        into = [] if into is None else into
        for chunk in runnable.stream(prompt, **kwargs):
            into.append(chunk)
        return into
    return asyncio.run(call(runnable, way, prompt, into=into, **kwargs))


async def answer(
    runnable: Any, way: CallWay, prompt: Any = "hi", *, into: list[Any] | None = None, **kwargs: Any
) -> Any:
    """The whole answer, called the ``way`` given: the message, or the chunks added up."""
    result = await call(runnable, way, prompt, into=into, **kwargs)
    return merged(result) if way in STREAMING else result
