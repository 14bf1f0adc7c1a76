"""``Fault``: one scripted step replacing the normal answer to one request.

Each kind of fault is a subclass that overrides the hooks the server calls at fixed points of
a request; the base class's hooks do nothing, so ``NO_FAULT`` (a bare ``Fault``) is the
normal answer. Adding a kind of fault is adding one subclass (and a classmethod to build it).
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from langchain_lunar.testing._protocol import error_body
from langchain_lunar.testing._reply import Reply
from langchain_lunar.testing._sse import WireStyle

DEFAULT_STREAM_ERROR: dict[str, Any] = {
    "message": "Upstream overloaded",
    "type": "server_error",
    "code": 503,
}


class Exchange(Protocol):
    """The request being answered, as a fault acts on it; the HTTP handler implements it."""

    def send_json(
        self, status: int, payload: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        """Answer with ``status`` and ``payload`` as JSON, plus ``headers``."""

    def send_bytes(
        self, status: int, data: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        """Answer with ``status`` and the body ``data``, plus ``headers``."""

    def send_endless(self, status: int, start: bytes, block: bytes, content_type: str) -> None:
        """Answer with ``status`` and a chunked body of ``start``, then ``block`` again and
        again until the client leaves or the server stops."""

    def drop(self) -> None:
        """Close the connection now, sending nothing more."""

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; False if the server is stopping."""

    def idle(self, seconds: float) -> bool:
        """Sleep ``seconds`` watching the connection: False if the server is stopping; raises
        ``OSError`` as soon as the client has closed it."""


