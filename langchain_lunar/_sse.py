"""A Server-Sent Events decoder that follows the WHATWG HTML "server-sent events" parsing rules.

https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

It is fed the body in whatever pieces the network delivers and returns each event as soon as
its closing blank line arrives, as ``(data, event)``: the event's ``data:`` lines joined with
``b"\\n"``, still bytes (the JSON parser reads bytes), and its ``event:`` field or None. Line
ends may be LF, CRLF or CR, even when a CRLF is split between two pieces. The ``id`` and
``retry`` fields serve reconnection, which ChatLunar never does (a failed request is sent again
whole), so they are ignored like unknown fields. One deliberate difference from the spec: at the
end of the body, an event that still lacks its closing blank line is dispatched instead of
discarded, so a truncated payload reaches the JSON parser and fails loudly rather than vanishing.

The bytes of an event still arriving are kept as a list of pieces and joined once, when a blank
line ends the event, so an event spread over many reads costs time linear in its size. They are
bounded: once more than ``max_event_bytes`` wait for their blank line, they are dropped and the
last event ``feed`` returns is ``TOO_LARGE`` (the events before it come first, as they arrived).
The bound is checked once per piece, never per event, so an event of one piece larger than the
bound may pass; one spread over more pieces cannot, and what is kept never passes the bound by
more than one piece.
"""

from __future__ import annotations

import re

_BOM = b"\xef\xbb\xbf"
_BLANK_RUNS = re.compile(b"\n\n\n+")

Event = tuple[bytes, "str | None"]
"""``(data, event)``: the joined ``data:`` lines, and the ``event:`` field or None."""

MAX_EVENT_BYTES = 128 * 1024 * 1024
"""The default bound of one event (ChatLunar's ``max_event_bytes``)."""

# A str of its own, never equal by identity to a name decoded from the stream.
_TOO_LARGE_NAME = "".join(("too ", "large"))
TOO_LARGE: Event = (b"", _TOO_LARGE_NAME)
"""The event ``feed`` ends with when an event passes ``max_event_bytes``: its data is no JSON, so
it takes the error path of whoever reads it, which tells it by its name (``is TOO_LARGE[1]``)."""


class SSEDecoder:
    """Incremental decoder: ``feed`` bytes as they arrive, then ``close`` at the end of the body."""

    __slots__ = ("_pending", "_pending_bytes", "_skip_lf", "_started", "max_event_bytes")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        # The bytes since the last blank line, in the pieces they came in: an event arriving.
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.max_event_bytes = max_event_bytes
        self._skip_lf = False
        self._started = False

    def feed(self, chunk: bytes) -> list[Event]:
        """Decode ``chunk`` and return the events it completed, in order."""
        if not self._started:
            chunk = b"".join(self._pending) + chunk
            self._pending.clear()
            if _BOM.startswith(chunk):
                if chunk:
                    self._pending.append(chunk)  # all of it may still be the start of a BOM
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
        pending = self._pending
        if pending:
            # A blank line may be split between the pieces: "\n" then "\n".
            if b"\n\n" not in chunk and not (chunk[:1] == b"\n" and pending[-1][-1:] == b"\n"):
                # A read within an event (the event spans reads): the only place it grows.
                self._pending_bytes += len(chunk)
                if self._pending_bytes > self.max_event_bytes:
                    pending.clear()  # the memory goes back at once; the stream ends here
                    return [TOO_LARGE]
                if chunk:
                    pending.append(chunk)
                return []
            pending.append(chunk)
            chunk = b"".join(pending)
            pending.clear()
        blocks = chunk.split(b"\n\n")
        if len(blocks) > len(chunk) >> 3:
            # Shorter blocks than any event: runs of extra blank lines, which dispatch nothing
            # but would each cost a block to look at (100 MiB of them, from 100 KiB of gzip,
            # seconds). Checked per read, not searched for, so that events pay nothing.
            blocks = _BLANK_RUNS.sub(b"\n\n", chunk).split(b"\n\n")
        rest = blocks.pop()  # what follows the last blank line: the next event, arriving
        if rest:
            pending.append(rest)
        self._pending_bytes = len(rest)
        events: list[Event] = []
        for block in blocks:
            # The hot path: a block of one data line is nearly every event of a completion.
            if block.startswith(b"data: ") and b"\n" not in block:
                events.append((block[6:], None))
            elif block:  # extra blank lines make empty blocks: nothing to decode
                _decode_block(block, events)
        return events

    def close(self) -> list[Event]:
        """End of body: return the event still pending, if any (see the module docstring)."""
        rest = b"".join(self._pending)
        self._pending.clear()
        events: list[Event] = []
        if self._started:  # else all that came is the start of a byte order mark
            _decode_block(rest, events)
        return events


def _decode_block(block: bytes, events: list[Event]) -> None:
    """Decode the lines of ``block``, which a blank line (or the end of the body) ends."""
    data: list[bytes] = []
    event: str | None = None
    for line in block.split(b"\n"):
        if not line:  # a blank line: blocks start with the extra ones a server may send
            if data:
                events.append((b"\n".join(data), event))
                data = []
            event = None
            continue
        if line[:1] == b":":
            continue  # a comment, such as a keep-alive
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)  # "data" with no colon: an empty data line
        elif name == b"event":
            event = value.decode("utf-8", errors="replace")
        # Any other field name (id and retry included, see the module docstring) is ignored.
    if data:
        events.append((data[0] if len(data) == 1 else b"\n".join(data), event))
