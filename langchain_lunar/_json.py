"""Parsing the JSON that Lunar sends: orjson's speed, ``json.loads``'s answers and errors.

A streamed answer is one JSON document per token, so parsing is among the largest costs of
each token, and orjson parses such a document faster than ``json.loads`` does. orjson is
already installed with langchain-core on CPython (langsmith requires it).

orjson refuses some documents that ``json.loads`` accepts (``NaN``, ``1e400``, lone surrogates)
or rejects differently (invalid UTF-8, nesting deeper than 1024); those go to ``json.loads``,
so the result or the ``ValueError`` is the one it gives. One known difference remains: orjson
reads an integer beyond 64 bits as a float, where ``json.loads`` keeps it exact; no field of
the protocol comes near that size.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

_orjson_loads: Callable[[str | bytes], Any] | None
try:
    from orjson import JSONDecodeError as _OrjsonError
    from orjson import loads as _orjson_loads
except ImportError:  # PyPy, where langsmith does not install orjson
    _orjson_loads = None


def loads(document: str | bytes) -> Any:
    """``json.loads(document)``, faster; too deep a nesting is a ``ValueError`` too."""
    if _orjson_loads is not None:
        try:
            return _orjson_loads(document)
        except _OrjsonError:
            pass
    try:
        return json.loads(document)
    except RecursionError:
        raise ValueError("JSON nested too deeply to parse") from None