class EventSink(Protocol):
    """Where a stream is written; the HTTP handler implements it over chunked encoding."""

    def event(self, payload: dict[str, Any] | str) -> None:
        """Write one SSE event carrying a JSON object or a raw string like ``[DONE]``."""

    def raw(self, text: str) -> None:
        """Write ``text`` as is (for malformed lines)."""

    def comment(self, text: str) -> None:
        """Write the comment-only block ``: <text>`` (a keep-alive ping)."""

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; False if the server is stopping and the stream must end."""

    def idle(self, seconds: float) -> bool:
        """Sleep ``seconds`` watching the connection: False if the server is stopping; raises
        ``OSError`` as soon as the client has closed it."""


class Then(enum.Enum):
    """What a stream does after a fault acted in it."""

    GO_ON = "go on"  # send the rest as usual
    END = "end"  # end the body cleanly now (terminating chunk, nothing else)
    DROP = "drop"  # drop the connection without ending the body


def _check_after(after: int | None) -> None:
    if after is not None and (type(after) is not int or after < 0):  # not a bool either
        raise ValueError(f"after must be a non-negative int, got {after!r}")


def _check_seconds(name: str, value: float) -> None:
    if not value >= 0:  # NaN too
        raise ValueError(f"{name} must be >= 0, got {value!r}")


class Fault:
    """One scripted step; build it with the classmethods, not the constructor.

    Faults that only make sense for a stream (``stream_error``, ``disconnect``, ``no_done``,
    ``malformed``, ``keepalive_stall``, ``think``) do the closest thing when the request is not
    streaming: ``stream_error`` answers with the error object as an HTTP error (status = its
    ``code`` if 400-599, else 500); ``disconnect`` closes the connection without any response;
    ``no_done`` is a normal reply; ``malformed`` sends ``line`` as a 200 ``application/json``
    body; ``keepalive_stall`` waits its ``seconds`` silently before the response headers (for
    ever when None, until the client leaves or the server stops), then answers normally.

    ``after`` counts the streamed deltas of the answer, one per chunk after the role chunk:
    reasoning pieces, text tokens (or refusal pieces), the annotations chunk, then tool-call
    chunks (see ``WireStyle.tool_fragment``), so a fault can strike inside a call's arguments.
    A mixed chunk (``WireStyle.mixed_chunk``) is one delta.

    The server calls the hooks below in the order they are listed (``instead_of_completion``
    only without streaming; ``open_stream`` and ``at_delta`` only with it) and reads
    ``sends_done`` at the end of a stream. The base class's hooks change nothing: a subclass
    overrides those its fault needs.
    """

    sends_done: ClassVar[bool] = True
    """Whether a stream that runs to its end sends ``[DONE]`` (if its ``WireStyle`` does)."""

    def before_reply(self, exchange: Exchange, streaming: bool) -> bool:
        """Act before the reply is made: True when that dealt with the request (answered it
        or dropped the connection), False to go on."""
        return False

    def scripted_reply(self) -> Reply | None:
        """The reply to send instead of the server's, or None."""
        return None

    def token_delay(self, default: float) -> float:
        """Seconds before each streamed delta, given the server's ``default``."""
        return default

    def instead_of_completion(self, exchange: Exchange) -> bool:
        """Not streaming, the reply made: True when this answered instead of the completion
        (or dropped the connection)."""
        return False

    def open_stream(self, sink: EventSink) -> bool:
        """Streaming, after the response headers and before any chunk: False drops the
        connection."""
        return True

    def at_delta(self, index: int, total: int, sink: EventSink, style: WireStyle) -> Then:
        """Streaming, before the delta ``index`` of ``total`` (and once more with ``index ==
        total``, before the finish chunk): what the stream does next."""
        return Then.GO_ON

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
        if type(code) is not int or not 200 <= code <= 599:
            raise ValueError(f"status code must be 200-599, got {code!r}")
        return _StatusFault(code, body, dict(headers or {}))

    @classmethod
    def stream_error(cls, after: int = 0, error: dict[str, Any] | None = None) -> Fault:
        """Start a normal 200 stream, send ``after`` deltas (tokens, tool-call chunks), then
        the event ``data: {"error": error}`` (default: 503 "Upstream overloaded") and end the
        body cleanly, without finish chunk, usage or ``[DONE]``."""
        _check_after(after)
        return _StreamErrorFault(after, dict(error or DEFAULT_STREAM_ERROR))

    @classmethod
    def disconnect(cls, after: int = 0) -> Fault:
        """Stream the role chunk and ``after`` deltas (tokens, tool-call chunks), then close
        the TCP connection abruptly: no terminating chunk, so the client sees an incomplete
        body."""
        _check_after(after)
        return _DisconnectFault(after)

    @classmethod
    def no_done(cls, after: int | None = None) -> Fault:
        """End the stream cleanly without ``[DONE]``. With ``after=None`` everything else is
        sent (finish chunk, usage); with ``after=n`` only the role chunk and n deltas."""
        _check_after(after)
        return _NoDoneFault(after)

    @classmethod
    def malformed(cls, after: int = 0, line: str = "data: {not json") -> Fault:
        """Stream ``after`` deltas, write ``line`` raw plus a blank line, then continue
        normally to ``[DONE]``."""
        _check_after(after)
        return _MalformedFault(after, line)

    @classmethod
    def slow(cls, token_delay: float) -> Fault:
        """A normal reply with ``token_delay`` seconds before each streamed delta (token,
        reasoning piece, tool-call chunk...)."""
        _check_seconds("token_delay", token_delay)
        return _SlowFault(token_delay)

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        """Wait ``seconds`` before sending any response headers, then answer normally."""
        _check_seconds("seconds", seconds)
        return _StallFault(seconds)

    @classmethod
    def think(
        cls,
        seconds: float,
        *,
        headers: bool = False,
        ping_every: float | None = None,
        comment: str = "ping",
    ) -> Fault:
        """A reasoning model that thinks ``seconds`` in silence before its first token, then
        answers as usual (streamed, or the whole answer at once).

        What the client sees meanwhile, streaming:

        - by default nothing at all, not even the response headers: as OpenAI's chat
          completions while a reasoning model thinks, and gateways (LiteLLM) that send their
          headers with the first event;
        - ``headers=True``: the 200 response headers at once, then no byte until the first
          event;
        - ``ping_every=x``: the headers, then the comment ``: <comment>`` at once and every
          ``x`` seconds (as gateways that keep the connection alive), and no data event.

        Not streaming, the whole answer comes after ``seconds``. The server watches the
        connection while it thinks: a client that gives up ends the thinking at once (counted
        in ``disconnects`` once the headers went out).
        """
        _check_seconds("seconds", seconds)
        if ping_every is not None:
            return cls.keepalive_stall(seconds, every=ping_every, comment=comment)
        return _ThinkFault(seconds, headers)

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
        return _KeepaliveStallFault(after, math.inf if seconds is None else seconds, every, comment)

    @classmethod
    def endless_line(cls, after: int = 0) -> Fault:
        """Stream ``after`` deltas, then ``data: `` and a line that never ends (``x`` after
        ``x``, 64 KiB a write) until the client leaves or the server stops: for rehearsing
        ``max_event_bytes``. Not streaming: a 200 ``application/json`` body that never ends.
        (A very large valid event needs no fault: a reply word is one delta, so
        ``server.script("A" * (32 << 20))`` streams one event of 32 MiB of content.)"""
        _check_after(after)
        return _EndlessLineFault(after)

    @classmethod
    def reply(cls, text: str | Reply) -> Fault:
        """A one-off normal reply: ``text``, or a ``Reply`` (tool calls, reasoning...)."""
        if isinstance(text, str):
            text = Reply(text)
        if not isinstance(text, Reply):
            raise TypeError(f"Fault.reply takes a str or a Reply, got {text!r}")
        return _ReplyFault(text)


NO_FAULT = Fault()
"""The step of a request with nothing scripted: the normal answer."""


@dataclass(frozen=True)
class _StatusFault(Fault):
    status_code: int
    body: dict[str, Any] | str | None
    headers: dict[str, str]

    def before_reply(self, exchange: Exchange, streaming: bool) -> bool:
        if isinstance(self.body, str):
            data = self.body.encode("utf-8")
            exchange.send_bytes(self.status_code, data, "text/plain; charset=utf-8", self.headers)
        else:
            payload = self.body if self.body is not None else error_body(self.status_code)
            exchange.send_json(self.status_code, payload, self.headers)
        return True


