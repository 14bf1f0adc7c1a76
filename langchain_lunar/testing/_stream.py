"""Completion objects and the order of events in a streamed answer, independent of sockets.

``completion`` builds a non-streaming ``chat.completion``; ``answer_pieces`` lists the deltas a
streamed answer is made of (reasoning, text or refusal, annotations, tool-call fragments), each
with its token cost and log probabilities; ``run_stream`` drives a streamed answer (normal or
faulty) through an ``EventSink``, which the HTTP handler implements.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_lunar.testing._faults import EventSink, Fault, Then
from langchain_lunar.testing._protocol import SYSTEM_FINGERPRINT, token_logprob, usage
from langchain_lunar.testing._reply import Answer, SentToolCall
from langchain_lunar.testing._sse import WireStyle


class Meter:
    """Usage figures for one request: token counts, prices, and times since its arrival."""

    def __init__(
        self,
        arrival: float,
        prompt_tokens: int,
        price: tuple[float, float],
        *,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
        details: str = "auto",
    ) -> None:
        self.arrival = arrival
        self.prompt_tokens = prompt_tokens
        self.price = price
        # A cache can hold no more than the prompt: a scripted figure is capped, not an error,
        # since the prompt's size is only known per request.
        self.cached_tokens = min(cached_tokens, prompt_tokens)
        self.cache_write_tokens = min(cache_write_tokens, prompt_tokens - self.cached_tokens)
        self.details = details
        self.first_token: float | None = None

    def mark_first_token(self) -> None:
        """Record now as the time to first token, unless already recorded."""
        if self.first_token is None:
            self.first_token = time.monotonic()

    def usage(self, completion_tokens: int, reasoning_tokens: int = 0) -> dict[str, Any]:
        """Usage with ``completion_tokens`` (of which ``reasoning_tokens``) so far; latency is
        measured now, and ttft is the same as latency until a first token was recorded."""
        now = time.monotonic()
        first = self.first_token if self.first_token is not None else now
        return usage(
            self.prompt_tokens,
            completion_tokens,
            self.price,
            latency_ms=(now - self.arrival) * 1000,
            ttft_ms=(first - self.arrival) * 1000,
            reasoning_tokens=reasoning_tokens,
            cached_tokens=self.cached_tokens,
            cache_write_tokens=self.cache_write_tokens,
            details=self.details,
        )


@dataclass(frozen=True)
class Piece:
    """One delta of a streamed answer (one chunk), with what it costs.

    Attributes:
        delta: the chunk's ``choices[0].delta``.
        tokens: completion tokens it adds (0 for the annotations chunk).
        reasoning_tokens: how many of those are reasoning.
        logprobs: the chunk's ``choices[0].logprobs`` when the request asked for log
            probabilities; None for a delta without text or refusal tokens.
    """

    delta: dict[str, Any]
    tokens: int = 1
    reasoning_tokens: int = 0
    logprobs: dict[str, Any] | None = None


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


def image_item(url: str) -> dict[str, Any]:
    """One ``images`` item: ``{"type": "image_url", "image_url": {"url": url}}``."""
    return {"type": "image_url", "image_url": {"url": url}}


def role_delta(answer: Answer) -> dict[str, Any]:
    """The opening delta: ``{"role": "assistant", "content": ""}``, or for a refusal
    ``{"role": "assistant", "content": None, "refusal": ""}`` (content stays null throughout)."""
    if answer.refusal is not None:
        return {"role": "assistant", "content": None, "refusal": ""}
    return {"role": "assistant", "content": ""}


def _reasoning_delta(piece: str, style: WireStyle) -> dict[str, Any]:
    delta: dict[str, Any] = {style.reasoning_field: piece}
    if style.reasoning_details:
        delta["reasoning_details"] = [{"type": "reasoning.text", "text": piece, "index": 0}]
    return delta


def answer_pieces(answer: Answer, style: WireStyle) -> list[Piece]:
    """Every delta of a streamed ``answer`` after the role chunk, in order: one per reasoning
    token; one per text token (with ``style.mixed_chunk`` the last reasoning token and the
    first text token share one delta), or one per refusal token; one ``{"images": [item]}``
    delta per image; the ``{"audio": {...}}`` pieces; one ``{"annotations": [...]}`` delta if
    there are annotations; then the tool-call deltas. Each token, image, audio piece and
    tool-call delta costs one completion token, streamed or not.

    With log probabilities requested (``answer.top_logprobs`` not None), the ``logprobs`` of a
    text piece are ``{"content": [entry]}``, of a refusal piece ``{"content": None,
    "refusal": [entry]}`` (entries from ``token_logprob``, indexed from 0 within the text or
    the refusal); other pieces have none.
    """
    top = answer.top_logprobs
    reasoning = [
        Piece(_reasoning_delta(piece, style), reasoning_tokens=1)
        for piece in answer.reasoning_tokens
    ]
    text: list[Piece] = []
    for index, token in enumerate(answer.tokens):
        delta: dict[str, Any] = {"content": token, **style.extra_delta_fields}
        entries = None if top is None else {"content": [token_logprob(token, index, top)]}
        text.append(Piece(delta, logprobs=entries))
    if style.mixed_chunk and reasoning and text:
        last, first = reasoning.pop(), text[0]
        mixed = {**last.delta, **first.delta}
        text[0] = Piece(mixed, tokens=2, reasoning_tokens=1, logprobs=first.logprobs)
    for index, token in enumerate(answer.refusal_tokens):
        logprobs: dict[str, Any] | None = None
        if top is not None:
            logprobs = {"content": None, "refusal": [token_logprob(token, index, top)]}
        text.append(Piece({"content": None, "refusal": token}, logprobs=logprobs))
    for url in answer.images:
        text.append(Piece({"images": [image_item(url)]}))
    if answer.audio is not None:
        text.extend(Piece({"audio": audio}) for audio in answer.audio.deltas())
    if answer.annotations:
        text.append(Piece({"annotations": list(answer.annotations)}, tokens=0))
    calls = tool_call_deltas(answer.tool_calls, style.tool_fragment, style.interleave_tool_calls)
    return reasoning + text + [Piece(delta) for delta in calls]


def completion(
    completion_id: str,
    created: int,
    model: str,
    answer: Answer,
    meter: Meter,
    style: WireStyle,
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object for ``answer``, its ``usage`` counting the
    tokens its streamed form would cost.

    ``content`` is null when the answer is only tool calls, or a refusal (then ``refusal``
    holds its text), or when it has audio, as OpenAI-compatible servers send. Reasoning goes under
    ``style.reasoning_field`` (and ``reasoning_details``), images under ``images``, audio
    under ``audio``, annotations under ``annotations``;
    ``choices[0].logprobs`` covers every token when the request asked for log probabilities.
    """
    meter.mark_first_token()
    message: dict[str, Any] = {"role": "assistant", "content": answer.text}
    if answer.tool_calls or answer.refusal is not None:
        message["content"] = answer.text or None
    if answer.refusal is not None:
        message["refusal"] = answer.refusal
    if answer.text:
        message.update(style.extra_delta_fields)
    if answer.reasoning_tokens:
        message.update(_reasoning_delta(answer.reasoning, style))
    if answer.images:
        message["images"] = [image_item(url) for url in answer.images]
    if answer.audio is not None:
        message["audio"] = answer.audio.message_form()
        message["content"] = answer.text or None  # as OpenAI sends it with audio
    if answer.annotations:
        message["annotations"] = list(answer.annotations)
    if answer.tool_calls:
        message["tool_calls"] = [call.message_form() for call in answer.tool_calls]
    choice: dict[str, Any] = {"index": 0, "message": message}
    if answer.top_logprobs is not None:
        top = answer.top_logprobs
        if answer.refusal is not None:
            refusal = [token_logprob(t, i, top) for i, t in enumerate(answer.refusal_tokens)]
            choice["logprobs"] = {"content": None, "refusal": refusal}
        else:
            content = [token_logprob(t, i, top) for i, t in enumerate(answer.tokens)]
            choice["logprobs"] = {"content": content}
    choice["finish_reason"] = answer.finish_reason
    pieces = answer_pieces(answer, style)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [choice],
        "usage": meter.usage(
            sum(p.tokens for p in pieces), sum(p.reasoning_tokens for p in pieces)
        ),
    }


