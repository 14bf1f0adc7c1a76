"""Shared fixtures of the unit tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from langchain_lunar.testing import RedisServer

from .raw_server import RawServers


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real ``redis-server`` on a free port, stopped by its PID after the test.

    Skipped where Debian's ``redis-server`` is not installed, except in CI, where ``.ci/run``
    installs it and a missing server must fail.
    """
    if shutil.which("redis-server") is None and not os.environ.get("CI"):
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with RedisServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_cooldowns() -> Iterator[None]:
    """Each test starts with no model cooling down: the process-wide store outlives tests."""
    from langchain_lunar._cooldowns import default_cooldowns

    default_cooldowns().clear()
    yield
    default_cooldowns().clear()


@pytest.fixture
def raw_server() -> Iterator[RawServers]:
    """Raw socket servers on 127.0.0.1 that send exactly the bytes a test gives
    (``tests/raw_server.py``): ``raw_server.start(Answer([...]))``."""
    servers = RawServers()
    yield servers
    servers.close()
