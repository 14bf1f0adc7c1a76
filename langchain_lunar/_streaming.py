"""The state of one completion stream: SSE events in, ``ChatGenerationChunk`` objects out.

``BaseAssembler`` checks and keeps what a stream says; ``StreamAssembler`` emits it as chunks,
``_events.EventAssembler`` as langchain-core's protocol events. It does no I/O, so the sync and
async transports share it. Each event is handled once, on the per-token path, so the work
there is kept to a few dict lookups and one message object (or one event).

What it guarantees:
- a chunk is emitted only when it carries something the caller needs (text or a tool-call
  fragment); the role-only opening chunk and empty deltas are absorbed;
- everything that describes the whole answer (finish reason, served model, fingerprint, usage,
  Lunar's cost fields, the chunk and choice fields it does not map) goes on one final
  ``chunk_position="last"`` chunk, so usage is counted exactly once even when a server repeats
  it on every chunk;
- a line that is not JSON, an error event, or a stream that ends before both ``[DONE]`` and a
  finish reason raises; once anything was delivered the error is a ``StreamInterruptedError``;
- what comes after ``[DONE]`` is ignored, with one warning per stream (not one per event: a
  server may send a great many).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeAlias, TypeVar

from langchain_core.messages import AIMessageChunk
from langchain_core.messages.tool import ToolCallChunk, tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk

from langchain_lunar._error_mapping import error_from_event
from langchain_lunar._exceptions import (
    APIConnectionError,
    LunarError,
    MalformedResponseError,
    StreamInterruptedError,
)
from langchain_lunar._fast_chunks import text_chunk
from langchain_lunar._json import loads
from langchain_lunar._media_out import StreamedMedia
from langchain_lunar._responses import (
    CHUNK_FIELDS,
    STREAMED_CHOICE_FIELDS,
    UNMAPPED_KEY,
    ShapeError,
    check_logprobs,
    check_tool_call,
    check_usage,
    message_fields,
    new_fields,
    response_metadata,
    usage_to_metadata,
)
from langchain_lunar._secrets import Secrets, quote, redact
from langchain_lunar._sse import MAX_EVENT_BYTES, TOO_LARGE, Event, SSEDecoder
from langchain_lunar._wrong_answers import too_large_error

logger = logging.getLogger("langchain_lunar")

# Bound once: telling a chunk (or choice) of only known fields, the common case, is one C call.
_only_known_chunk_fields = CHUNK_FIELDS.issuperset
_only_known_choice_fields = STREAMED_CHOICE_FIELDS.issuperset

ItemT = TypeVar("ItemT")
"""What an assembler emits: a chunk, or a protocol event."""
_Emitted: TypeAlias = ItemT | tuple[ItemT, ...] | None


class BaseAssembler(Generic[ItemT]):
    """Checks and keeps the Server-Sent Events of one streamed answer; a subclass says what
    they become: ``_emit_text`` for a delta of text alone (the per-token path),
    ``_emit_chunks`` for the chunks of any other delta, ``_emit_final`` for the final chunk."""

    __slots__ = (
        "_audio_format",
        "_decoder",
        "_delivered",
        "_emit_text",
        "_failed_attempts",
        "_fingerprint",
        "_id",
        "_media",
        "_other_fields",
        "_pending_logprobs",
        "_requested_model",
        "_secrets",
        "_seen_choice_fields",
        "_seen_chunk_fields",
        "_seen_fingerprint",
        "_seen_id",
        "_seen_model",
        "_served_model",
        "_texts",
        "_usage",
        "_warned_after_done",
        "data_events",
        "done",
        "finish_reason",
    )

    def __init__(
        self,
        requested_model: str,
        *,
        secrets: Secrets = (),
        failed_attempts: tuple[dict[str, Any], ...] = (),
        audio_format: str | None = None,
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        """``audio_format``: the one the request asks for, the MIME type of audio answers
        that name none."""
        self._decoder = SSEDecoder(max_event_bytes)
        self._failed_attempts = failed_attempts
        self._requested_model = requested_model
        self._secrets = secrets
        self._served_model: str | None = None
        self._fingerprint: str | None = None
        self._id: str | None = None
        # The last checked id, model and fingerprint: an event repeating them needs no checks.
        self._seen_id: Any = None
        self._seen_model: Any = None
        self._seen_fingerprint: Any = None
        self._usage: dict[str, Any] | None = None
        self._pending_logprobs: dict[str, Any] | None = None
        self._audio_format = audio_format
        self._media: StreamedMedia | None = None  # made by the first image or audio
        # Fields of chunks and choices that ChatLunar does not map: each value once, for the
        # final chunk (see new_fields), with the last value seen under each name.
        self._other_fields: list[dict[str, Any]] = []
        self._seen_chunk_fields: dict[str, Any] = {}
        self._seen_choice_fields: dict[str, Any] = {}
        self._texts: list[str] = []
        self._delivered = False
        self._warned_after_done = False
        self.data_events = 0  # decoded so far; comments are none (transports time stalls by it)
        self.done = False
        self.finish_reason: str | None = None
        self._emit_text = self._text_emitter()

    # The item of a delta of text alone: ``(content, completion id) -> item``. An attribute,
    # not a method, so that a subclass can swap it once (see _events) instead of testing
    # something on every token.
    _emit_text: Callable[[str, str | None], ItemT]

    def _text_emitter(self) -> Callable[[str, str | None], ItemT]:
        """The first ``_emit_text``."""
        raise NotImplementedError

    def _emit_chunks(self, chunks: list[ChatGenerationChunk]) -> _Emitted[ItemT]:
        """The item (or items, in order) of the chunks of one delta with more than text."""
        raise NotImplementedError

    def _emit_final(self, chunk: ChatGenerationChunk) -> ItemT:
        """The item of the final chunk."""
        raise NotImplementedError

    @property
    def model(self) -> str:
        """The model the server says is answering, else the one requested."""
        return self._served_model or self._requested_model

    @property
    def text(self) -> str:
        """The text emitted so far."""
        return "".join(self._texts)

    def feed(self, data: bytes) -> Iterable[ItemT]:
        """Take the next bytes of the body; return the items they completed, in order.

        When an event of these bytes fails, the items before it come first and the error is
        raised after them, so the caller has those items, and only those, when it arrives.
        """
        events = self._decoder.feed(data)
        self.data_events += len(events)
        return self._chunks_of(events)

    def close(self, no_events: Callable[[], LunarError] | None = None) -> Iterable[ItemT]:
        """The body has ended: the items still pending, then the final one.

        ``no_events`` builds the error for a body that held no data event at all (say what
        came instead); without it, that body is an incomplete stream like any other.
        """
        events = self._decoder.close()
        self.data_events += len(events)
        chunks = self._chunks_of(events)
        if type(chunks) is not list:
            return chunks  # an event failed: its error comes after the chunks before it
        try:
            if no_events is not None and self.data_events == 0:
                raise self.fail(no_events())
            chunks.append(self.finish())
        except LunarError as error:
            return _then_raise(chunks, error)
        return chunks

    def _chunks_of(self, events: list[Event]) -> Iterable[ItemT]:
        # Built eagerly into a list: a generator resumed per chunk costs more than the list.
        chunks: list[ItemT] = []
        try:
            for data, name in events:
                emitted = self.on_event(data, name)
                if emitted is None:
                    continue
                if isinstance(emitted, tuple):  # a delta with reasoning and more
                    chunks.extend(emitted)
                else:
                    chunks.append(emitted)
        except LunarError as error:
            return _then_raise(chunks, error)
        return chunks

    def on_event(self, data: bytes, name: str | None = None) -> _Emitted[ItemT]:
        """Handle one event (its data and ``event:`` name); return the item (or items, in
        order) to emit, if any."""
        if self.done:
            if not self._warned_after_done:
                self._warn_after_done(data)
            return None
        if data == b"[DONE]":
            self.done = True
            return None
        try:
            payload = loads(data)
        except ValueError:
            payload = None
        if type(payload) is not dict:
            if name is TOO_LARGE[1]:
                limit = self._decoder.max_event_bytes
                raise self.fail(too_large_error(f"An event of the stream from {self.model}", limit))
            raise self.fail(self._malformed("a data line that is not a JSON object", data))
        if name == "error" or payload.get("error") is not None:
            if "error" not in payload:
                payload = {"error": payload}
            raise self.fail(error_from_event(payload, secrets=self._secrets))
        try:
            return self._on_chunk(payload)
        except ShapeError as problem:
            wrong = str(problem)
        # Raised outside the handler: fail() sets the cause chain that users see.
        raise self.fail(self._malformed(wrong, data))

    def _on_chunk(self, payload: dict[str, Any]) -> _Emitted[ItemT]:
        """One ``chat.completion.chunk``; raises ``ShapeError`` for a field of the wrong type.

        Every field is checked before anything of the event is kept or emitted, so an event
        is either taken whole or refused whole.
        """
        # What describes the answer is checked and kept when it changes, which is once per
        # stream: servers repeat the same id, model and fingerprint on every chunk.
        completion_id = payload.get("id")
        model = payload.get("model")
        fingerprint = payload.get("system_fingerprint")
        described = (
            completion_id == self._seen_id
            and model == self._seen_model
            and fingerprint == self._seen_fingerprint
        )
        if not described:
            _check_description(completion_id, model, fingerprint)
        usage = payload.get("usage")
        if usage is not None:
            usage = check_usage(usage)

        delta = reason = logprobs = None
        choices = payload.get("choices")
        if choices:
            if type(choices) is not list:
                raise ShapeError(f"choices that is not a list ({type(choices).__name__})")
            if len(choices) > 1:
                raise ShapeError("more than one choice (ChatLunar asks for one)")
            choice = choices[0]
            if type(choice) is not dict:
                raise ShapeError(f"a choice that is not an object ({type(choice).__name__})")
            index = choice.get("index")
            if index is not None and (type(index) is not int or index != 0):
                raise ShapeError(
                    f"a choice index that is not 0 ({index!r}; ChatLunar asks for one)"
                )
            reason = choice.get("finish_reason")
            if reason is not None and type(reason) is not str:
                raise ShapeError(f"a finish_reason that is not a string ({reason!r})")
            delta = choice.get("delta")
            if delta is not None and type(delta) is not dict:
                raise ShapeError(f"a delta that is not an object ({type(delta).__name__})")
            logprobs = choice.get("logprobs")
            if logprobs is not None:
                logprobs = check_logprobs(logprobs)
        elif choices is not None and choices != []:
            raise ShapeError(f"choices that is not a list ({type(choices).__name__})")

        content: str | None = None
        rich: _RichDelta | None = None
        if delta:
            content = delta.get("content")
            if content is not None and type(content) is not str:
                raise ShapeError(f"a delta.content that is not a string ({type(content).__name__})")
            if logprobs is not None or not _text_only(delta):
                rich = _RichDelta(delta, content, logprobs)
        elif logprobs is not None:
            rich = _RichDelta({}, None, logprobs)

        # The whole event is well formed: keep what describes the answer.
        if not described:
            self._describe(completion_id, model, fingerprint)
        if usage:
            # Servers that repeat usage send running totals: the last one is the answer's.
            self._usage = usage
        if reason:
            self.finish_reason = reason
        if not _only_known_chunk_fields(payload):
            self._keep_other_fields("chunk", payload, CHUNK_FIELDS, self._seen_chunk_fields)
        if choices and not _only_known_choice_fields(choice):
            self._keep_other_fields(
                "choice", choice, STREAMED_CHOICE_FIELDS, self._seen_choice_fields
            )
        if rich is not None and (self._pending_logprobs is not None or rich.has_more_than_text):
            return self._rich_chunks(rich)
        # Text alone (also when the delta's other fields were null): the per-token path.
        if not content:
            return None  # an empty delta: nothing to deliver
        self._texts.append(content)
        self._delivered = True
        return self._emit_text(content, self._id)

    def _describe(
        self, completion_id: str | None, model: str | None, fingerprint: str | None
    ) -> None:
        """Keep a checked event's id, model and fingerprint: the first id, the last model and
        fingerprint that were given.

        Kept masked of the secrets: they reach every chunk's id, the response metadata and the
        error messages, and a hostile server may echo the key in them. Once per stream: servers
        repeat the same values on every chunk.
        """
        self._seen_id, self._seen_model, self._seen_fingerprint = completion_id, model, fingerprint
        if self._secrets:
            completion_id, model, fingerprint = (
                redact(value, self._secrets) if value else value
                for value in (completion_id, model, fingerprint)
            )
        if self._id is None:
            self._id = completion_id
        if model:
            self._served_model = model
        if fingerprint:
            self._fingerprint = fingerprint

    def _keep_other_fields(
        self, where: str, body: dict[str, Any], known: frozenset[str], seen: dict[str, Any]
    ) -> None:
        found = new_fields(body, known, seen)
        if found:
            self._other_fields.append({where: found})

    def _rich_chunks(self, rich: _RichDelta) -> _Emitted[ItemT]:
        """The chunks of a delta with more than text: its reasoning first, then the rest."""
        fields = rich.fields
        content = rich.content
        chunks: list[ChatGenerationChunk] = []
        if fields.reasoning_kwargs:
            reasoning = AIMessageChunk(
                content="", id=self._id, additional_kwargs=fields.reasoning_kwargs
            )
            chunks.append(ChatGenerationChunk(message=reasoning))
        logprobs = rich.logprobs
        if self._pending_logprobs is not None:  # of events that had nothing else to carry
            logprobs = _joined_logprobs(self._pending_logprobs, logprobs or {})
            self._pending_logprobs = None
        if content or rich.tool_call_chunks or fields.kwargs:
            message = AIMessageChunk(
                content=content or "",
                id=self._id,
                tool_call_chunks=rich.tool_call_chunks,
                additional_kwargs=fields.kwargs,
                response_metadata={"logprobs": logprobs} if logprobs is not None else {},
            )
            chunks.append(ChatGenerationChunk(message=message))
            if content:
                self._texts.append(content)
        elif logprobs is not None:
            self._pending_logprobs = logprobs
        if fields.images or fields.audio is not None:
            media = self._media_chunk(fields.images, fields.audio)
            if media is not None:
                chunks.append(media)
        if not chunks:
            return None
        self._delivered = True
        return self._emit_chunks(chunks)

    def _media_chunk(
        self, images: list[dict[str, Any]], audio: dict[str, Any] | None
    ) -> ChatGenerationChunk | None:
        """The chunk of a delta's images and audio piece, after its text: blocks in a list
        content, which langchain-core adds to the text before it (see ``_media_out``)."""
        if self._media is None:
            self._media = StreamedMedia(self._audio_format)
        blocks: list[str | dict[str, Any]] = list(self._media.image_pieces(images))
        kwargs: dict[str, Any] = {}
        if audio is not None:
            piece, left = self._media.audio_piece(audio)
            if piece is not None:
                blocks.append(piece)
            if left:
                kwargs[UNMAPPED_KEY] = [{"delta": {"audio": left}}]
        if not blocks and not kwargs:
            return None
        message = AIMessageChunk(content=blocks, id=self._id, additional_kwargs=kwargs)
        return ChatGenerationChunk(message=message)

    def finish(self) -> ItemT:
        """The final item, once the body has ended; raises if the answer is incomplete."""
        if not self.done and self.finish_reason is None:
            raise self.fail(
                APIConnectionError(
                    f"The stream from {self.model} ended without `data: [DONE]` and without "
                    "a finish_reason, so the answer is incomplete"
                )
            )
        usage = self._usage
        metadata = response_metadata(
            model_name=self.model,
            requested_model=self._requested_model,
            finish_reason=self.finish_reason,
            system_fingerprint=self._fingerprint,
            usage=usage,
            failed_attempts=self._failed_attempts,
        )
        if self._pending_logprobs is not None:
            metadata["logprobs"] = self._pending_logprobs
        message = AIMessageChunk(
            content="",
            id=self._id,
            additional_kwargs={UNMAPPED_KEY: self._other_fields} if self._other_fields else {},
            usage_metadata=usage_to_metadata(usage) if usage else None,
            response_metadata=metadata,
            chunk_position="last",
        )
        generation_info = {"finish_reason": self.finish_reason} if self.finish_reason else None
        return self._emit_final(
            ChatGenerationChunk(message=message, generation_info=generation_info)
        )

    def fail(self, error: LunarError) -> LunarError:
        """The error to raise for ``error``: itself, or a ``StreamInterruptedError`` wrapping it
        once tokens have reached the caller (they cannot be taken back or replayed)."""
        if not self._delivered:
            return error
        text = self.text
        interrupted = StreamInterruptedError(
            f"The stream from {self.model} broke after {len(text)} characters had been "
            f"delivered: {error}",
            text=text,
            model=self.model,
        )
        interrupted.__cause__ = error
        return interrupted

    def _warn_after_done(self, data: bytes) -> None:
        self._warned_after_done = True
        logger.warning(
            "Ignoring what the stream from %s sent after [DONE] (logged once per stream), "
            "first: %s",
            self.model,
            quote(data, self._secrets),
        )

    def _malformed(self, what: str, data: bytes) -> MalformedResponseError:
        return MalformedResponseError(
            f"The stream from {self.model} sent {what}: {quote(data, self._secrets)}"
        )


class StreamAssembler(BaseAssembler[ChatGenerationChunk]):
    """Builds the chunks of one streamed answer from its Server-Sent Events."""

    __slots__ = ()

    def _text_emitter(self) -> Callable[[str, str | None], ChatGenerationChunk]:
        return text_chunk  # no validation: see _fast_chunks

    def _emit_chunks(self, chunks: list[ChatGenerationChunk]) -> _Emitted[ChatGenerationChunk]:
        return chunks[0] if len(chunks) == 1 else tuple(chunks)

    def _emit_final(self, chunk: ChatGenerationChunk) -> ChatGenerationChunk:
        return chunk


class _RichDelta:
    """A checked delta that carries more than text: tool calls, reasoning, refusal, ..."""

    __slots__ = ("content", "fields", "logprobs", "tool_call_chunks")

    def __init__(
        self, delta: dict[str, Any], content: str | None, logprobs: dict[str, Any] | None
    ) -> None:
        self.content = content
        self.logprobs = logprobs
        raw_tool_calls = delta.get("tool_calls")
        if raw_tool_calls is not None and type(raw_tool_calls) is not list:
            raise ShapeError("delta.tool_calls that is not a list")
        self.tool_call_chunks = [_tool_call_chunk(raw) for raw in raw_tool_calls or ()]
        self.fields = message_fields(delta, streamed=True)

    @property
    def reasoning_only(self) -> str | None:
        """The reasoning text of a delta that carries nothing else (a thinking model's token),
        else None."""
        fields = self.fields
        if (
            self.content
            or self.tool_call_chunks
            or self.logprobs is not None
            or fields.kwargs
            or fields.images
            or fields.audio is not None
            or len(fields.reasoning_kwargs) != 1
        ):
            return None
        reasoning: str | None = fields.reasoning_kwargs.get("reasoning_content")
        return reasoning

    @property
    def has_more_than_text(self) -> bool:
        return bool(
            self.fields.reasoning_kwargs
            or self.fields.kwargs
            or self.tool_call_chunks
            or self.logprobs is not None
            or self.fields.images
            or self.fields.audio is not None
        )


def _text_only(delta: dict[str, Any]) -> bool:
    """Whether a delta carries nothing but its content: a repeated ``role`` and null fields
    carry nothing (OpenAI-style servers send ``"tool_calls": null`` and the like)."""
    if len(delta) == 1 and "content" in delta:
        return True
    for name, value in delta.items():
        if value is not None and name != "content" and name != "role":
            return False
    return True


def _check_description(completion_id: Any, model: Any, fingerprint: Any) -> None:
    if completion_id is not None and type(completion_id) is not str:
        raise ShapeError(f"an id that is not a string ({type(completion_id).__name__})")
    if model is not None and type(model) is not str:
        raise ShapeError(f"a model that is not a string ({type(model).__name__})")
    if fingerprint is not None and type(fingerprint) is not str:
        raise ShapeError(f"a system_fingerprint that is not a string ({fingerprint!r})")


def _then_raise(chunks: list[ItemT], error: LunarError) -> Iterator[ItemT]:
    yield from chunks
    raise error


def _joined_logprobs(first: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    """Two events' ``logprobs`` as one: their lists (``content``, ``refusal``) joined."""
    joined = dict(first)
    for name, value in then.items():
        earlier = joined.get(name)
        joined[name] = earlier + value if type(earlier) is list and type(value) is list else value
    return joined


def _tool_call_chunk(raw: Any) -> ToolCallChunk:
    index, call_id, name, arguments = check_tool_call(raw, streamed=True)
    return tool_call_chunk(name=name, args=arguments, id=call_id, index=index)
