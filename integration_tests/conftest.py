"""Fixtures: a real Lunar-compatible server on 127.0.0.1 and ChatLunar models pointed at it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from langchain_lunar import ChatLunar
from langchain_lunar.testing import LocalLunarServer
from tests.conftest import _fresh_cooldowns, redis_server  # noqa: F401  (the same fixtures)

STORY = (
    "The lunar rover woke at dawn, brushed the grey dust from its panels, and rolled toward "
    "the crater rim, where the Earth hung blue and quiet above the silent plain."
)
TOKENS = re.findall(r"\s*\S+|\s+$", STORY)

ServerFactory = Callable[..., LocalLunarServer]


@pytest.fixture
def make_server() -> Iterator[ServerFactory]:
    """Start servers with any settings; all are stopped after the test."""
    started: list[LocalLunarServer] = []

    def make(**settings: Any) -> LocalLunarServer:
        settings.setdefault("reply", STORY)
        server = LocalLunarServer(**settings).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: ServerFactory) -> LocalLunarServer:
    return make_server()


def model_for(server: LocalLunarServer, **fields: Any) -> ChatLunar:
    fields.setdefault("model", "gpt-4o-mini")
    fields.setdefault("api_key", "sk-local")
    fields.setdefault("max_retries", 0)  # tests of one exchange; retries have their own tests
    return ChatLunar(base_url=server.base_url, **fields)


@pytest.fixture
def llm(server: LocalLunarServer) -> ChatLunar:
    return model_for(server)
