"""Files, audio and video in as the parts OpenAI-compatible servers take; images and audio out
as langchain-core's standard blocks, streamed (adding up with ``+``) and not."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage

from langchain_lunar import MalformedResponseError
from langchain_lunar._messages import to_lunar_messages
from langchain_lunar._responses import UNMAPPED_KEY, completion_to_result
from langchain_lunar._streaming import StreamAssembler

from .calls import CallWay, all_ways, answer, call, streaming_ways
from .helpers import merged, mock_model, sse_response

PDF = "JVBERi0xLjQK"
WAV = "UklGRiQAAABXQVZF"
PNG = "iVBORw0KGgo="
MP4 = "AAAAIGZ0eXBpc29t"


def parts_of(*blocks: dict[str, Any]) -> list[Any]:
    message = HumanMessage(content=[{"type": "text", "text": "look"}, *blocks])
    content = to_lunar_messages([message])[0]["content"]
    return content[1:]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "block",
    [
        {"type": "file", "base64": PDF, "mime_type": "application/pdf", "filename": "a.pdf"},
        {
            "type": "file",
            "source_type": "base64",
            "data": PDF,
            "mime_type": "application/pdf",
            "filename": "a.pdf",
        },
        {
            "type": "file",
            "base64": PDF,
            "mime_type": "application/pdf",
            "extras": {"filename": "a.pdf"},
        },
    ],
    ids=["v1", "v0", "filename-in-extras"],
)
def test_a_file_from_base64_becomes_a_data_url(block: dict[str, Any]) -> None:
    assert parts_of(block) == [
        {
            "type": "file",
            "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{PDF}"},
        }
    ]


def test_a_file_by_url_goes_as_its_url_with_a_filename() -> None:
    v1 = {"type": "file", "url": "https://example.com/docs/report.pdf?x=1"}
    v0 = {"type": "file", "source_type": "url", "url": "https://example.com/r"}
    nameless = {"type": "file", "base64": PDF, "mime_type": "application/pdf"}
    assert parts_of(v1, v0, nameless) == [
        {
            "type": "file",
            "file": {
                "filename": "report.pdf",
                "file_data": "https://example.com/docs/report.pdf?x=1",
            },
        },
        {"type": "file", "file": {"filename": "file", "file_data": "https://example.com/r"}},
        {
            "type": "file",
            "file": {"filename": "file.pdf", "file_data": f"data:application/pdf;base64,{PDF}"},
        },
    ]


@pytest.mark.parametrize(
    ("mime_type", "audio_format"),
    [("audio/wav", "wav"), ("audio/x-wav", "wav"), ("audio/mpeg", "mp3"), ("audio/flac", "flac")],
)
def test_audio_becomes_input_audio_with_its_format(mime_type: str, audio_format: str) -> None:
    v1 = {"type": "audio", "base64": WAV, "mime_type": mime_type}
    v0 = {"type": "audio", "source_type": "base64", "data": WAV, "mime_type": mime_type}
    wire = {"type": "input_audio", "input_audio": {"data": WAV, "format": audio_format}}
    assert parts_of(v1, v0, wire) == [wire, wire, wire]


def test_video_becomes_video_url_and_images_stay_as_they_are() -> None:
    by_url = {"type": "video", "url": "https://example.com/v.mp4"}
    by_data = {"type": "video", "base64": MP4, "mime_type": "video/mp4"}
    wire = {"type": "video_url", "video_url": {"url": "https://example.com/w.mp4"}}
    image = {"type": "image", "base64": PNG, "mime_type": "image/png"}
    image_url = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    assert parts_of(by_url, by_data, wire, image, image_url) == [
        {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}},
        {"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{MP4}"}},
        wire,
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        image_url,
    ]


@pytest.mark.parametrize(
    ("block", "why"),
    [
        ({"type": "file", "file_id": "file-abc"}, "file block that names a provider's file id"),
        ({"type": "file", "source_type": "id", "id": "file-abc"}, "provider's file id"),
        ({"type": "file", "file": {"file_id": "file-abc"}}, "names a provider's file id"),
        ({"type": "image", "file_id": "file-abc"}, "an image block that names"),
        ({"type": "audio", "url": "https://example.com/a.wav"}, "audio block given by URL"),
        ({"type": "audio", "file_id": "file-abc"}, "an audio block that names"),
        ({"type": "video", "file_id": "file-abc"}, "a video block that names"),
        ({"type": "audio", "base64": WAV}, "base64 data but no mime_type"),
        ({"type": "file", "base64": PDF}, "base64 data but no mime_type"),
        ({"type": "input_audio", "input_audio": {"data": WAV}}, "input_audio part without"),
        ({"type": "video_url", "video_url": "https://x"}, "video_url part without"),
    ],
)
def test_a_block_no_server_takes_is_named_before_any_request(
    block: dict[str, Any], why: str
) -> None:
    requests: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(500)

    llm = mock_model(record)
    message = HumanMessage(content=[{"type": "text", "text": "look"}, block])
    with pytest.raises(ValueError, match=r"messages\[0\]\.content\[1\] is ") as error:
        llm.invoke([message])
    assert why in str(error.value)
    assert requests == []


def sse(*deltas: dict[str, Any]) -> bytes:
    events = [
        {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": d, "finish_reason": None}]}
        for d in deltas
    ]
    events.append({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"


def streamed(body: bytes, audio_format: str | None = None) -> list[AIMessageChunk]:
    assembler = StreamAssembler("m", audio_format=audio_format)
    chunks = [*assembler.feed(body), *assembler.close()]
    return [c.message for c in chunks]  # type: ignore[misc]


def image_item(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def test_streamed_images_are_image_blocks_after_the_text() -> None:
    chunks = streamed(
        sse(
            {"content": "Here"},
            {"images": [image_item(f"data:image/png;base64,{PNG}")]},
            {"images": [image_item("https://example.com/b.webp")]},
            {"content": " they are"},
        )
    )
    total = merged(chunks)
    assert total.content_blocks == [
        {"type": "text", "text": "Here"},
        {"type": "image", "base64": PNG, "mime_type": "image/png", "index": "lc_image_0"},
        {"type": "image", "url": "https://example.com/b.webp", "index": "lc_image_1"},
        {"type": "text", "text": " they are"},
    ]
    assert total.text == "Here they are"
    assert UNMAPPED_KEY not in total.additional_kwargs


def test_streamed_audio_pieces_add_up_to_one_block() -> None:
    chunks = streamed(
        sse(
            {"role": "assistant", "content": None, "audio": {"id": "audio_1", "transcript": "Hel"}},
            {"audio": {"transcript": "lo"}},
            {"audio": {"data": WAV[:6]}},
            {"audio": {"data": WAV[6:]}},
            {"audio": {"id": "audio_1", "expires_at": 1700000000}},
        ),
        audio_format="wav",
    )
    blocks = merged(chunks).content_blocks
    assert blocks == [
        {
            "type": "audio",
            "index": "lc_audio",
            "id": "audio_1",
            "mime_type": "audio/wav",
            "base64": WAV,
            "extras": {"transcript": "Hello", "expires_at": 1700000000},
        }
    ]
    # Each chunk carries its own piece, for playing as it comes.
    pieces = [c.content[0]["base64"] for c in chunks if c.content and "base64" in c.content[0]]  # type: ignore[index]
    assert pieces == [WAV[:6], WAV[6:]]


def test_an_audio_format_of_the_answer_wins_and_a_second_id_is_kept_apart() -> None:
    chunks = streamed(
        sse(
            {"audio": {"id": "audio_1", "data": WAV, "format": "mp3"}},
            {"audio": {"id": "audio_2", "format": "wav"}},
        ),
        audio_format="wav",
    )
    total = merged(chunks)
    assert total.content_blocks[0]["mime_type"] == "audio/mpeg"  # type: ignore[typeddict-item]
    assert total.content_blocks[0]["id"] == "audio_1"
    assert total.additional_kwargs[UNMAPPED_KEY] == [
        {"delta": {"audio": {"id": "audio_2", "format": "wav"}}}
    ]


def completion(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "c1",
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }


def test_a_whole_answer_with_images_and_audio() -> None:
    message = {
        "role": "assistant",
        "content": "Look:",
        "images": [image_item(f"data:image/jpeg;base64,{PNG}")],
        "audio": {"id": "audio_1", "data": WAV, "transcript": "Look", "expires_at": 5},
    }
    result = completion_to_result(completion(message), "m", audio_format="mp3")
    assert result.generations[0].message.content == [
        {"type": "text", "text": "Look:"},
        {"type": "image", "base64": PNG, "mime_type": "image/jpeg"},
        {
            "type": "audio",
            "id": "audio_1",
            "base64": WAV,
            "mime_type": "audio/mpeg",
            "extras": {"transcript": "Look", "expires_at": 5},
        },
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("images", "data:image/png;base64,AAAA"),
        ("images", [{"type": "image_url", "image_url": "data:image/png;base64,AAAA"}]),
        ("images", [None]),
        ("audio", "UklGRg=="),
        ("audio", {"data": 5}),
        ("audio", {"transcript": ["a"]}),
    ],
)
@all_ways
async def test_media_of_the_wrong_shape_is_malformed(field: str, value: Any, way: CallWay) -> None:
    if way in ("stream", "astream"):
        body = sse({field: value})
        llm = mock_model(lambda _: sse_response(body))
    else:
        answer_body = completion({"role": "assistant", "content": "hi", field: value})
        llm = mock_model(lambda _: httpx.Response(200, json=answer_body))
    with pytest.raises(MalformedResponseError, match=f"{field}"):
        await call(llm, way)


@streaming_ways
async def test_the_requested_audio_format_names_the_mime_type(way: CallWay) -> None:
    body = sse({"audio": {"id": "a", "data": WAV}})
    llm = mock_model(lambda _: sse_response(body))
    total = await answer(llm, way, audio={"voice": "alloy", "format": "pcm16"})
    assert total.content_blocks[0]["mime_type"] == "audio/pcm"
