"""``LunarStreamHandler``: a run's tokens as five plain events a UI can subscribe to.

The events are the ones Lunar's own SDKs offer: ``chunk`` (every chunk), ``content`` (a piece of
text and all the text so far), ``done`` (the whole text, usage, cost, the model that served) and
``error``; and ``reasoning`` (a piece of a reasoning model's thinking and all of it so far),
which never mixes with the text. A UI registers plain functions, or iterates
``handler.events()`` from asyncio, and never touches LangChain's callback API. Give the handler
to the outermost call (``config={"callbacks": [handler]}``) and it sees every model run nested
inside it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, GenerationChunk, LLMResult

from langchain_lunar._messages import reasoning_of

EventKind = Literal["chunk", "reasoning", "content", "done", "error"]
T = TypeVar("T")


@dataclass(frozen=True)
class StreamEvent:
    """One event of a model run.

    Attributes:
        kind: ``"chunk"``, ``"reasoning"``, ``"content"``, ``"done"`` or ``"error"``.
        run_id: The model run it belongs to (an agent has several).
        chunk: ``chunk`` events: the ``AIMessageChunk`` (reasoning, text, tool-call fragments,
            the final one).
        content: ``content`` events: the new piece of text.
        text: ``content``: all the run's text so far; ``done``: the whole text. Never any
            reasoning.
        reasoning: ``reasoning`` events: the new piece of the model's thinking.
        reasoning_text: ``reasoning``: all the run's thinking so far; ``done``: the whole
            thinking (``""`` when the model did not think aloud).
        usage: ``done``: input, output and total tokens, when the server reported them.
        cost_usd: ``done``: Lunar's ``total_cost_usd``, when reported.
        model: ``done``: the model that served.
        response_metadata: ``done``: everything else the answer carried.
        error: ``error`` events: the exception.
    """

    kind: EventKind
    run_id: UUID
    chunk: AIMessageChunk | None = None
    content: str = ""
    text: str = ""
    reasoning: str = ""
    reasoning_text: str = ""
    usage: UsageMetadata | None = None
    cost_usd: float | None = None
    model: str | None = None
    response_metadata: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None


_END = object()


class _Transcript:
    """One run's text, or its thinking, as the pieces that came.

    Events that carry "all the text so far" share these pieces and join them when they are
    handed to the consumer, so that a token costs one ``append`` and events waiting in the
    queue hold no copy of the text each.
    """

    __slots__ = ("_joined", "_joined_count", "pieces", "so_far")

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.so_far = ""  # kept only for on_content / on_reasoning, which take it at once
        self._joined = ""
        self._joined_count = 0

    def joined(self, count: int) -> str:
        """The first ``count`` pieces joined; called by the one consumer, in order."""
        if count > self._joined_count:
            self._joined += "".join(self.pieces[self._joined_count : count])
            self._joined_count = count
        return self._joined


class LunarStreamHandler(BaseCallbackHandler):
    """Turns model runs into ``StreamEvent``s for functions or an async iterator.

    Args:
        on_chunk: Called with each ``AIMessageChunk``.
        on_reasoning: Called with ``(reasoning, accumulated)`` for each piece of the model's
            thinking: ``additional_kwargs["reasoning_content"]`` of a chunk (as ``ChatLunar``
            streams it), else the text of its ``reasoning`` or ``thinking`` content blocks.
        on_content: Called with ``(content, accumulated)`` for each piece of text; thinking is
            never part of it.
        on_done: Called with ``(full_text, event)`` when a model run ends; ``event.usage``,
            ``event.cost_usd`` and ``event.model`` describe the answer, and
            ``event.reasoning_text`` is the whole thinking.
        on_error: Called with the exception when a model run fails.

    Every model run under the handler streams, ``invoke()`` included, so a UI gets tokens from
    any chain or agent. A chunk gives its ``chunk`` event first, then its ``reasoning`` event,
    then its ``content`` event. Works in sync and async runs and from any thread. ``events()``
    yields every event to one asyncio consumer and ends after ``close()``, or when the outermost
    run the handler was given to ends. Without functions, events that come before ``events()``
    is called are kept for it; with functions, only those after.
    """

    # Called in the run's own thread and loop, so that events keep their order and arrive at once.
    run_inline = True

    def __init__(
        self,
        *,
        on_chunk: Callable[[AIMessageChunk], None] | None = None,
        on_reasoning: Callable[[str, str], None] | None = None,
        on_content: Callable[[str, str], None] | None = None,
        on_done: Callable[[str, StreamEvent], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._on_chunk = on_chunk
        self._on_reasoning = on_reasoning
        self._on_content = on_content
        self._on_done = on_done
        self._on_error = on_error
        self._texts: dict[UUID, _Transcript] = {}
        self._reasonings: dict[UUID, _Transcript] = {}
        self._root: UUID | None = None
        self._lock = threading.Lock()
        # Events that come before events() is called wait for it, unless the handler was given
        # functions (then nobody may ever iterate, and keeping them would only grow).
        self._buffer = not any((on_chunk, on_reasoning, on_content, on_done, on_error))
        self._pending: list[Any] = []
        self._queue: asyncio.Queue[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def events(self) -> AsyncIterator[StreamEvent]:
        """Every event, in order, until ``close()`` or the end of the outermost run."""
        with self._lock:
            if self._queue is not None:
                raise RuntimeError("events() can be iterated by one consumer only")
            self._loop = asyncio.get_running_loop()
            self._queue = asyncio.Queue()
            for item in self._pending:
                self._queue.put_nowait(item)
            self._pending.clear()
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            if type(item) is tuple:
                for event in _token_events(*item):
                    yield event
            else:
                yield item

    def close(self) -> None:
        """End ``events()``; call it when the work the handler watched is over."""
        self._publish(_END)

    # LangChain streams a model called with invoke() only when a handler has these two methods
    # (its `_StreamingCallbackHandler` protocol, as LangGraph's message streaming uses), so
    # with this handler every model in the run streams its tokens. They pass output through.
    def tap_output_iter(self, run_id: UUID, output: Iterator[T]) -> Iterator[T]:
        return output

    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[T]) -> AsyncIterator[T]:
        return output

    # --- LangChain callbacks ---------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: Any,
        messages: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._note_start(run_id, parent_run_id)

    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._note_start(run_id, parent_run_id)

    def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        message = chunk.message if isinstance(chunk, ChatGenerationChunk) else None
        reasoning = ""
        if isinstance(message, AIMessageChunk):
            if self._on_chunk is not None:
                self._on_chunk(message)
            # A text token has neither, so the per-token path costs two lookups more.
            if message.additional_kwargs or type(message.content) is list:
                reasoning = reasoning_of(message)
            text: str = str(message.text)  # also right when content is a list of blocks
        else:
            message = None
            text = token if isinstance(token, str) else ""
        thinking = self._add(self._reasonings, run_id, reasoning, self._on_reasoning)
        written = self._add(self._texts, run_id, text, self._on_content)
        if (
            message is not None or thinking is not None or written is not None
        ) and self._listening():
            # One record per token; events() makes its StreamEvents when it hands them out,
            # and the pieces' counts now say how much of the text each one shows.
            self._publish(
                (
                    run_id,
                    message,
                    reasoning,
                    thinking,
                    len(thinking.pieces) if thinking is not None else 0,
                    text,
                    written,
                    len(written.pieces) if written is not None else 0,
                )
            )

    @staticmethod
    def _add(
        transcripts: dict[UUID, _Transcript],
        run_id: UUID,
        piece: str,
        function: Callable[[str, str], None] | None,
    ) -> _Transcript | None:
        """Add a piece to the run's transcript and tell ``function``; None for no piece."""
        if not piece:
            return None
        transcript = transcripts.get(run_id)
        if transcript is None:
            transcript = transcripts[run_id] = _Transcript()
        transcript.pieces.append(piece)
        if function is not None:
            transcript.so_far += piece
            function(piece, transcript.so_far)
        return transcript

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        streamed = _whole(self._texts.pop(run_id, None))
        streamed_reasoning = _whole(self._reasonings.pop(run_id, None))
        generation = (
            response.generations[0][0] if response.generations and response.generations[0] else None
        )
        message = getattr(generation, "message", None)
        metadata = dict(getattr(message, "response_metadata", None) or {})
        event = StreamEvent(
            "done",
            run_id,
            text=(generation.text if generation is not None else "") or streamed,
            # A run that did not stream (a cached answer, say) has its thinking on the message.
            reasoning_text=streamed_reasoning
            or (reasoning_of(message) if isinstance(message, BaseMessage) else ""),
            usage=getattr(message, "usage_metadata", None),
            cost_usd=metadata.get("total_cost_usd"),
            model=metadata.get("model_name"),
            response_metadata=metadata,
        )
        if self._on_done is not None:
            self._on_done(event.text, event)
        self._publish(event)
        self._note_end(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._texts.pop(run_id, None)
        self._reasonings.pop(run_id, None)
        if self._on_error is not None:
            self._on_error(error)
        self._publish(StreamEvent("error", run_id, error=error))
        self._note_end(run_id)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._note_end(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._note_end(run_id)

    # --- delivery ----------------------------------------------------------------------------

    def _note_start(self, run_id: UUID, parent_run_id: UUID | None) -> None:
        if parent_run_id is None and self._root is None:
            self._root = run_id

    def _note_end(self, run_id: UUID) -> None:
        if run_id == self._root:
            self._root = None
            self._publish(_END)

    def _listening(self) -> bool:
        # Per token this spares building events that _publish would drop (functions given,
        # no events() consumer yet).
        return self._buffer or self._queue is not None

    def _publish(self, item: Any) -> None:
        with self._lock:
            if self._queue is None:
                if self._buffer:
                    self._pending.append(item)
                elif item is _END:
                    self._pending = [_END]  # only whether it ended matters, not how often
                return
            queue, loop = self._queue, self._loop
        assert loop is not None
        if loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            queue.put_nowait(item)
        else:  # a run in another thread: hand the event to the consumer's loop
            loop.call_soon_threadsafe(queue.put_nowait, item)


def _whole(transcript: _Transcript | None) -> str:
    return "".join(transcript.pieces) if transcript is not None else ""


def _token_events(
    run_id: UUID,
    message: AIMessageChunk | None,
    reasoning: str,
    thinking: _Transcript | None,
    thinking_count: int,
    text: str,
    written: _Transcript | None,
    written_count: int,
) -> Iterator[StreamEvent]:
    """A token's events, in their order: ``chunk``, ``reasoning``, ``content``."""
    if message is not None:
        yield StreamEvent("chunk", run_id, chunk=message)
    if thinking is not None:
        yield StreamEvent(
            "reasoning", run_id, reasoning=reasoning, reasoning_text=thinking.joined(thinking_count)
        )
    if written is not None:
        yield StreamEvent("content", run_id, content=text, text=written.joined(written_count))
