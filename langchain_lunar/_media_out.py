"""Images and audio a model returns, as langchain-core's standard content blocks.

Image generation models behind gateways return ``images`` on the message (or a delta): a list
of ``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``, each whole in
one delta. Audio models return ``audio``: ``{"id", "data", "transcript", "expires_at",
"format"?}``, and streamed, pieces of its base64 ``data`` and ``transcript`` across deltas.

They become ``{"type": "image", "base64", "mime_type"}`` (or ``"url"``) and ``{"type": "audio",
"id", "base64", "mime_type", "extras": {"transcript", "expires_at", ...}}`` blocks. The
transcript stays in the audio block's ``extras``: it is the audio's words, not text the model
wrote beside it (OpenAI sends ``content: null`` with it).

Streamed blocks carry an ``index`` (``"lc_audio"``, ``"lc_image_<n>"``), as langchain-core
merges list content by it: the audio pieces of a stream add up with ``+`` into one block (their
``base64`` and ``extras.transcript`` strings joined), each image stays a block of its own. So a
piece carries the audio's id, MIME type and other fields only the first time they are seen.
"""

from __future__ import annotations

from typing import Any

from langchain_lunar._shape import ShapeError

AUDIO_INDEX = "lc_audio"
"""The ``index`` of every streamed audio piece: one audio answer per stream."""

# ``format`` names whose MIME type is not ``audio/<format>``.
_AUDIO_MIME_TYPES = {"mp3": "audio/mpeg", "pcm16": "audio/pcm", "opus": "audio/opus"}
_AUDIO_STRINGS = ("id", "data", "transcript", "format")


def audio_mime_type(audio_format: str) -> str:
    """The MIME type of an audio ``format``: ``wav`` -> ``audio/wav``, ``mp3`` ->
    ``audio/mpeg``."""
    return _AUDIO_MIME_TYPES.get(audio_format, f"audio/{audio_format}")


def requested_audio_format(body: dict[str, Any]) -> str | None:
    """The audio format a request asks for (``"audio": {"format": "wav", ...}``), or None."""
    audio = body.get("audio")
    audio_format = audio.get("format") if type(audio) is dict else None
    return audio_format if type(audio_format) is str and audio_format else None


def image_blocks(images: Any, where: str) -> list[dict[str, Any]]:
    """The image blocks of a message's or delta's ``images`` (None: none); raises
    ``ShapeError`` for a list or item of the wrong shape."""
    if images is None:
        return []
    if type(images) is not list:
        raise ShapeError(f"a {where}.images that is not a list")
    blocks = []
    for position, item in enumerate(images):
        holder = item.get("image_url") if type(item) is dict else None
        url = holder.get("url") if type(holder) is dict else None
        if type(url) is not str or not url:
            raise ShapeError(
                f'a {where}.images[{position}] that is not {{"type": "image_url", '
                '"image_url": {"url": ...}}'
            )
        blocks.append(image_block(url))
    return blocks


def image_block(url: str) -> dict[str, Any]:
    """An image block of a URL: ``base64`` and ``mime_type`` of a base64 data URL, else
    ``url``."""
    if url.startswith("data:"):
        header, comma, data = url.partition(",")
        if comma and header.endswith(";base64"):
            mime_type = header[5:].split(";")[0]
            if mime_type:
                return {"type": "image", "base64": data, "mime_type": mime_type}
    return {"type": "image", "url": url}


def check_audio(audio: Any, where: str) -> dict[str, Any] | None:
    """A message's or delta's ``audio`` if it is an object whose id, data, transcript and
    format are strings (or absent), None for null; raises ``ShapeError`` otherwise."""
    if audio is None:
        return None
    if type(audio) is not dict:
        raise ShapeError(f"a {where}.audio that is not an object ({type(audio).__name__})")
    for name in _AUDIO_STRINGS:
        value = audio.get(name)
        if value is not None and type(value) is not str:
            raise ShapeError(
                f"a {where}.audio.{name} that is not a string ({type(value).__name__})"
            )
    return audio


def audio_block(audio: dict[str, Any], requested_format: str | None) -> dict[str, Any]:
    """The audio block of a whole (non-streamed) ``message.audio``, checked by
    ``check_audio``; its format is the answer's, else the one the request asked for."""
    block: dict[str, Any] = {"type": "audio"}
    if audio.get("id"):
        block["id"] = audio["id"]
    if audio.get("data"):
        block["base64"] = audio["data"]
    audio_format = audio.get("format") or requested_format
    if audio_format:
        block["mime_type"] = audio_mime_type(audio_format)
    extras = {
        name: value
        for name, value in audio.items()
        if value is not None and name not in ("id", "data", "format")
    }
    if extras:
        block["extras"] = extras
    return block


class StreamedMedia:
    """The media of one stream so far: numbers its images, and makes each ``delta.audio``
    a piece that adds up with the ones before it."""

    __slots__ = ("_audio_fields", "_audio_id", "_images", "_mime_type", "_requested_format")

    def __init__(self, requested_format: str | None) -> None:
        self._requested_format = requested_format
        self._images = 0
        self._audio_id: str | None = None
        self._mime_type: str | None = None  # as sent on the first piece that had one
        self._audio_fields: dict[str, Any] = {}  # the other fields, as first sent

    def image_pieces(self, blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``blocks`` (of ``image_blocks``), each with an index of its own."""
        for block in blocks:
            block["index"] = f"lc_image_{self._images}"
            self._images += 1
        return blocks

    def audio_piece(self, audio: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """The audio block piece of one ``delta.audio`` (checked by ``check_audio``), None if
        it adds nothing; and the fields that would not add up (a second id, format or value
        of a field already sent), for the chunk's ``unmapped_fields``."""
        block: dict[str, Any] = {"type": "audio", "index": AUDIO_INDEX}
        left: dict[str, Any] = {}
        audio_id = audio.get("id")
        if audio_id:
            if self._audio_id is None:
                self._audio_id = block["id"] = audio_id
            elif audio_id != self._audio_id:
                left["id"] = audio_id
        if audio.get("data"):
            block["base64"] = audio["data"]
        audio_format = audio.get("format")
        if self._mime_type is None:
            audio_format = audio_format or self._requested_format
            if audio_format:
                self._mime_type = block["mime_type"] = audio_mime_type(audio_format)
        elif audio_format and audio_mime_type(audio_format) != self._mime_type:
            left["format"] = audio_format
        extras: dict[str, Any] = {}
        if audio.get("transcript"):
            extras["transcript"] = audio["transcript"]
        for name, value in audio.items():
            if value is None or name in _AUDIO_STRINGS:
                continue
            if name not in self._audio_fields:
                self._audio_fields[name] = extras[name] = value
            elif self._audio_fields[name] != value:
                left[name] = value  # a later value: merged, it would be summed or joined
        if extras:
            block["extras"] = extras
        return (block if len(block) > 2 else None), left
