"""A Server-Sent Events decoder that follows the WHATWG HTML "server-sent events" parsing rules.

https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

It is fed the body in whatever pieces the network delivers and returns each event as soon as
its closing blank line arrives. Line ends may be LF, CRLF or CR, even when a CRLF is split
between two pieces. One deliberate difference from the spec: at the end of the body, an event
that still lacks its closing blank line is dispatched instead of discarded, so a truncated
payload reaches the JSON parser and fails loudly rather than vanishing.
"""

from __future__ import annotations

from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event.

    Attributes:
        data: The ``data:`` lines of the event, joined with ``"\\n"``.
        event: The ``event:`` field, or None when the event had none (a plain "message").
        id: The last event id seen so far in the stream, or None.
        retry: The reconnection time in milliseconds from the latest ``retry:`` field, or None.
    """

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental decoder: ``feed`` bytes as they arrive, then ``close`` at the end of the body."""

    __slots__ = ("_data", "_event", "_last_id", "_partial", "_retry", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._partial = b""
        self._skip_lf = False
        self._started = False
        self._data: list[bytes] = []
        self._event: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode ``chunk`` and return the events it completed, in order."""
        if not chunk:
            return []
        if self._skip_lf:
            # The previous piece ended in CR; an LF here completes that CRLF, not a blank line.
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not self._started:
            self._started = True
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        if self._partial:
            chunk = self._partial + chunk
            self._partial = b""
        lines = chunk.splitlines(True)
        if not lines:
            return []
        last = lines[-1]
        if last[-1:] == b"\r":
            self._skip_lf = True
        elif last[-1:] != b"\n":
            self._partial = lines.pop()
        events: list[ServerSentEvent] = []
        for line in lines:
            event = self._process_line(line.rstrip(b"\r\n"))
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of body: return the event still pending, if any (see the module docstring)."""
        events: list[ServerSentEvent] = []
        if self._partial:
            line, self._partial = self._partial, b""
            event = self._process_line(line)
            if event is not None:
                events.append(event)
        event = self._process_line(b"")
        if event is not None:
            events.append(event)
        return events

    def _process_line(self, line: bytes) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(b"data:"):
            # The hot path: nearly every line of a completion stream is a data line.
            value = line[5:]
            self._data.append(value[1:] if value[:1] == b" " else value)
            return None
        if line[:1] == b":":
            return None  # a comment, such as a keep-alive
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)  # "data" with no colon: an empty data line
        elif name == b"event":
            self._event = value.decode("utf-8", errors="replace")
        elif name == b"id":
            if b"\x00" not in value:
                self._last_id = value.decode("utf-8", errors="replace")
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)
        # Any other field name is ignored, as the spec says.
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._event = None
            return None
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        event = ServerSentEvent(
            data.decode("utf-8", errors="replace"), self._event, self._last_id, self._retry
        )
        self._data = []
        self._event = None
        return event
