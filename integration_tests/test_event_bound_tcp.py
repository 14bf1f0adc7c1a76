"""Rehearsing ``max_event_bytes`` against the local server: a very large valid event is read
whole, an endless line ends the call at the bound (``Fault.endless_line``), every way."""

from __future__ import annotations

from typing import Any

import pytest

from langchain_lunar import MalformedResponseError, StreamInterruptedError
from langchain_lunar.testing import Fault, LocalLunarServer
from tests.calls import ALL_WAYS, STREAMING, CallWay, call_sync

from .conftest import TOKENS, model_for

MIB = 1 << 20


@pytest.mark.parametrize("way", ALL_WAYS)
def test_a_very_large_event_is_read_whole(server: LocalLunarServer, way: CallWay) -> None:
    image = "iVBORw0KGgo" + "A" * (16 * MIB)  # one word: one delta, as a base64 image comes
    server.script(image)
    result = call_sync(model_for(server), way)
    text = "".join(c.content for c in result) if way in STREAMING else result.content
    assert text == image


@pytest.mark.parametrize("way", ALL_WAYS)
def test_an_endless_line_ends_the_call_at_the_bound(server: LocalLunarServer, way: CallWay) -> None:
    server.script(Fault.endless_line())
    with pytest.raises(MalformedResponseError, match="max_event_bytes=4194304"):
        call_sync(model_for(server), way, max_event_bytes=4 * MIB)
    assert server.wait_for_disconnects(1, timeout=1.0)


@pytest.mark.parametrize("way", STREAMING)
def test_an_endless_line_after_text_keeps_that_text(server: LocalLunarServer, way: CallWay) -> None:
    server.script(Fault.endless_line(after=3))
    delivered: list[Any] = []
    with pytest.raises(StreamInterruptedError) as caught:
        call_sync(model_for(server, max_event_bytes=MIB), way, into=delivered)
    assert caught.value.text == "".join(TOKENS[:3]) == "".join(c.content for c in delivered)
    assert server.wait_for_disconnects(1, timeout=1.0)
