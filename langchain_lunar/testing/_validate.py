"""Request validation: why a chat-completions request body must get a 400, or None.

Each message names the offending field (``'messages[2].tool_call_id'``), as real
OpenAI-compatible servers do. Only the fields this server acts on, and the tool-calling fields
whose shape real servers enforce, are checked; everything else is accepted, as a permissive
server would.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

VALID_ROLES = ("system", "user", "assistant", "tool", "developer")

_TOOL_CHOICE_WORDS = ("none", "auto", "required")
_TOOL_CHOICE_FORMS = '"none", "auto", "required" or {"type": "function", "function": {"name": ...}}'
_RESPONSE_FORMATS = ("text", "json_object", "json_schema")
PART_TYPES = ("text", "image_url", "file", "input_audio", "video_url")
"""The content part types a user message may hold."""
AUDIO_FORMATS = ("wav", "mp3", "aiff", "aac", "ogg", "flac", "m4a", "pcm16", "pcm24")
"""The ``input_audio.format`` values taken (OpenAI's and OpenRouter's)."""
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;base64,(.*)", re.DOTALL)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_name(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def validate_request(body: Any) -> str | None:
    """Why ``body`` is not a valid chat-completions request, or None when it is.

    Checks ``model`` (non-empty string); ``messages`` (non-empty list of objects with a valid
    ``role``; assistant ``tool_calls``; tool messages' ``content`` and ``tool_call_id``, which
    must match a tool call of an earlier assistant message; user messages' content parts:
    text, ``image_url``, ``file``, ``input_audio``, ``video_url``, their URLs http(s) or
    base64 data URLs of the right kind, audio data base64 in a known format); the types of
    ``stream``, ``stream_options``, ``max_tokens``, ``stop``, ``logprobs``, ``top_logprobs``
    (0-20, only with ``logprobs: true``); and the shapes of ``tools``, ``tool_choice`` and
    ``response_format``.
    """
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    model = body.get("model")
    if "model" not in body:
        return "missing required field 'model'"
    if not isinstance(model, str) or not model:
        return "'model' must be a non-empty string"
    messages = body.get("messages")
    if "messages" not in body:
        return "missing required field 'messages'"
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list"
    problem = _check_messages(messages)
    if problem is not None:
        return problem
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        return "'stream' must be a boolean"
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        return "'stream_options' must be an object"
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
        return "'max_tokens' must be a positive integer"
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        return "'stop' must be a string or a list of strings"
    problem = _check_logprobs(body)
    if problem is not None:
        return problem
    return _check_tools(body) or _check_response_format(body.get("response_format"))


def _check_logprobs(body: dict[str, Any]) -> str | None:
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        return "'logprobs' must be a boolean"
    top = body.get("top_logprobs")
    if top is None:
        return None
    if not _is_int(top) or not 0 <= top <= 20:
        return "'top_logprobs' must be an integer from 0 to 20"
    if logprobs is not True:
        # OpenAI rejects it too: alternatives make no sense without the chosen token's entry.
        return "'top_logprobs' requires 'logprobs' to be true"
    return None


def _check_messages(messages: list[Any]) -> str | None:
    # Ids of the tool calls made so far: a tool message may only answer a call made before it.
    call_ids: set[str] = set()
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"'messages[{i}]' must be an object"
        if "role" not in message:
            return f"missing required field 'messages[{i}].role'"
        role = message["role"]
        if role not in VALID_ROLES:
            return f"'messages[{i}].role' must be one of {', '.join(VALID_ROLES)}, got {role!r}"
        if role == "assistant" and message.get("tool_calls") is not None:
            problem = _check_assistant_calls(f"messages[{i}].tool_calls", message["tool_calls"])
            if problem is not None:
                return problem
            call_ids.update(call["id"] for call in message["tool_calls"])
        if role == "tool":
            problem = _check_tool_message(f"messages[{i}]", message, call_ids)
            if problem is not None:
                return problem
        if role == "user" and isinstance(message.get("content"), list):
            problem = _check_parts(f"messages[{i}].content", message["content"])
            if problem is not None:
                return problem
    return None


def _check_parts(where: str, parts: list[Any]) -> str | None:
    """Why a user message's content parts are not what OpenAI-compatible servers take."""
    for j, part in enumerate(parts):
        at = f"{where}[{j}]"
        if not isinstance(part, dict):
            return f"'{at}' must be an object"
        kind = part.get("type")
        if kind not in PART_TYPES:
            return f"'{at}.type' must be one of {', '.join(PART_TYPES)}, got {kind!r}"
        inner = part.get(kind) if kind != "text" else part
        if not isinstance(inner, dict):
            return f"'{at}.{kind}' must be an object"
        problem = _PART_CHECKS[kind](f"{at}.{kind}" if kind != "text" else at, inner)
        if problem is not None:
            return problem
    return None


def _check_text_part(at: str, part: dict[str, Any]) -> str | None:
    return None if isinstance(part.get("text"), str) else f"'{at}.text' must be a string"


def _check_image(at: str, image: dict[str, Any]) -> str | None:
    return _check_url(f"{at}.url", image.get("url"), "image/")


def _check_video(at: str, video: dict[str, Any]) -> str | None:
    return _check_url(f"{at}.url", video.get("url"), "video/")


