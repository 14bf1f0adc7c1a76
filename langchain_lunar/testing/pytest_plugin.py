"""pytest plugin providing the ``lunar_server`` fixture; opt in from your root ``conftest.py``::

    pytest_plugins = ["langchain_lunar.testing.pytest_plugin"]

Installing the package does not load it: only the sessions that ask for it get the fixture.

Cooldowns outlive tests: a 429 or 503 that asks for a wait makes ChatLunar skip that model in
later calls, and its default ``cooldowns`` store is one for the whole process. Each
``lunar_server`` listens on a port of its own, so a new server starts with no cooldown, but a
test that should not inherit (or leave) one, because it reuses a ``base_url`` or scripts 429s
with ``Retry-After``, can give its client a store of its own
(``ChatLunar(..., cooldowns=InProcessCooldowns())``) or none (``cooldowns=None``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_lunar.testing._server import LocalLunarServer

__all__ = ["lunar_server"]


@pytest.fixture
def lunar_server() -> Iterator[LocalLunarServer]:
    """A started ``LocalLunarServer()`` with default settings, stopped after the test.

    Configure it in the test with ``lunar_server.script(...)``; for other settings (``reply``,
    ``api_key``, ``style``...) build a ``LocalLunarServer`` directly.
    """
    with LocalLunarServer() as server:
        yield server
