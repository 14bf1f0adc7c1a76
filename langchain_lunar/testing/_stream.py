"""Completion objects and the order of events in a streamed answer, independent of sockets.

``completion`` builds a non-streaming ``chat.completion``; ``answer_deltas`` lists the deltas a
streamed answer is made of (text tokens, then tool-call fragments); ``run_stream`` drives a
streamed answer (normal or faulty) through an ``EventSink``, which the HTTP handler implements.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

from langchain_lunar.testing._protocol import SYSTEM_FINGERPRINT, usage
from langchain_lunar.testing._reply import Answer, SentToolCall
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


def tool_call_deltas(
    calls: Sequence[SentToolCall], fragment: int, interleave: bool
) -> list[dict[str, Any]]:
    """The ``delta.tool_calls`` deltas of ``calls``, one per chunk, in sending order.

    Each call opens with ``{"index", "id", "type", "function": {"name", "arguments": ""}}``,
    then its arguments text follows in pieces of ``fragment`` characters, each as
    ``{"index", "function": {"arguments"}}``. With ``interleave`` the calls go round-robin:
    all openings, then one fragment of each unfinished call in turn; without, call by call.
    """
    per_call: list[list[dict[str, Any]]] = []
    for index, call in enumerate(calls):
        opening = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        pieces = [
            {"index": index, "function": {"arguments": call.arguments[i : i + fragment]}}
            for i in range(0, len(call.arguments), fragment)
        ]
        per_call.append([opening, *pieces])
    if not interleave:
        ordered = [delta for deltas in per_call for delta in deltas]
    else:
        # Round r sends the r-th delta of every call that has one: openings in round 0.
        rounds = max((len(deltas) for deltas in per_call), default=0)
        ordered = [deltas[r] for r in range(rounds) for deltas in per_call if r < len(deltas)]
    return [{"tool_calls": [delta]} for delta in ordered]


def answer_deltas(answer: Answer, style: WireStyle) -> list[dict[str, Any]]:
    """Every delta of a streamed ``answer`` after the role chunk: one per text token, then the
    tool-call deltas. Each costs one completion token, streamed or not."""
    deltas: list[dict[str, Any]] = [{"content": token} for token in answer.tokens]
    return deltas + tool_call_deltas(
        answer.tool_calls, style.tool_fragment, style.interleave_tool_calls
    )


def completion(
    completion_id: str,
    created: int,
    model: str,
    answer: Answer,
    meter: Meter,
    completion_tokens: int,
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object for ``answer``, its ``usage`` counting
    ``completion_tokens``.

    ``content`` is null when the answer is only tool calls, as OpenAI-compatible servers send.
    """
    meter.mark_first_token()
    message: dict[str, Any] = {"role": "assistant", "content": answer.text}
    if answer.tool_calls:
        message["content"] = answer.text or None
        message["tool_calls"] = [call.message_form() for call in answer.tool_calls]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{"index": 0, "message": message, "finish_reason": answer.finish_reason}],
        "usage": meter.usage(completion_tokens),
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

    A fault's ``after`` counts the deltas of ``answer_deltas``: text tokens, then tool-call
    chunks, so it can cut a stream in the middle of a call's arguments.

    Returns True when the body should be ended cleanly (terminating chunk), False when the
    connection must be dropped without it (``Fault.disconnect``, or the server stopping).
    """
    every = style.usage == "every_chunk"
    if style.role_chunk:
        sink.event(chunks.make({"role": "assistant", "content": ""}, usage=_maybe(every, meter, 0)))

    deltas = answer_deltas(answer, style)
    # Faults that act part-way through cut the delta list at `after`.
    partial = fault is not None and fault.kind in ("stream_error", "disconnect", "malformed")
    partial = partial or (fault is not None and fault.kind == "no_done" and fault.after is not None)
    split = min(fault.after or 0, len(deltas)) if fault is not None and partial else len(deltas)

    sent = 0

    def send_deltas(upto: int) -> bool:
        nonlocal sent
        while sent < upto:
            if not sink.wait(token_delay):
                return False
            meter.mark_first_token()
            sent += 1
            sink.event(chunks.make(deltas[sent - 1], usage=_maybe(every, meter, sent)))
        return True

    if not send_deltas(split):
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
        if not send_deltas(len(deltas)):
            return False

    if style.finish_reason:
        final = style.usage in ("every_chunk", "with_finish")
        sink.event(chunks.make({}, answer.finish_reason, usage=_maybe(final, meter, sent)))
    if style.usage == "requested" and include_usage:
        sink.event(chunks.make(None, usage=meter.usage(sent)))
    if style.done and not (fault is not None and fault.kind == "no_done"):
        sink.event("[DONE]")
    return True


def _maybe(wanted: bool, meter: Meter, completion_tokens: int) -> dict[str, Any] | None:
    return meter.usage(completion_tokens) if wanted else None
