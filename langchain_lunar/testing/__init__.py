"""A local Lunar-compatible server for offline tests and demos.

``LocalLunarServer`` is a real HTTP server on 127.0.0.1 that speaks the Lunar chat-completions
protocol (OpenAI-compatible, with Lunar's cost fields in ``usage``). It is written from the
wire protocol alone and imports nothing from the client, so a client bug cannot hide on both
sides. ``Reply``, ``ToolCall`` and ``Audio`` script answers (text, tool calls, reasoning,
refusals, annotations, cache figures, generated images and audio), ``WireStyle`` varies how
the SSE stream is written, ``Fault`` scripts failures (keep-alive stalls among them),
``RateLimit`` and ``LocalLunarServer.cool`` answer with 429s as a rate-limited gateway or
provider would, and the ``lunar_server`` pytest fixture (opt-in plugin:
``pytest_plugins = ["langchain_lunar.testing.pytest_plugin"]`` in a root ``conftest.py``)
gives a started server per test.

Example::

    from langchain_lunar.testing import Fault, LocalLunarServer, Reply, ToolCall

    with LocalLunarServer(reply="Hello there!") as server:
        server.script(
            Fault.status(429, headers={"Retry-After": "1"}),
            Reply(tool_calls=[ToolCall("add", {"a": 1, "b": 2})]),
        )
        ...  # point a client at server.base_url
"""

from langchain_lunar.testing._faults import Fault
from langchain_lunar.testing._limits import RateLimit, RetryAfterForm
from langchain_lunar.testing._protocol import DEFAULT_PRICE
from langchain_lunar.testing._redis import RedisServer
from langchain_lunar.testing._reply import Audio, Reply, ToolCall
from langchain_lunar.testing._server import LocalLunarServer, RecordedRequest
from langchain_lunar.testing._sse import WireStyle

__all__ = [
    "DEFAULT_PRICE",
    "Audio",
    "Fault",
    "LocalLunarServer",
    "RateLimit",
    "RecordedRequest",
    "RedisServer",
    "Reply",
    "RetryAfterForm",
    "ToolCall",
    "WireStyle",
]
