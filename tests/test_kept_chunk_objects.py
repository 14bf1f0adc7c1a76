"""What one kept chunk costs the garbage collector, counted exactly.

langchain-core's ``stream()`` keeps every chunk until the stream ends, and each collection of the
oldest generation scans them all again, so every collector-tracked object a streamed text chunk
holds is paid for several times over (benchmarks/README.md). These counts are exact: a change
that adds a tracked object to every chunk fails here, whatever the machine's speed.
"""

from __future__ import annotations

import gc
import json
from collections import Counter
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from tests.helpers import Recorder, mock_model, text_stream

# What validation builds for ``ChatGenerationChunk(message=AIMessageChunk(content=..., id=...))``
# and what a streamed text chunk therefore holds: the two models, their two ``__dict__``s and two
# ``__pydantic_fields_set__`` sets, the message's three empty lists (``tool_calls``,
# ``invalid_tool_calls``, ``tool_call_chunks``: a user may append to them, so each chunk has its
# own) and the generation's text (langchain-core's ``TextAccessor``, a ``str`` subclass, which the
# collector tracks). The empty dicts (``additional_kwargs``, ``response_metadata``, the extra
# fields) are not tracked.
TEXT_CHUNK = Counter(
    {
        "ChatGenerationChunk": 1,
        "AIMessageChunk": 1,
        "dict": 2,
        "set": 2,
        "list": 3,
        "TextAccessor": 1,
    }
)


def tracked_alone(obj: Any, shared: set[int]) -> Counter[str]:
    """The collector-tracked objects reachable from ``obj`` and not in ``shared``, by type.

    Classes, modules and functions are where a search would leave the object for its type's
    world; they are shared by every chunk, so the walk stops at them.
    """
    found: Counter[str] = Counter()
    seen = set(shared)
    stack = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen or not gc.is_tracked(item) or isinstance(item, type):
            continue
        seen.add(id(item))
        found[type(item).__name__] += 1
        stack.extend(gc.get_referents(item))
    return found


def reachable(obj: Any) -> set[int]:
    seen: set[int] = set()
    stack = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, type):
            continue
        seen.add(id(item))
        stack.extend(gc.get_referents(item))
    return seen


class Keeper(BaseCallbackHandler):
    """Holds the ``ChatGenerationChunk`` objects that ``stream()`` keeps, as it passes them."""

    def __init__(self) -> None:
        self.chunks: list[ChatGenerationChunk] = []

    def on_llm_new_token(self, token: str, *, chunk: Any = None, **kwargs: Any) -> None:
        self.chunks.append(chunk)


@pytest.mark.parametrize(
    "delta_extra",
    [{}, {"role": "assistant"}, {"role": "assistant", "tool_calls": None, "refusal": None}],
    ids=["plain", "repeated-role", "null-fields"],
)
def test_a_kept_text_chunk_holds_exactly_the_objects_validation_would(
    delta_extra: dict[str, Any],
) -> None:
    body = text_stream("Hello", " world")
    if delta_extra:
        # Every text delta repeats the role or carries nulls, as some servers send them.
        body = body.replace(b'"delta": {"content"', _delta_prefix(delta_extra))
        assert body.count(b'"role"') == 3  # the opening delta's and both text deltas'
    keeper = Keeper()
    llm = mock_model(Recorder(body))
    texts = [c.content for c in llm.stream("hi", config={"callbacks": [keeper]})]
    assert texts[:2] == ["Hello", " world"]
    first, second = keeper.chunks[0], keeper.chunks[1]
    assert isinstance(first.message, AIMessageChunk)

    assert tracked_alone(first, reachable(second)) == TEXT_CHUNK
    # The same as a chunk that langchain-core validated itself, after stream()'s own changes.
    validated = ChatGenerationChunk(message=AIMessageChunk(content="Hello", id=first.message.id))
    validated.message.response_metadata = dict(first.message.response_metadata)
    assert tracked_alone(validated, reachable(second)) == TEXT_CHUNK


def _delta_prefix(extra: dict[str, Any]) -> bytes:
    return b'"delta": ' + json.dumps(extra).encode()[:-1] + b', "content"'


def test_the_counted_objects_are_the_chunks_own() -> None:
    # The counter is exact, not a bound: two chunks built alike count alike and share nothing.
    def chunk(text: str) -> ChatGenerationChunk:
        return ChatGenerationChunk(message=AIMessageChunk(content=text, id="x"))

    one, two = chunk("a"), chunk("b")
    assert tracked_alone(one, reachable(two)) == TEXT_CHUNK
    assert tracked_alone(two, reachable(one)) == TEXT_CHUNK
