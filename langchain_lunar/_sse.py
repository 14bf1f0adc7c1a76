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
line ends the event, so an event spread over many reads costs time linear in its size.
"""

from __future__ import annotations

_BOM = b"\xef\xbb\xbf"

Event = tuple[bytes, "str | None"]
"""``(data, event)``: the joined ``data:`` lines, and the ``event:`` field or None."""


class SSEDecoder:
    """Incremental decoder: ``feed`` bytes as they arrive, then ``close`` at the end of the body."""

    __slots__ = ("_pending", "_skip_lf", "_started")

    def __init__(self) -> None:
        # The bytes since the last blank line, in the pieces they came in: an event arriving.
        self._pending: list[bytes] = []
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
                if chunk:
                    pending.append(chunk)
                return []
            pending.append(chunk)
            chunk = b"".join(pending)
            pending.clear()
        blocks = chunk.split(b"\n\n")
        rest = blocks.pop()  # what follows the last blank line: the next event, arriving
        if rest:
            pending.append(rest)
        events: list[Event] = []
        for block in blocks:
            # The hot path: a block of one data line is nearly every event of a completion.
            if block.startswith(b"data: ") and b"\n" not in block:
                events.append((block[6:], None))
            else:
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
