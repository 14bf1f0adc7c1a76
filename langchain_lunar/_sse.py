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


@dataclass(slots=True)
class ServerSentEvent:
    """One dispatched event.

    Attributes:
        data: The ``data:`` lines of the event, joined with ``"\\n"``.
        event: The ``event:`` field, or None when the event had none (a plain "message").
        id: The last event id seen so far in the stream, or None.
        retry: The reconnection time in milliseconds from the latest ``retry:`` field, or None.
    """

    # Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__,
    # and one of these is made per token.
    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental decoder: ``feed`` bytes as they arrive, then ``close`` at the end of the body."""

    __slots__ = ("_data", "_event", "_last_id", "_partial", "_retry", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._partial = b""  # the bytes after the last line end: a line still arriving
        self._skip_lf = False
        self._started = False
        self._data: list[bytes] = []
        self._event: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode ``chunk`` and return the events it completed, in order."""
        if not self._started:
            chunk = self._partial + chunk
            self._partial = b""
            if _BOM.startswith(chunk):
                self._partial = chunk  # all of it may still be the start of a BOM
                return []
            self._started = True
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        if self._skip_lf and chunk:
            # The previous piece ended in CR; an LF here completes that CRLF, not a blank line.
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            # CR and CRLF line ends are rare: make them LF, so one split serves every stream.
            self._skip_lf = chunk[-1:] == b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._partial:
            chunk = self._partial + chunk
        lines = chunk.split(b"\n")
        self._partial = lines.pop()
        return self._process(lines)

    def close(self) -> list[ServerSentEvent]:
        """End of body: return the event still pending, if any (see the module docstring)."""
        line, self._partial = self._partial, b""
        return self._process([line, b""] if line else [b""])

    def _process(self, lines: list[bytes]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        data = self._data
        for line in lines:
            if line.startswith(b"data:"):
                # The hot path: nearly every line of a completion stream is a data line.
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line:
                self._process_field(line)
            elif data:
                events.append(self._dispatch())
            else:
                self._event = None  # a blank line with no data: nothing to dispatch
        return events

    def _process_field(self, line: bytes) -> None:
        if line[:1] == b":":
            return  # a comment, such as a keep-alive
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

    def _dispatch(self) -> ServerSentEvent:
        data = self._data
        joined = data[0] if len(data) == 1 else b"\n".join(data)
        data.clear()
        event = ServerSentEvent(
            joined.decode("utf-8", errors="replace"), self._event, self._last_id, self._retry
        )
        self._event = None
        return event
