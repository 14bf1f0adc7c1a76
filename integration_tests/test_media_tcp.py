"""Files, audio and video in, images and audio out, over real TCP with the local server, which
validates each part as OpenAI-compatible servers do; sync and async, streamed and not."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from langchain_lunar import BadRequestError
from langchain_lunar.testing import Audio, Reply
from tests.calls import STREAMING, CallWay, all_ways, answer

from .conftest import ServerFactory, model_for

PDF = base64.b64encode(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n").decode()
WAV = base64.b64encode(b"RIFF" + bytes(range(256)) * 40).decode()  # 10 kB: several pieces
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(300)).decode()
MP4 = base64.b64encode(b"\x00\x00\x00 ftypisom").decode()

EVERY_KIND = HumanMessage(
    content=[
        {"type": "text", "text": "What is in these?"},
        {"type": "file", "base64": PDF, "mime_type": "application/pdf", "filename": "a.pdf"},
        {"type": "file", "url": "https://example.com/report.pdf"},
        {"type": "file", "source_type": "base64", "data": PDF, "mime_type": "application/pdf"},
        {"type": "audio", "base64": WAV, "mime_type": "audio/wav"},
        {"type": "audio", "source_type": "base64", "data": WAV, "mime_type": "audio/mpeg"},
        {"type": "video", "url": "https://example.com/clip.mp4"},
        {"type": "video", "base64": MP4, "mime_type": "video/mp4"},
        {"type": "image", "base64": PNG, "mime_type": "image/png"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]
)


@all_ways
async def test_every_kind_of_part_reaches_the_server_in_its_wire_form(
    make_server: ServerFactory, way: CallWay
) -> None:
    server = make_server(reply="Seen.")
    message = await answer(model_for(server), way, [EVERY_KIND])
    assert message.text == "Seen."  # the server validated every part: no 400
    parts = server.requests[-1].body["messages"][0]["content"]  # type: ignore[index]
    assert [p["type"] for p in parts] == [
        "text",
        "file",
        "file",
        "file",
        "input_audio",
        "input_audio",
        "video_url",
        "video_url",
        "image_url",
        "image_url",
    ]
    assert parts[1]["file"] == {
        "filename": "a.pdf",
        "file_data": f"data:application/pdf;base64,{PDF}",
    }
    assert parts[2]["file"] == {
        "filename": "report.pdf",
        "file_data": "https://example.com/report.pdf",
    }
    assert parts[4]["input_audio"] == {"data": WAV, "format": "wav"}
    assert parts[5]["input_audio"]["format"] == "mp3"
    assert parts[7]["video_url"] == {"url": f"data:video/mp4;base64,{MP4}"}


@pytest.mark.parametrize(
    ("part", "problem"),
    [
        (
            {
                "type": "input_audio",
                "input_audio": {"data": "data:audio/wav;base64,AA==", "format": "wav"},
            },
            "must be base64",
        ),
        ({"type": "input_audio", "input_audio": {"data": WAV, "format": "midi"}}, "format"),
        ({"type": "file", "file": {"filename": "a.pdf", "file_data": "JVBER"}}, "file_data"),
        ({"type": "file", "file": {"file_id": "file-1"}}, "file_id"),
        ({"type": "video_url", "video_url": {"url": f"data:image/png;base64,{PNG}"}}, "video/"),
        ({"type": "input_video", "url": "x"}, "type"),
    ],
)
def test_the_server_refuses_a_part_of_the_wrong_form(
    make_server: ServerFactory, part: dict[str, Any], problem: str
) -> None:
    import httpx

    server = make_server()
    body = {"model": "m", "messages": [{"role": "user", "content": [part]}]}
    response = httpx.post(
        f"{server.base_url}/chat/completions", json=body, headers={"x-api-key": "sk-local"}
    )
    assert response.status_code == 400
    assert problem in response.json()["error"]["message"]


def test_a_refused_part_is_a_bad_request_error(make_server: ServerFactory) -> None:
    # A part the client passes through as given, which the server validates and refuses.
    server = make_server()
    part = {"type": "input_audio", "input_audio": {"data": WAV, "format": "midi"}}
    with pytest.raises(BadRequestError, match="format"):
        model_for(server).invoke([HumanMessage(content=[part])])


@all_ways
async def test_generated_images_arrive_as_image_blocks(
    make_server: ServerFactory, way: CallWay
) -> None:
    images = (f"data:image/png;base64,{PNG}", "https://example.com/generated.webp")
    server = make_server(reply=Reply("Here you go.", images=images))
    message = await answer(model_for(server), way)
    blocks = [{k: v for k, v in block.items() if k != "index"} for block in message.content_blocks]
    assert blocks == [
        {"type": "text", "text": "Here you go."},
        {"type": "image", "base64": PNG, "mime_type": "image/png"},
        {"type": "image", "url": "https://example.com/generated.webp"},
    ]
    assert message.text == "Here you go."


@all_ways
async def test_spoken_audio_arrives_as_one_audio_block(
    make_server: ServerFactory, way: CallWay
) -> None:
    server = make_server(reply=Reply(audio=Audio(WAV, "Hello from the Moon.", id="audio_7")))
    message = await answer(
        model_for(server),
        way,
        modalities=["text", "audio"],
        audio={"voice": "alloy", "format": "wav"},
    )
    [block] = message.content_blocks
    assert block["type"] == "audio"
    assert (block["id"], block["base64"], block["mime_type"]) == ("audio_7", WAV, "audio/wav")
    assert block["extras"]["transcript"] == "Hello from the Moon."
    assert isinstance(block["extras"]["expires_at"], int)
    assert message.text == ""  # the transcript is the audio's, not text beside it
    if way in STREAMING:
        assert "unmapped_fields" not in message.additional_kwargs


@all_ways
async def test_the_format_an_answer_names_wins(make_server: ServerFactory, way: CallWay) -> None:
    server = make_server(reply=Reply(audio=Audio(WAV, "Hi.", format="mp3")))
    message = await answer(model_for(server), way)  # no format asked for
    assert message.content_blocks[0]["mime_type"] == "audio/mpeg"


@all_ways
async def test_an_audio_answer_goes_back_by_its_id(
    make_server: ServerFactory, way: CallWay
) -> None:
    server = make_server(reply=Reply("Look.", audio=Audio(WAV, "Look.", id="audio_9")))
    llm = model_for(server)
    said = await answer(llm, way, audio={"voice": "alloy", "format": "wav"})
    server.script("Sure.")
    await answer(llm, way, [HumanMessage("hi"), said, HumanMessage("again")])
    sent = server.requests[-1].body["messages"][1]  # type: ignore[index]
    # OpenAI takes an earlier spoken answer back by id, never as data from the assistant.
    assert sent["audio"] == {"id": "audio_9"}
    assert sent["content"] == "Look."


@all_ways
async def test_a_megabyte_image_arrives_whole(make_server: ServerFactory, way: CallWay) -> None:
    big = base64.b64encode(bytes(range(256)) * 4096).decode()  # 1 MiB of image, 1.4 MB of text
    server = make_server(reply=Reply("Drawn.", images=[f"data:image/png;base64,{big}"]))
    message = await answer(model_for(server), way)
    image = message.content_blocks[1]
    assert (image["type"], image["mime_type"]) == ("image", "image/png")
    assert image["base64"] == big
