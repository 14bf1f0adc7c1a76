"""pytest plugin (entry point ``pytest11: langchain_lunar``) providing the ``lunar_server`` fixture.

pytest imports this module in every session where the package is installed, so it imports
nothing heavy at module level: the server is imported inside the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from langchain_lunar.testing._server import LocalLunarServer


@pytest.fixture
def lunar_server() -> Iterator[LocalLunarServer]:
    """A started ``LocalLunarServer()`` with default settings, stopped after the test.

    Configure it in the test with ``lunar_server.script(...)``; for other settings (``reply``,
    ``api_key``, ``style``...) build a ``LocalLunarServer`` directly.
    """
    from langchain_lunar.testing._server import LocalLunarServer

    with LocalLunarServer() as server:
        yield server
