"""Files, audio, video and images in a message: LangChain's blocks to the parts servers take.

OpenAI-compatible servers take these content parts (see the protocol notes):
``{"type": "image_url", "image_url": {"url"}}``; ``{"type": "file", "file": {"filename",
"file_data"}}`` with a data URL (OpenRouter also takes a public URL there);
``{"type": "input_audio", "input_audio": {"data", "format"}}`` with base64 data only; and
OpenRouter's ``{"type": "video_url", "video_url": {"url"}}`` with a URL or a data URL.

LangChain's standard blocks (v1: ``{"type": "file", "base64": ..., "mime_type": ...}``; the
older v0 form: ``{"type": "file", "source_type": "base64", "data": ...}``) become those parts
here, before langchain-core's converter sees the message. A block no such server takes (a
provider's file id, audio by URL, base64 without its MIME type) is a ``ValueError`` naming the
block, before any request.
"""

from __future__ import annotations

import mimetypes
from typing import Any

# MIME types whose subtype is not the name ``input_audio.format`` uses.
_AUDIO_FORMATS = {
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/x-flac": "flac",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/x-aiff": "aiff",
    "audio/l16": "pcm16",
    "audio/pcm": "pcm16",
}

MEDIA_TYPES = frozenset({"image", "file", "audio", "video", "text-plain"})
"""Block types of LangChain's standard (v0 and v1) data blocks."""

WIRE_PART_TYPES = frozenset({"text", "image_url", "file", "input_audio", "video_url"})
"""The content part types ChatLunar sends."""


def audio_format(mime_type: str) -> str:
    """The ``input_audio.format`` of an audio MIME type: ``audio/wav`` -> ``wav``,
    ``audio/mpeg`` -> ``mp3``."""
    mime_type = mime_type.split(";")[0].strip().lower()
    known = _AUDIO_FORMATS.get(mime_type)
    if known is not None:
        return known
    subtype = mime_type.rpartition("/")[2]
    return subtype.removeprefix("x-")


def wire_content(content: list[Any], where: str) -> list[Any]:
    """``content`` with each media block in the wire form servers take; other parts as given.

    ``where`` names the message (``"messages[2]"``) in errors. Raises ``ValueError`` for a
    media block no OpenAI-compatible server takes.
    """
    return [
        wire_part(part, f"{where}.content[{index}]") if isinstance(part, dict) else part
        for index, part in enumerate(content)
    ]


def wire_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    """One block in the wire form (a media block converted, a wire part checked), or the
    block itself when it is no media block."""
    kind = block.get("type")
    if kind in MEDIA_TYPES and not _is_openai_file_part(block):
        return _convert(kind, block, where)
    if kind == "file":
        return _checked_file_part(block, where)
    if kind == "input_audio":
        audio = block.get("input_audio")
        if not (
            isinstance(audio, dict)
            and isinstance(audio.get("data"), str)
            and isinstance(audio.get("format"), str)
        ):
            raise ValueError(
                f'{where} is an input_audio part without {{"data": <base64>, "format": ...}}; '
                "give both as strings."
            )
    if kind == "video_url":
        video = block.get("video_url")
        if not (isinstance(video, dict) and isinstance(video.get("url"), str)):
            raise ValueError(
                f'{where} is a video_url part without {{"url": ...}}; give the video\'s URL '
                "or a data URL."
            )
    return block


def _is_openai_file_part(block: dict[str, Any]) -> bool:
    return block.get("type") == "file" and isinstance(block.get("file"), dict)


def _convert(kind: str, block: dict[str, Any], where: str) -> dict[str, Any]:
    source, value = _source(block)
    if source == "id":
        raise ValueError(
            f"{where} is {_a(kind)} block that names a provider's file id ({value!r}); servers "
            "behind Lunar cannot look it up. Send the file's bytes (base64) or a URL instead."
        )
    if source is None:
        raise ValueError(
            f"{where} is {_a(kind)} block without its data: give base64 (with mime_type) or url."
        )
    mime_type = block.get("mime_type")
    if mime_type is not None and not isinstance(mime_type, str):
        raise ValueError(f"{where} has a mime_type that is not a string: {mime_type!r}.")
    if source == "base64" and not mime_type:
        raise ValueError(
            f"{where} is {_a(kind)} block with base64 data but no mime_type; servers need it "
            f'(say "mime_type": "{_example_mime(kind)}").'
        )
    if source == "text":  # a text-plain block (or v0 plain-text file) with its text inline
        return {"type": "text", "text": value}
    data_url = f"data:{mime_type};base64,{value}" if source == "base64" else value
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": data_url}}
    if kind == "video":
        return {"type": "video_url", "video_url": {"url": data_url}}
    if kind == "audio":
        if source != "base64":
            raise ValueError(
                f"{where} is an audio block given by URL; servers take audio only as data "
                '(input_audio). Download it and send {"type": "audio", "base64": ..., '
                '"mime_type": ...} instead.'
            )
        assert mime_type  # checked above for base64
        return {
            "type": "input_audio",
            "input_audio": {"data": value, "format": audio_format(mime_type)},
        }
    # file, text-plain: a data URL, or a public URL (OpenRouter fetches it)
    return {
        "type": "file",
        "file": {"filename": _filename(block, mime_type, value, source), "file_data": data_url},
    }


def _source(block: dict[str, Any]) -> tuple[str | None, Any]:
    """Where a block's data is: ``("base64" | "url" | "id" | "text", value)``, of the v1 keys
    or the v0 ``source_type`` form; ``(None, None)`` when it has none."""
    source_type = block.get("source_type")
    if source_type is not None:  # v0: {"source_type": "base64", "data": ...}
        key = {"base64": "data", "url": "url", "id": "id", "text": "text"}.get(source_type)
        value = block.get(key) if key else None
        if key == "text" and value is None and isinstance(block.get("url"), str):
            return "url", block["url"]
        if not isinstance(value, str) or not value:
            return None, None
        return str(source_type), value
    for key, source in (("base64", "base64"), ("url", "url"), ("file_id", "id"), ("text", "text")):
        value = block.get(key)
        if isinstance(value, str) and value:
            return source, value
    return None, None


def _filename(block: dict[str, Any], mime_type: str | None, value: str, source: str) -> str:
    """The block's filename (v1 ``filename``, or in ``extras``/``metadata``), else the URL's
    last path segment, else ``file`` with the MIME type's extension."""
    for holder in (block, block.get("extras"), block.get("metadata")):
        if isinstance(holder, dict):
            name = holder.get("filename")
            if isinstance(name, str) and name:
                return name
    if source == "url":
        tail = value.split("?")[0].split("#")[0].rstrip("/").rpartition("/")[2]
        if tail and "." in tail:
            return tail
    extension = mimetypes.guess_extension(mime_type) if mime_type else None
    return "file" + (extension or "")


def _checked_file_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    """An OpenAI-form ``file`` part: refused with a provider file id, else checked."""
    file = block["file"]
    if "file_id" in file and "file_data" not in file:
        raise ValueError(
            f"{where} is a file part that names a provider's file id ({file['file_id']!r}); "
            "servers behind Lunar cannot look it up. Send the file's bytes (base64) or a URL "
            "instead."
        )
    if not isinstance(file.get("file_data"), str):
        raise ValueError(
            f'{where} is a file part without "file_data" (a data URL, or a public URL); give '
            "it as a string."
        )
    return block


def _example_mime(kind: str) -> str:
    return {
        "image": "image/png",
        "audio": "audio/wav",
        "video": "video/mp4",
        "text-plain": "text/plain",
    }.get(kind, "application/pdf")


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
