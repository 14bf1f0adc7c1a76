"""Completion objects and the order of events in a streamed answer, independent of sockets.

``completion`` builds a non-streaming ``chat.completion``; ``run_stream`` drives a streamed
answer (normal or faulty) through an ``EventSink``, which the HTTP handler implements.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from langchain_lunar.testing._protocol import SYSTEM_FINGERPRINT, usage
from langchain_lunar.testing._reply import Answer
from langchain_lunar.testing._script import Fault
from langchain_lunar.testing._sse import WireStyle


class Meter:
    """Usage figures for one request: token counts, prices, and times since its arrival."""

    def __init__(self, arrival: float, prompt_tokens: int, price: tuple[float, float]) -> None:
        self.arrival = arrival
        self.prompt_tokens = prompt_tokens
        self.price = price
        self.first_token: float | None = None

    def mark_first_token(self) -> None:
        """Record now as the time to first token, unless already recorded."""
        if self.first_token is None:
            self.first_token = time.monotonic()

    def usage(self, completion_tokens: int) -> dict[str, Any]:
        """Usage with ``completion_tokens`` so far; latency is measured now, and ttft is the
        same as latency until a first token was recorded."""
        now = time.monotonic()
        first = self.first_token if self.first_token is not None else now
        return usage(
            self.prompt_tokens,
            completion_tokens,
            self.price,
            latency_ms=(now - self.arrival) * 1000,
            ttft_ms=(first - self.arrival) * 1000,
        )


def completion(
    completion_id: str, created: int, model: str, answer: Answer, meter: Meter
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object with ``usage`` for ``answer``."""
    meter.mark_first_token()
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": answer.finish_reason,
            }
        ],
        "usage": meter.usage(len(answer.tokens)),
    }


class ChunkFactory:
    """Builds the ``chat.completion.chunk`` objects of one stream, honouring ``model_in``."""

    def __init__(self, completion_id: str, created: int, model: str, style: WireStyle) -> None:
        self._id = completion_id
        self._created = created
        self._model = model
        self._style = style
        self._count = 0

    def make(
        self,
        delta: dict[str, Any] | None,
        finish_reason: str | None = None,
        usage: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A chunk with one choice carrying ``delta``, or with ``choices: []`` if delta is None."""
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
        }
        model_in = self._style.model_in
        if model_in == "every" or (model_in == "first" and self._count == 0):
            chunk["model"] = self._model
        chunk["system_fingerprint"] = SYSTEM_FINGERPRINT
        if delta is None:
            chunk["choices"] = []
        else:
            chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
        if usage is not None:
            chunk["usage"] = usage
        self._count += 1
        return chunk


class EventSink(Protocol):
    """Where ``run_stream`` writes; the HTTP handler implements it over chunked encoding."""

    def event(self, payload: dict[str, Any] | str) -> None:
        """Write one SSE event carrying a JSON object or a raw string like ``[DONE]``."""

    def raw(self, text: str) -> None:
        """Write ``text`` as is (for malformed lines)."""

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; False if the server is stopping and the stream must end."""


def run_stream(
    sink: EventSink,
    chunks: ChunkFactory,
    meter: Meter,
    answer: Answer,
    *,
    style: WireStyle,
    fault: Fault | None,
    token_delay: float,
    include_usage: bool,
) -> bool:
    """Write the events of a streamed ``answer``, shaped by ``style`` and the scripted ``fault``.

    Returns True when the body should be ended cleanly (terminating chunk), False when the
    connection must be dropped without it (``Fault.disconnect``, or the server stopping).
    """
    every = style.usage == "every_chunk"
    if style.role_chunk:
        sink.event(chunks.make({"role": "assistant", "content": ""}, usage=_maybe(every, meter, 0)))

    tokens = answer.tokens
    # Faults that act part-way through cut the token list at `after`.
    partial = fault is not None and fault.kind in ("stream_error", "disconnect", "malformed")
    partial = partial or (fault is not None and fault.kind == "no_done" and fault.after is not None)
    split = min(fault.after or 0, len(tokens)) if fault is not None and partial else len(tokens)

    sent = 0

    def send_tokens(upto: int) -> bool:
        nonlocal sent
        while sent < upto:
            if not sink.wait(token_delay):
                return False
            meter.mark_first_token()
            sent += 1
            delta = {"content": tokens[sent - 1]}
            sink.event(chunks.make(delta, usage=_maybe(every, meter, sent)))
        return True

    if not send_tokens(split):
        return False
    if fault is not None and partial:
        if fault.kind == "stream_error":
            sink.event({"error": fault.error})
            return True
        if fault.kind == "disconnect":
            return False
        if fault.kind == "no_done":
            return True
        # malformed: the raw line, then carry on as if nothing happened.
        sink.raw(fault.line + style.line_ending + style.line_ending)
        if not send_tokens(len(tokens)):
            return False

    if style.finish_reason:
        final = style.usage in ("every_chunk", "with_finish")
        sink.event(chunks.make({}, answer.finish_reason, usage=_maybe(final, meter, len(tokens))))
    if style.usage == "requested" and include_usage:
        sink.event(chunks.make(None, usage=meter.usage(len(tokens))))
    if style.done and not (fault is not None and fault.kind == "no_done"):
        sink.event("[DONE]")
    return True


def _maybe(wanted: bool, meter: Meter, completion_tokens: int) -> dict[str, Any] | None:
    return meter.usage(completion_tokens) if wanted else None