class ChunkFactory:
    """Builds the ``chat.completion.chunk`` objects of one stream, honouring ``model_in``.

    With ``logprobs`` every choice carries a ``logprobs`` key (null where a chunk has none),
    as OpenAI sends it once log probabilities were requested; without, no choice has one.
    """

    def __init__(
        self,
        completion_id: str,
        created: int,
        model: str,
        style: WireStyle,
        logprobs: bool = False,
    ) -> None:
        self._id = completion_id
        self._created = created
        self._model = model
        self._style = style
        self._logprobs = logprobs
        self._count = 0

    def make(
        self,
        delta: dict[str, Any] | None,
        finish_reason: str | None = None,
        usage: dict[str, Any] | None = None,
        logprobs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A chunk with one choice carrying ``delta`` (and ``logprobs`` if the factory was
        made with them), or with ``choices: []`` if delta is None."""
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
            choice: dict[str, Any] = {"index": 0, "delta": delta}
            if self._logprobs:
                choice["logprobs"] = logprobs
            choice["finish_reason"] = finish_reason
            chunk["choices"] = [choice]
        if usage is not None:
            chunk["usage"] = usage
        self._count += 1
        return chunk


def run_stream(
    sink: EventSink,
    chunks: ChunkFactory,
    meter: Meter,
    answer: Answer,
    *,
    style: WireStyle,
    fault: Fault,
    token_delay: float,
    include_usage: bool,
) -> bool:
    """Write the events of a streamed ``answer``, shaped by ``style`` and the scripted ``fault``.

    The fault acts before any chunk (``Fault.open_stream``), then before each delta of
    ``answer_pieces`` and once after the last (``Fault.at_delta``): reasoning, text or refusal
    tokens, the annotations chunk, then tool-call chunks, so it can cut a stream in the middle
    of a call's arguments.

    Returns True when the body should be ended cleanly (terminating chunk), False when the
    connection must be dropped without it (``Fault.disconnect``, an endless keep-alive stall,
    or the server stopping). Raises ``OSError`` when the client closed the connection.
    """
    if not fault.open_stream(sink):
        return False

    every = style.usage == "every_chunk"
    counts = [0, 0]  # completion tokens and reasoning tokens sent so far

    def running(wanted: bool) -> dict[str, Any] | None:
        return meter.usage(*counts) if wanted else None

    if style.role_chunk:
        sink.event(chunks.make(role_delta(answer), usage=running(every)))

    pieces = answer_pieces(answer, style)
    for index in range(len(pieces) + 1):
        then = fault.at_delta(index, len(pieces), sink, style)
        if then is not Then.GO_ON:
            return then is Then.END
        if index == len(pieces):
            break
        if not sink.wait(token_delay):
            return False
        meter.mark_first_token()
        piece = pieces[index]
        counts[0] += piece.tokens
        counts[1] += piece.reasoning_tokens
        sink.event(chunks.make(piece.delta, usage=running(every), logprobs=piece.logprobs))

    if style.finish_reason:
        final = style.usage in ("every_chunk", "with_finish")
        sink.event(chunks.make({}, answer.finish_reason, usage=running(final)))
    if style.usage == "requested" and include_usage:
        sink.event(chunks.make(None, usage=running(True)))
    if style.done and fault.sends_done:
        sink.event("[DONE]")
    return True
