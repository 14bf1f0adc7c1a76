"""The SSE decoder against the WHATWG parsing rules."""

from __future__ import annotations

import random
import re

import pytest

from langchain_lunar._sse import Event, SSEDecoder


def decode(*pieces: bytes) -> list[Event]:
    decoder = SSEDecoder()
    events = [event for piece in pieces for event in decoder.feed(piece)]
    return events + decoder.close()


def datas(events: list[Event]) -> list[str]:
    return [data.decode() for data, _ in events]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(eol: bytes) -> None:
    body = b"data: one" + eol + eol + b"data: two" + eol + eol
    assert datas(decode(body)) == ["one", "two"]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_split_byte_by_byte(eol: bytes) -> None:
    body = b": hi" + eol + b'data: {"a":' + eol + b"data: 1}" + eol + eol + b"data: x" + eol + eol
    pieces = [body[i : i + 1] for i in range(len(body))]
    assert datas(decode(*pieces)) == ['{"a":\n1}', "x"]


def test_crlf_split_between_pieces_is_one_line_end() -> None:
    # A CR at the end of one piece and the LF at the start of the next must not make a blank line.
    events = decode(b"data: a\r", b"\ndata: b\r\n\r\n")
    assert datas(events) == ["a\nb"]


def test_event_is_dispatched_as_soon_as_its_blank_line_arrives() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\n") == [(b"a", None)]
    assert decoder.feed(b"data: b\r") == []
    assert decoder.feed(b"\r") == [(b"b", None)]


def test_comments_are_ignored() -> None:
    assert datas(decode(b": keep-alive\n\ndata: x\n: more\n\n")) == ["x"]


def test_event_type_resets_after_each_dispatch_and_id_and_retry_are_ignored() -> None:
    events = decode(b"event: message\nid: 7\nretry: 3000\ndata: a\n\ndata: b\n\n")
    assert events == [(b"a", "message"), (b"b", None)]


def test_a_retry_field_of_any_length_is_ignored() -> None:
    # Python refuses to convert an integer string this long; the field serves reconnection only.
    assert decode(b"retry: " + b"9" * 10_000 + b"\ndata: a\n\n") == [(b"a", None)]


def test_field_forms_from_the_spec() -> None:
    events = decode(b"data:no-space\n\ndata\n\ndata:  two-spaces\n\nid: a\x00b\ndata: z\n\n")
    assert datas(events) == ["no-space", "", " two-spaces", "z"]


def test_an_event_over_many_pieces_is_joined_once() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: " + b"x" * 10) == []
    for _ in range(1000):
        assert decoder.feed(b"y" * 10) == []
    assert decoder.feed(b"z\n") == []
    assert decoder.feed(b"\ndata: next\n\n") == [
        (b"x" * 10 + b"y" * 10_000 + b"z", None),
        (b"next", None),
    ]


def test_unknown_fields_and_events_without_data_dispatch_nothing() -> None:
    assert decode(b"foo: bar\n\nevent: ping\n\n") == []


def test_byte_order_mark_is_skipped() -> None:
    assert datas(decode(b"\xef\xbb\xbfdata: x\n\n")) == ["x"]


def test_utf8_split_inside_a_character() -> None:
    body = "data: héllo 🌙\n\n".encode()
    cut = body.index("🌙".encode()) + 2
    assert datas(decode(body[:cut], body[cut:])) == ["héllo 🌙"]


def test_unterminated_event_at_end_of_body_is_dispatched_not_dropped() -> None:
    # The spec discards it; we hand it on so a truncated payload fails loudly downstream.
    assert datas(decode(b"data: [DONE]")) == ["[DONE]"]
    assert datas(decode(b'data: {"a": 1}\n')) == ['{"a": 1}']


def test_line_separators_inside_json_strings_are_not_line_ends() -> None:
    # U+2028 and U+0085 may appear raw in JSON text; only CR and LF end an SSE line.
    payload = '{"t": "a\u2028b\u0085c"}'
    assert datas(decode(f"data: {payload}\n\n".encode())) == [payload]


def _reference(body: bytes) -> list[Event]:
    """The spec's algorithm run on the whole body at once, line by line, written for clarity
    (without the id and retry fields, which ChatLunar ignores)."""
    text = body.removeprefix(b"\xef\xbb\xbf")
    lines = re.split(rb"\r\n|\r|\n", text)
    lines.pop()  # what follows the last line end is an unfinished line...
    if not text.endswith((b"\r", b"\n")):
        lines.append(re.split(rb"\r\n|\r|\n", text)[-1])  # ...handed on at the end (our rule)
    lines.append(b"")
    events: list[Event] = []
    data: list[bytes] = []
    event_type: str | None = None
    for line in lines:
        if line == b"":
            if data:
                events.append((b"\n".join(data), event_type))
            data, event_type = [], None
            continue
        if line.startswith(b":"):
            continue
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event_type = value.decode("utf-8", errors="replace")
    return events


_PARTS = [
    b'data: {"a": 1}',
    b"data:x",
    b"data",
    b"data: two\xc3\xa9",
    b": comment",
    b"event: error",
    b"id: 4",
    b"retry: 150",
    b"foo: bar",
    b"",
]
_ENDS = [b"\n", b"\r\n", b"\r"]


@pytest.mark.parametrize("seed", range(300))
def test_any_split_of_any_body_decodes_as_the_spec_says(seed: int) -> None:
    rng = random.Random(seed)
    body = b"".join(rng.choice(_PARTS) + rng.choice(_ENDS) for _ in range(rng.randint(1, 30)))
    if rng.random() < 0.2:
        body = b"\xef\xbb\xbf" + body
    if rng.random() < 0.3:
        body = body.rstrip(b"\r\n")  # a body cut short
    cuts = sorted(rng.sample(range(len(body) + 1), min(len(body) + 1, rng.randint(0, 12))))
    pieces = [body[start:end] for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    assert decode(*pieces) == _reference(body)
