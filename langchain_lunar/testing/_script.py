"""Scripted steps: ``Fault`` (one step replacing the normal answer to one request) and the
thread-safe queues that hand steps out to requests in order."""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_lunar.testing._reply import Reply

FaultKind = Literal[
    "status",
    "stream_error",
    "disconnect",
    "no_done",
    "malformed",
    "slow",
    "stall",
    "keepalive_stall",
    "reply",
]

DEFAULT_STREAM_ERROR: dict[str, Any] = {
    "message": "Upstream overloaded",
    "type": "server_error",
    "code": 503,
}


def _check_after(after: int | None) -> None:
    if after is not None and (not isinstance(after, int) or after < 0):
        raise ValueError(f"after must be a non-negative int, got {after!r}")


def _check_seconds(name: str, value: float) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


@dataclass(frozen=True)
class Fault:
    """One scripted step; build it with the classmethods, not the constructor.

    Faults that only make sense for a stream (``stream_error``, ``disconnect``, ``no_done``,
    ``malformed``, ``keepalive_stall``) do the closest thing when the request is not
    streaming: ``stream_error`` answers with the error object as an HTTP error (status = its
    ``code`` if 400-599, else 500); ``disconnect`` closes the connection without any response;
    ``no_done`` is a normal reply; ``malformed`` sends ``line`` as a 200 ``application/json``
    body; ``keepalive_stall`` waits its ``seconds`` silently before the response headers (for
    ever when None, until the client leaves or the server stops), then answers normally.

    ``after`` counts the streamed deltas of the answer, one per chunk after the role chunk:
    reasoning pieces, text tokens (or refusal pieces), the annotations chunk, then tool-call
    chunks (see ``WireStyle.tool_fragment``), so a fault can strike inside a call's arguments.
    A mixed chunk (``WireStyle.mixed_chunk``) is one delta.
    """

    kind: FaultKind
    status_code: int = 200
    body: dict[str, Any] | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    after: int | None = None
    error: dict[str, Any] | None = None
    line: str = ""
    seconds: float = 0.0
    every: float = 0.0
    comment: str = ""
    scripted: Reply | None = None

    @classmethod
    def status(
        cls,
        code: int,
        *,
        body: dict[str, Any] | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """Answer with HTTP ``code``, extra ``headers`` (e.g. ``{"Retry-After": "1"}``) and
        ``body``: a dict is sent as JSON, a str as is (``text/plain``), None as the standard
        ``{"error": {...}}`` body for ``code``."""
        if not 200 <= code <= 599:
            raise ValueError(f"status code must be 200-599, got {code!r}")
        return cls("status", status_code=code, body=body, headers=dict(headers or {}))

    @classmethod
    def stream_error(cls, after: int = 0, error: dict[str, Any] | None = None) -> Fault:
        """Start a normal 200 stream, send ``after`` deltas (tokens, tool-call chunks), then
        the event ``data: {"error": error}`` (default: 503 "Upstream overloaded") and end the
        body cleanly, without finish chunk, usage or ``[DONE]``."""
        _check_after(after)
        return cls("stream_error", after=after, error=dict(error or DEFAULT_STREAM_ERROR))

    @classmethod
    def disconnect(cls, after: int = 0) -> Fault:
        """Stream the role chunk and ``after`` deltas (tokens, tool-call chunks), then close
        the TCP connection abruptly: no terminating chunk, so the client sees an incomplete
        body."""
        _check_after(after)
        return cls("disconnect", after=after)

    @classmethod
    def no_done(cls, after: int | None = None) -> Fault:
        """End the stream cleanly without ``[DONE]``. With ``after=None`` everything else is
        sent (finish chunk, usage); with ``after=n`` only the role chunk and n deltas."""
        _check_after(after)
        return cls("no_done", after=after)

    @classmethod
    def malformed(cls, after: int = 0, line: str = "data: {not json") -> Fault:
        """Stream ``after`` deltas, write ``line`` raw plus a blank line, then continue
        normally to ``[DONE]``."""
        _check_after(after)
        return cls("malformed", after=after, line=line)

    @classmethod
    def slow(cls, token_delay: float) -> Fault:
        """A normal reply with ``token_delay`` seconds before each streamed delta (token,
        reasoning piece, tool-call chunk...)."""
        _check_seconds("token_delay", token_delay)
        return cls("slow", seconds=token_delay)

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        """Wait ``seconds`` before sending any response headers, then answer normally."""
        _check_seconds("seconds", seconds)
        return cls("stall", seconds=seconds)

    @classmethod
    def keepalive_stall(
        cls,
        seconds: float | None,
        *,
        every: float = 1.0,
        after: int | None = None,
        comment: str = "ping",
    ) -> Fault:
        """Go silent in a 200 stream, sending only SSE comments ``: <comment>``, no data.

        With ``after=None`` the stall comes right after the response headers, before any
        chunk; with ``after=n`` after the role chunk and ``n`` deltas (all of them if there are
        fewer: then before the finish chunk). One comment goes out at once, then one every
        ``every`` seconds, for ``seconds`` seconds; then the answer goes on normally to
        ``[DONE]``. ``seconds=None`` pings until the client closes the connection (counted in
        ``disconnects``, noticed within about 50 ms even between comments) or the server stops
        (the connection is dropped then).
        """
        _check_after(after)
        if seconds is not None:
            _check_seconds("seconds", seconds)
        if not every > 0:
            raise ValueError(f"every must be > 0, got {every!r}")
        if not isinstance(comment, str) or "\n" in comment or "\r" in comment:
            raise ValueError(f"comment must be a str without line breaks, got {comment!r}")
        return cls(
            "keepalive_stall",
            after=after,
            seconds=math.inf if seconds is None else seconds,
            every=every,
            comment=comment,
        )

    @classmethod
    def reply(cls, text: str | Reply) -> Fault:
        """A one-off normal reply: ``text``, or a ``Reply`` (tool calls, reasoning...)."""
        if isinstance(text, str):
            text = Reply(text)
        if not isinstance(text, Reply):
            raise TypeError(f"Fault.reply takes a str or a Reply, got {text!r}")
        return cls("reply", scripted=text)


class Script:
    """Queues of scripted steps: one shared queue, plus one per model name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._any: deque[Fault] = deque()
        self._by_model: dict[str, deque[Fault]] = {}

    def add(self, steps: tuple[Fault | Reply | str, ...], model: str | None) -> None:
        """Append ``steps`` for ``model`` (None: any model); a str or a ``Reply`` step means
        ``Fault.reply(step)``."""
        faults: list[Fault] = []
        for step in steps:
            if isinstance(step, (str, Reply)):
                faults.append(Fault.reply(step))
            elif isinstance(step, Fault):
                faults.append(step)
            else:
                raise TypeError(f"a script step must be a Fault, a Reply or a str, got {step!r}")
        with self._lock:
            queue = self._any if model is None else self._by_model.setdefault(model, deque())
            queue.extend(faults)

    def take(self, model: str) -> Fault | None:
        """Pop the next step for a request for ``model``: its own queue first, then the shared
        one; None when both are empty."""
        with self._lock:
            own = self._by_model.get(model)
            if own:
                return own.popleft()
            if self._any:
                return self._any.popleft()
            return None