@dataclass(frozen=True)
class _StallFault(Fault):
    seconds: float

    def before_reply(self, exchange: Exchange, streaming: bool) -> bool:
        if exchange.wait(self.seconds):
            return False
        exchange.drop()  # the server is stopping
        return True


@dataclass(frozen=True)
class _ThinkFault(Fault):
    seconds: float
    headers: bool  # whether the response headers go out before the thinking

    def before_reply(self, exchange: Exchange, streaming: bool) -> bool:
        if (streaming and self.headers) or exchange.idle(self.seconds):
            return False
        exchange.drop()  # the server is stopping
        return True

    def open_stream(self, sink: EventSink) -> bool:
        return not self.headers or sink.idle(self.seconds)


@dataclass(frozen=True)
class _SlowFault(Fault):
    seconds: float

    def token_delay(self, default: float) -> float:
        return self.seconds


@dataclass(frozen=True)
class _ReplyFault(Fault):
    scripted: Reply

    def scripted_reply(self) -> Reply | None:
        return self.scripted


@dataclass(frozen=True)
class _CutFault(Fault):
    """A fault that strikes in a stream after ``after`` deltas (after all of them if there
    are fewer), or nowhere there when ``after`` is None."""

    after: int | None

    def at_delta(self, index: int, total: int, sink: EventSink, style: WireStyle) -> Then:
        if self.after is None or index != min(self.after, total):
            return Then.GO_ON
        return self.strike(sink, style)

    def strike(self, sink: EventSink, style: WireStyle) -> Then:
        """What the fault does where it strikes, and what the stream does next."""
        return Then.GO_ON


@dataclass(frozen=True)
class _StreamErrorFault(_CutFault):
    error: dict[str, Any]

    def instead_of_completion(self, exchange: Exchange) -> bool:
        code = self.error.get("code")
        status = code if isinstance(code, int) and 400 <= code <= 599 else 500
        exchange.send_json(status, {"error": self.error})
        return True

    def strike(self, sink: EventSink, style: WireStyle) -> Then:
        sink.event({"error": self.error})
        return Then.END


@dataclass(frozen=True)
class _DisconnectFault(_CutFault):
    def instead_of_completion(self, exchange: Exchange) -> bool:
        exchange.drop()
        return True

    def strike(self, sink: EventSink, style: WireStyle) -> Then:
        return Then.DROP


@dataclass(frozen=True)
class _NoDoneFault(_CutFault):
    sends_done: ClassVar[bool] = False

    def strike(self, sink: EventSink, style: WireStyle) -> Then:
        return Then.END


@dataclass(frozen=True)
class _MalformedFault(_CutFault):
    line: str

    def instead_of_completion(self, exchange: Exchange) -> bool:
        exchange.send_bytes(200, self.line.encode("utf-8"), "application/json")
        return True

    def strike(self, sink: EventSink, style: WireStyle) -> Then:
        # The raw line, then carry on as if nothing happened.
        sink.raw(self.line + style.line_ending + style.line_ending)
        return Then.GO_ON


@dataclass(frozen=True)
class _KeepaliveStallFault(_CutFault):
    seconds: float  # inf: until the client or the server ends it
    every: float
    comment: str

    def before_reply(self, exchange: Exchange, streaming: bool) -> bool:
        # Nothing to ping in a JSON body: wait silently, as a stall does.
        if streaming or exchange.idle(self.seconds):
            return False
        exchange.drop()  # the server is stopping
        return True

    def open_stream(self, sink: EventSink) -> bool:
        return self.after is not None or self._ping(sink)

    def strike(self, sink: EventSink, style: WireStyle) -> Then:
        return Then.GO_ON if self._ping(sink) else Then.DROP

    def _ping(self, sink: EventSink) -> bool:
        """Ping ``comment`` at once and then every ``every`` seconds until ``seconds`` have
        passed (True: go on) or the server stops (False)."""
        deadline = time.monotonic() + self.seconds
        while True:
            sink.comment(self.comment)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if not sink.idle(min(self.every, remaining)):
                return False
            if time.monotonic() >= deadline:
                return True


_ENDLESS_BLOCK = "x" * 65536


@dataclass(frozen=True)
class _EndlessLineFault(_CutFault):
    def instead_of_completion(self, exchange: Exchange) -> bool:
        start = b'{"id": "chatcmpl-endless", "choices": [], "padding": "'
        exchange.send_endless(200, start, _ENDLESS_BLOCK.encode(), "application/json")
        return True

    def strike(self, sink: EventSink, style: WireStyle) -> Then:
        sink.raw("data: ")
        while sink.wait(0):  # until the server stops; a client that leaves raises OSError
            sink.raw(_ENDLESS_BLOCK)
        return Then.DROP
