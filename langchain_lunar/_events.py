"""langchain-core's protocol events (``stream_events(version="v3")``) straight from the SSE.

langchain-core 1.8 asks a chat model for the events of its answer through
``_stream_chat_model_events``; without it, core builds every chunk with ``_stream`` and then
converts each one (its compat bridge). ``EventAssembler`` makes them from the stream's deltas
instead: a delta of text alone, the per-token path, becomes one ``content-block-delta`` dict,
with no message object. The other deltas (reasoning, tool calls, media, refusal) and the final
chunk are built as ``StreamAssembler`` builds them, so every check and field is the same, and
each chunk is converted here.

The stream it gives, as the bridge gives it for the same chunks:

- ``message-start`` first, with the run's message id, and the provider and model;
- one block per kind, numbered in the order they first appear: the text, the reasoning, each
  tool call (by its ``index``), each image, the audio; all finished at the end, in that order;
- ``message-finish`` last, always: the usage (input, output and total tokens) when the server
  reported it, the response metadata (finish reason, model, Lunar's cost fields) and the
  chunks' ``additional_kwargs``, merged as adding the chunks merges them.

Where the bridge loses something, this keeps it: the pieces of streamed audio are joined (the
bridge keeps the last piece), log probabilities of every delta are kept (the bridge keeps the
last), and tool-call arguments that are JSON but not an object make an ``invalid_tool_call``,
as everywhere else in ChatLunar (the bridge makes a ``tool_call`` whose ``args`` is no dict).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.utils._merge import merge_dicts

from langchain_lunar._fast_chunks import text_chunk
from langchain_lunar._media_out import AUDIO_INDEX
from langchain_lunar._responses import PROVIDER
from langchain_lunar._secrets import Secrets
from langchain_lunar._sse import MAX_EVENT_BYTES
from langchain_lunar._streaming import BaseAssembler, _Emitted, _RichDelta

Event = dict[str, Any]
"""One protocol event (langchain-protocol's ``MessagesData``), as a plain dict."""


class ChunkEvents:
    """The events of one chunk, with the chunk, for the token callbacks; ``last``: the final
    chunk's, which end with ``message-finish``."""

    __slots__ = ("chunk", "events", "last")

    def __init__(self, chunk: ChatGenerationChunk, events: list[Event], last: bool = False) -> None:
        self.chunk = chunk
        self.events = events
        self.last = last


Item = Event | ChunkEvents
"""What ``EventAssembler`` emits: a text delta's event alone, when no callback needs its
chunk, or a chunk with its events."""

# Block keys: text and reasoning have one block each; tool calls are keyed by their index,
# images and audio by theirs (``_media_out``), as the bridge keys them.
_TEXT = ("text",)
_REASONING = ("reasoning",)
_ARGS_ERROR = "Failed to parse tool call arguments as JSON"  # the bridge's words


class _Block:
    """A block of the message: its wire index and what its finish will say."""

    __slots__ = ("content", "index")

    def __init__(self, index: int, content: dict[str, Any]) -> None:
        self.index = index
        self.content = content


class EventAssembler(BaseAssembler[Item]):
    """Builds the protocol events of one streamed answer from its Server-Sent Events.

    ``message_id``: the id of ``message-start`` (langchain-core's run id, as the bridge gives
    it); None: the completion's id. ``with_chunks``: emit every chunk with its events, for the
    token callbacks; without it, a text delta is its event alone, and no chunk is made for it.
    """

    __slots__ = (
        "_blocks",
        "_kwargs",
        "_message_id",
        "_metadata",
        "_reasoning",
        "_started",
        "_with_chunks",
    )

    def __init__(
        self,
        requested_model: str,
        *,
        message_id: str | None,
        with_chunks: bool,
        secrets: Secrets = (),
        failed_attempts: tuple[dict[str, Any], ...] = (),
        audio_format: str | None = None,
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        self._message_id = message_id
        self._with_chunks = with_chunks
        self._started = False
        self._blocks: dict[Any, _Block] = {}
        self._reasoning: list[str] = []
        self._kwargs: dict[str, Any] = {}
        self._metadata: dict[str, Any] = {}
        super().__init__(
            requested_model,
            secrets=secrets,
            failed_attempts=failed_attempts,
            audio_format=audio_format,
            max_event_bytes=max_event_bytes,
        )

    def _text_emitter(self) -> Callable[[str, str | None], Item]:
        return self._first_text

    def _first_text(self, content: str, completion_id: str | None) -> Item:
        """The first delta of text alone: opens what it needs, then sets the per-token path."""
        first = self._with_events(text_chunk(content, completion_id))
        index = self._blocks[_TEXT].index

        def text_delta(content: str, completion_id: str | None) -> Event:
            return {
                "event": "content-block-delta",
                "index": index,
                "delta": {"type": "text-delta", "text": content},
            }

        if self._with_chunks:
            self._emit_text = lambda content, completion_id: ChunkEvents(
                text_chunk(content, completion_id), [text_delta(content, completion_id)]
            )
        else:
            self._emit_text = text_delta
        return first

    def _rich_chunks(self, rich: _RichDelta) -> _Emitted[Item]:
        reasoning = None if self._with_chunks else rich.reasoning_only
        if reasoning is None or self._pending_logprobs is not None:
            return super()._rich_chunks(rich)
        # A thinking model's token: as common as text, so made without a chunk too.
        self._delivered = True
        events: list[Event] = []
        self._add_reasoning(events, reasoning)
        return events[0] if len(events) == 1 else tuple(events)

    def _emit_chunks(
        self, chunks: list[ChatGenerationChunk]
    ) -> ChunkEvents | tuple[ChunkEvents, ...]:
        if len(chunks) == 1:
            return self._with_events(chunks[0])
        return tuple(self._with_events(chunk) for chunk in chunks)

    def _emit_final(self, chunk: ChatGenerationChunk) -> Item:
        emitted = self._with_events(chunk)
        events = emitted.events
        for key, block in self._blocks.items():
            events.append(
                {"event": "content-block-finish", "index": block.index, "content": self._last(key)}
            )
        finish: Event = {"event": "message-finish", "metadata": self._metadata}
        if self.finish_reason:
            # Also at the top, where langchain-core 1.8.4's bridge puts it (and reads it).
            finish["finish_reason"] = self.finish_reason
        usage = chunk.message.usage_metadata  # type: ignore[attr-defined]
        if usage:
            finish["usage"] = _copied_usage(usage)
        kwargs = self._kwargs
        if self._reasoning:
            kwargs = {"reasoning_content": "".join(self._reasoning), **kwargs}
        if kwargs:
            finish["additional_kwargs"] = kwargs
        events.append(finish)
        emitted.last = True
        return emitted

    def _with_events(self, chunk: ChatGenerationChunk) -> ChunkEvents:
        """``chunk`` and its events, its blocks opened or added to."""
        message = chunk.message
        assert isinstance(message, AIMessageChunk)
        events: list[Event] = []
        if not self._started:
            self._started = True
            events.append(self._message_start())
        kwargs = message.additional_kwargs
        if kwargs:
            reasoning = kwargs.get("reasoning_content")
            if reasoning:
                self._add_reasoning(events, reasoning)
                # Joined once at the end: merged piece by piece, it would be copied per token.
                kwargs = {k: v for k, v in kwargs.items() if k != "reasoning_content"}
            if kwargs:
                self._kwargs = merge_dicts(self._kwargs, kwargs)
        content = message.content
        position = 0  # of a block within the chunk's blocks (text first), as the bridge counts
        if type(content) is str:
            if content:
                position = 1
                block = self._open(events, _TEXT, {"type": "text", "text": ""})
                events.append(_delta(block, {"type": "text-delta", "text": content}))
        else:
            for piece in content:
                if type(piece) is dict:
                    self._add_media(events, piece)
        for call in message.tool_call_chunks:
            key = call["index"] if call["index"] is not None else ("no index", position)
            position += 1
            self._add_tool_call(events, key, call)
        if message.response_metadata:
            self._metadata = merge_dicts(self._metadata, message.response_metadata)
        return ChunkEvents(chunk, events)

    def _last(self, key: Any) -> dict[str, Any]:
        """The whole block of ``key``, for its ``content-block-finish``."""
        if key is _TEXT:
            return {"type": "text", "text": self.text}
        if key is _REASONING:
            return {"type": "reasoning", "reasoning": "".join(self._reasoning)}
        content = self._blocks[key].content
        return finished_tool_call(content) if content["type"] == "tool_call_chunk" else content

    def _add_reasoning(self, events: list[Event], reasoning: str) -> None:
        if not self._started:
            self._started = True
            events.append(self._message_start())
        self._reasoning.append(reasoning)
        block = self._open(events, _REASONING, {"type": "reasoning", "reasoning": ""})
        events.append(_delta(block, {"type": "reasoning-delta", "reasoning": reasoning}))

    def _message_start(self) -> Event:
        return {
            "event": "message-start",
            "role": "ai",
            "id": self._message_id or self._id or "",
            "metadata": {"provider": PROVIDER, "model": self.model},
        }

    def _open(
        self,
        events: list[Event],
        key: Any,
        start: dict[str, Any],
        content: dict[str, Any] | None = None,
    ) -> _Block:
        """The block of ``key``. The first time, it is opened: ``start`` goes to ``events``, and
        ``content`` (else a copy of ``start``) is kept for its finish."""
        block = self._blocks.get(key)
        if block is None:
            block = _Block(len(self._blocks), dict(start) if content is None else content)
            self._blocks[key] = block
            events.append({"event": "content-block-start", "index": block.index, "content": start})
        return block

    def _add_tool_call(self, events: list[Event], key: Any, call: Any) -> None:
        start: dict[str, Any] = {
            "type": "tool_call_chunk",
            "id": call["id"],
            "name": call["name"],
            "args": "",
        }
        if call["index"] is not None:
            start["index"] = call["index"]
        block = self._open(events, key, start)
        held = block.content
        for name in ("id", "name"):  # a later fragment that names them wins, as in the bridge
            if call[name] is not None:
                held[name] = call[name]
        args = call["args"]
        if args:
            held["args"] += args
            events.append(_delta(block, {"type": "tool-call-delta", "args": args}))

    def _add_media(self, events: list[Event], piece: dict[str, Any]) -> None:
        if piece.get("index") != AUDIO_INDEX:
            # An image, whole in one delta. Its data, like the audio's, rides on the finish
            # alone: a `data-delta` must add up to a finish's `data`, and these blocks, as
            # langchain-core's, say `base64`.
            start = {k: v for k, v in piece.items() if k != "base64"}
            self._open(events, piece.get("index"), start, content=piece)
            return
        block = self._blocks.get(AUDIO_INDEX)
        if block is None:
            start = {k: v for k, v in piece.items() if k not in ("base64", "extras")}
            block = self._open(events, AUDIO_INDEX, start, content=dict(piece))
        else:
            # Joined as adding the chunks joins them (merge_lists): base64 and transcript.
            rest = {k: v for k, v in piece.items() if k != "type"}
            block.content = merge_dicts(block.content, rest)


def _delta(block: _Block, delta: dict[str, Any]) -> Event:
    return {"event": "content-block-delta", "index": block.index, "delta": delta}


def finished_tool_call(held: dict[str, Any]) -> dict[str, Any]:
    """The finish of a tool call block: its arguments parsed, as the bridge parses them, or
    an ``invalid_tool_call`` with them as sent."""
    raw = held["args"] or "{}"
    try:
        args = json.loads(raw)
    except ValueError:
        error = _ARGS_ERROR
    else:
        if type(args) is dict:
            return {
                "type": "tool_call",
                "id": held["id"] or "",
                "name": held["name"] or "",
                "args": args,
            }
        error = f"The tool call arguments are JSON but not an object: {type(args).__name__}"
    return {
        "type": "invalid_tool_call",
        "id": held["id"],
        "name": held["name"],
        "args": raw,
        "error": error,
    }


def _copied_usage(usage: Any) -> dict[str, Any]:
    """The usage for ``message-finish``, sharing no dict with the chunk's."""
    copied = dict(usage)
    for name in ("input_token_details", "output_token_details"):
        if name in copied:
            copied[name] = dict(copied[name])
    return copied
