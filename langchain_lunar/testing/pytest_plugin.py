"""pytest plugin providing the ``lunar_server`` and ``fresh_lunar_cooldowns`` fixtures; opt in
from your root ``conftest.py``::

    pytest_plugins = ["langchain_lunar.testing.pytest_plugin"]

Installing the package does not load it: only the sessions that ask for it get the fixtures.

Cooldowns outlive tests: a 429 or 503 that asks for a wait makes ChatLunar skip that model in
later calls, and its default ``cooldowns`` store is one for the whole process. Each
``lunar_server`` listens on a port of its own, so a new server starts with no cooldown, but a
test that should not inherit (or leave) one, because it reuses a ``base_url`` or scripts 429s
with ``Retry-After``, can use ``fresh_lunar_cooldowns`` (the process-wide store emptied before
and after it), or give its client a store of its own
(``ChatLunar(..., cooldowns=InProcessCooldowns())``) or none (``cooldowns=None``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_lunar._cooldowns import InProcessCooldowns, default_cooldowns
from langchain_lunar.testing._server import LocalLunarServer

__all__ = ["fresh_lunar_cooldowns", "lunar_server"]


@pytest.fixture
def lunar_server() -> Iterator[LocalLunarServer]:
    """A started ``LocalLunarServer()`` with default settings, stopped after the test.

    Configure it in the test with ``lunar_server.script(...)``; for other settings (``reply``,
    ``api_key``, ``style``...) build a ``LocalLunarServer`` directly.
    """
    with LocalLunarServer() as server:
        yield server


@pytest.fixture
def fresh_lunar_cooldowns() -> Iterator[InProcessCooldowns]:
    """The process-wide cooldown store (ChatLunar's default ``cooldowns``), emptied before the
    test and again after it.

    For suites that mock a 429 (or 503) with ``Retry-After`` on one ``base_url``: without it,
    the model that test cooled stays cooling in the tests after it, which wait for the cooldown
    to end (a wait within ``max_retry_wait``) or raise ``RateLimitError`` without sending a
    request (a longer one). Apply it to every test with
    ``pytestmark = pytest.mark.usefixtures("fresh_lunar_cooldowns")`` in a module, or an
    autouse fixture in your ``conftest.py`` that requests it.
    """
    store = default_cooldowns()
    store.clear()
    yield store
    store.clear()