def _check_file(at: str, file: dict[str, Any]) -> str | None:
    if "file_id" in file:
        # A provider's uploaded file: this server keeps no files, as a gateway that routes
        # to another provider cannot resolve one either.
        return f"'{at}.file_id' names an uploaded file; this server has none, send file_data"
    filename = file.get("filename")
    if not isinstance(filename, str) or not filename:
        return f"'{at}.filename' must be a non-empty string"
    return _check_url(f"{at}.file_data", file.get("file_data"), "")


def _check_audio(at: str, audio: dict[str, Any]) -> str | None:
    data = audio.get("data")
    if not isinstance(data, str) or not data or not _is_base64(data):
        return f"'{at}.data' must be base64 text (not a data URL)"
    audio_format = audio.get("format")
    if audio_format not in AUDIO_FORMATS:
        return f"'{at}.format' must be one of {', '.join(AUDIO_FORMATS)}, got {audio_format!r}"
    return None


def _check_url(at: str, url: Any, media: str) -> str | None:
    """A public http(s) URL, or a base64 data URL whose MIME type starts with ``media``."""
    if not isinstance(url, str):
        return f"'{at}' must be a string"
    if url.startswith(("https://", "http://")):
        return None
    match = _DATA_URL.fullmatch(url)
    if match is None or not match.group(1).startswith(media) or not _is_base64(match.group(2)):
        kind = f"a {media}* " if media else "a "
        return f"'{at}' must be an http(s) URL or {kind}data URL with base64 data"
    return None


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


_PART_CHECKS = {
    "text": _check_text_part,
    "image_url": _check_image,
    "video_url": _check_video,
    "file": _check_file,
    "input_audio": _check_audio,
}


def _check_assistant_calls(where: str, calls: Any) -> str | None:
    if not isinstance(calls, list):
        return f"'{where}' must be a list"
    for j, call in enumerate(calls):
        at = f"{where}[{j}]"
        if not isinstance(call, dict):
            return f"'{at}' must be an object"
        if not _is_name(call.get("id")):
            return f"'{at}.id' must be a non-empty string"
        if call.get("type") != "function":
            return f"'{at}.type' must be \"function\""
        function = call.get("function")
        if not isinstance(function, dict):
            return f"'{at}.function' must be an object"
        if not _is_name(function.get("name")):
            return f"'{at}.function.name' must be a non-empty string"
        if not isinstance(function.get("arguments"), str):
            return f"'{at}.function.arguments' must be a string (JSON text)"
    return None


def _check_tool_message(where: str, message: dict[str, Any], call_ids: set[str]) -> str | None:
    content = message.get("content")
    text_parts = isinstance(content, list) and all(
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        for part in content
    )
    if not isinstance(content, str) and not text_parts:
        return f"'{where}.content' must be a string or a list of text parts"
    if "tool_call_id" not in message:
        return f"missing required field '{where}.tool_call_id'"
    call_id = message["tool_call_id"]
    if not _is_name(call_id):
        return f"'{where}.tool_call_id' must be a non-empty string"
    if call_id not in call_ids:
        return (
            f"'{where}.tool_call_id' {call_id!r} does not match the id of any tool call "
            "in an earlier assistant message"
        )
    return None


def _check_tools(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list):
            return "'tools' must be a list"
        if not tools:
            # As OpenAI's and DeepSeek's servers: no tools is said by leaving the field out.
            return "'tools' must not be empty; leave it out when there are no tools"
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                return f"'tools[{i}]' must be an object"
            if tool.get("type") != "function":
                return f"'tools[{i}].type' must be \"function\""
            function = tool.get("function")
            if not isinstance(function, dict):
                return f"'tools[{i}].function' must be an object"
            if not _is_name(function.get("name")):
                return f"'tools[{i}].function.name' must be a non-empty string"
            if function.get("parameters") is not None and not isinstance(
                function["parameters"], dict
            ):
                return f"'tools[{i}].function.parameters' must be an object (a JSON Schema)"
            names.append(function["name"])
    return _check_tool_choice(body.get("tool_choice"), names)


def _check_tool_choice(choice: Any, names: list[str]) -> str | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICE_WORDS:
            return f"'tool_choice' must be {_TOOL_CHOICE_FORMS}, got {choice!r}"
        if choice == "required" and not names:
            # The model would be forced to call a tool it was not given.
            return "'tool_choice' is \"required\" but 'tools' is missing or empty"
        return None
    if not isinstance(choice, dict) or choice.get("type") != "function":
        return f"'tool_choice' must be {_TOOL_CHOICE_FORMS}"
    function = choice.get("function")
    if not isinstance(function, dict) or not _is_name(function.get("name")):
        return "'tool_choice.function.name' must be a non-empty string"
    if function["name"] not in names:
        name = function["name"]
        return f"'tool_choice.function.name' {name!r} is not the name of a tool in 'tools'"
    return None


def _check_response_format(response_format: Any) -> str | None:
    if response_format is None:
        return None
    if not isinstance(response_format, dict) or response_format.get("type") not in (
        _RESPONSE_FORMATS
    ):
        return (
            "'response_format' must be an object whose 'type' is one of "
            f"{', '.join(_RESPONSE_FORMATS)}"
        )
    if response_format["type"] != "json_schema":
        return None
    schema = response_format.get("json_schema")
    if not isinstance(schema, dict):
        return "'response_format.json_schema' must be an object"
    if not _is_name(schema.get("name")):
        return "'response_format.json_schema.name' must be a non-empty string"
    if not isinstance(schema.get("schema"), dict):
        return "'response_format.json_schema.schema' must be an object (a JSON Schema)"
    return None
