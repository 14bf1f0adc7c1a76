"""Turn Lunar's response objects into LangChain messages: usage, cost, tool calls, metadata."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage, InvalidToolCall, ToolCall
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_lunar._media_out import audio_block, check_audio, image_blocks
from langchain_lunar._shape import ShapeError as ShapeError  # re-exported: its old home

PROVIDER = "lunar"

logger = logging.getLogger("langchain_lunar")

# Lunar's additions to the OpenAI usage object. They go to response_metadata under these names,
# because usage_metadata has a fixed, token-only schema.
COST_FIELDS = (
    "input_cost_usd",
    "output_cost_usd",
    "cache_input_cost_usd",
    "total_cost_usd",
    "latency_ms",
    "ttft_ms",
)


_TOKEN_COUNTS = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    # DeepSeek's cache counts, and Anthropic's as gateways relay them.
    "prompt_cache_hit_tokens",
    "prompt_cache_miss_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
_TOKEN_DETAILS = (
    ("prompt_tokens_details", "cached_tokens"),
    ("prompt_tokens_details", "cache_creation_tokens"),
    ("completion_tokens_details", "reasoning_tokens"),
)


def check_usage(usage: Any) -> dict[str, Any] | None:
    """``usage`` if it is an object whose token counts are counts (or absent), None for null
    or an empty object; raises ``ShapeError`` otherwise."""
    if usage is None:
        return None
    if type(usage) is not dict:
        raise ShapeError(f"a usage that is not an object ({type(usage).__name__})")
    for name in _TOKEN_COUNTS:
        _check_count(usage, name, "usage")
    for holder_name, name in _TOKEN_DETAILS:
        holder = usage.get(holder_name)
        if holder is not None:
            if type(holder) is not dict:
                raise ShapeError(f"a usage.{holder_name} that is not an object")
            _check_count(holder, name, f"usage.{holder_name}")
    # The cost fields are read once, when the answer is whole (``response_metadata``): one
    # that is no usable number is left out there, with a warning, and fails nothing.
    return usage or None


def _check_count(holder: dict[str, Any], name: str, where: str) -> None:
    value = holder.get(name)
    if value is not None and (type(value) is not int or value < 0):
        raise ShapeError(f"a {where}.{name} that is not a token count ({value!r})")


def _optional_list(body: Mapping[str, Any], name: str, where: str) -> list[Any] | None:
    """``body[name]`` if it is a list or absent or null; raises ``ShapeError`` otherwise."""
    value = body.get(name)
    if value is None or type(value) is list:
        return value
    raise ShapeError(f"a {where}.{name} that is not a list")


def check_optional_str(value: Any, what: str) -> str | None:
    """``value`` if it is a string or null; raises ``ShapeError`` naming ``what`` otherwise."""
    if value is None or type(value) is str:
        return value
    raise ShapeError(f"{what} that is not a string ({type(value).__name__})")


def usage_to_metadata(usage: Mapping[str, Any]) -> UsageMetadata:
    """Map an OpenAI-style ``usage`` object, already checked by ``check_usage``, to LangChain's
    ``UsageMetadata``."""
    input_tokens = usage.get("prompt_tokens") or 0
    output_tokens = usage.get("completion_tokens") or 0
    metadata = UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=usage.get("total_tokens") or input_tokens + output_tokens,
    )
    prompt_details = usage.get("prompt_tokens_details") or {}
    input_details = InputTokenDetails()
    cache_read = _first_count(
        prompt_details.get("cached_tokens"),
        usage.get("prompt_cache_hit_tokens"),
        usage.get("cache_read_input_tokens"),
    )
    if cache_read is not None:
        input_details["cache_read"] = cache_read
    cache_creation = _first_count(
        usage.get("cache_creation_input_tokens"), prompt_details.get("cache_creation_tokens")
    )
    if cache_creation is not None:
        input_details["cache_creation"] = cache_creation
    if input_details:
        metadata["input_token_details"] = input_details
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    if reasoning is not None:
        metadata["output_token_details"] = OutputTokenDetails(reasoning=reasoning)
    return metadata


def _first_count(*counts: int | None) -> int | None:
    return next((count for count in counts if count is not None), None)


REQUESTED_MODEL_KEY = "model_requested"
"""``response_metadata`` key of the model id the request named (``model_name`` is the one the
server says served, which a gateway may report dated: ``gpt-4o-mini-2024-07-18``)."""


def response_metadata(
    *,
    model_name: str,
    requested_model: str,
    finish_reason: str | None,
    system_fingerprint: str | None,
    usage: Mapping[str, Any] | None,
    failed_attempts: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """The ``response_metadata`` of a finished answer, Lunar's cost fields included, and the
    attempts that failed before it (retries and fallbacks), when there were any."""
    metadata: dict[str, Any] = {
        "model_name": model_name,
        REQUESTED_MODEL_KEY: requested_model,
        "model_provider": PROVIDER,
    }
    if finish_reason is not None:
        metadata["finish_reason"] = finish_reason
    if system_fingerprint is not None:
        metadata["system_fingerprint"] = system_fingerprint
    if usage:
        for field in COST_FIELDS:
            value = usage.get(field)
            if value is None:
                continue
            if is_amount(value):
                metadata[field] = value
            else:
                # Neither the value nor the model the server named: server text may hold
                # anything, the key included, and this function has no secrets to mask.
                logger.warning(
                    "Ignoring usage.%s of an answer: %s, not a finite, non-negative number",
                    field,
                    _kind(value),
                )
    if failed_attempts:
        metadata["failed_attempts"] = list(failed_attempts)
    return metadata


def is_amount(value: Any) -> bool:
    """Whether a cost (or latency) field holds a number that adds up: finite, non-negative and
    at most ``LARGEST_AMOUNT``."""
    # False for NaN and inf too; an int beyond 1e308 is one no sum of costs can take. A bool
    # is none (its type is not int).
    return type(value) in (int, float) and 0 <= value <= LARGEST_AMOUNT


LARGEST_AMOUNT = 1e300
"""The largest cost (or latency) kept: far beyond any real one, and small enough that a sum of
millions of them is still a finite float."""


def _kind(value: Any) -> str:
    """What an unusable cost is, for a log line: numbers as they are, other values by type
    only (a string may hold anything, the key included)."""
    if type(value) is float:
        return repr(value)
    if type(value) is int:
        return repr(value) if abs(value) < 10**20 else "an integer of more than 20 digits"
    return f"a {type(value).__name__}"


def completion_to_result(
    payload: Any,
    requested_model: str,
    failed_attempts: tuple[dict[str, Any], ...] = (),
    *,
    audio_format: str | None = None,
) -> ChatResult:
    """Convert a non-streaming ``chat.completion`` object into a ``ChatResult``.

    Images and audio in the message make the content a list: a text block (when there is
    text), then image blocks, then the audio block, whose MIME type is of ``audio_format``
    (the request's) unless the answer names its own. Raises ``ShapeError`` when a field holds
    a value of the wrong type.
    """
    if type(payload) is not dict:
        raise ShapeError(f"an answer that is not a JSON object ({type(payload).__name__})")
    choices = payload.get("choices")
    if type(choices) is not list or not choices:
        raise ShapeError("no choices (a non-empty list)")
    if len(choices) > 1:
        raise ShapeError("more than one choice (ChatLunar asks for one)")
    choice = choices[0]
    if type(choice) is not dict:
        raise ShapeError("a choice that is not an object")
    index = choice.get("index")
    if index is not None and (type(index) is not int or index != 0):
        raise ShapeError(f"a choice index that is not 0 ({index!r}; ChatLunar asks for one)")
    message = choice.get("message")
    if type(message) is not dict:
        raise ShapeError("a choice without a message object")
    content = check_optional_str(message.get("content"), "a message.content")
    extras = message_fields(message, streamed=False)
    logprobs = check_logprobs(choice.get("logprobs"))
    raw_calls = message.get("tool_calls")
    if raw_calls is not None and type(raw_calls) is not list:
        raise ShapeError("message.tool_calls that is not a list")
    tool_calls, invalid_tool_calls = parse_tool_calls(raw_calls or [])
    usage = check_usage(payload.get("usage"))
    finish_reason = check_optional_str(choice.get("finish_reason"), "a finish_reason")
    metadata = response_metadata(
        model_name=check_optional_str(payload.get("model"), "a model") or requested_model,
        requested_model=requested_model,
        finish_reason=finish_reason,
        system_fingerprint=check_optional_str(
            payload.get("system_fingerprint"), "a system_fingerprint"
        ),
        usage=usage,
        failed_attempts=failed_attempts,
    )
    if logprobs is not None:
        metadata["logprobs"] = logprobs
    media = extras.images
    if extras.audio is not None:
        media = [*media, audio_block(extras.audio, audio_format)]
    blocks: list[str | dict[str, Any]] = [{"type": "text", "text": content}] if content else []
    kwargs = {**extras.reasoning_kwargs, **extras.kwargs}
    for where, body, known in (
        ("completion", payload, COMPLETION_FIELDS),
        ("choice", choice, CHOICE_FIELDS),
    ):
        others = new_fields(body, known, {})
        if others:
            kwargs[UNMAPPED_KEY] = [*kwargs.get(UNMAPPED_KEY, ()), {where: others}]
    ai_message = AIMessage(
        content=[*blocks, *media] if media else content or "",
        additional_kwargs=kwargs,
        id=check_optional_str(payload.get("id"), "an id"),
        tool_calls=tool_calls,
        invalid_tool_calls=invalid_tool_calls,
        usage_metadata=usage_to_metadata(usage) if usage else None,
        response_metadata=metadata,
    )
    generation_info = {"finish_reason": finish_reason} if finish_reason else None
    return ChatResult(
        generations=[ChatGeneration(message=ai_message, generation_info=generation_info)]
    )


# Fields of a delta (or message) that become parts of the chunk (or message) themselves.
_MAPPED_FIELDS = frozenset(
    {
        "role",
        "content",
        "tool_calls",
        "reasoning_content",
        "reasoning",
        "reasoning_details",
        "refusal",
        "annotations",
        "images",
        "audio",
    }
)
UNMAPPED_KEY = "unmapped_fields"
"""``additional_kwargs`` key of the fields ChatLunar does not map: a list of objects, each
naming where its fields stood: ``{"delta": {...}}`` or ``{"message": {...}}`` per delta (or
message) that had any, ``{"chunk": {...}}`` and ``{"choice": {...}}`` for a stream's chunk and
choice, ``{"completion": {...}}`` and ``{"choice": {...}}`` for a completion. A list, so that
langchain-core's chunk addition appends them whatever their types."""

# The fields of a streamed chunk, a completion and their choice that ChatLunar reads. Also
# left out: `object` and `created` (the type tag and timestamp on every chunk) and OpenAI's
# `obfuscation` (random padding, different on every event).
CHUNK_FIELDS = frozenset(
    {"id", "object", "created", "model", "system_fingerprint", "choices", "usage", "obfuscation"}
)
COMPLETION_FIELDS = frozenset(
    {"id", "object", "created", "model", "system_fingerprint", "choices", "usage"}
)
STREAMED_CHOICE_FIELDS = frozenset({"index", "delta", "logprobs", "finish_reason"})
CHOICE_FIELDS = frozenset({"index", "message", "logprobs", "finish_reason"})


def new_fields(
    body: dict[str, Any], known: frozenset[str], seen: dict[str, Any]
) -> dict[str, Any] | None:
    """The fields of ``body`` outside ``known`` that are not null and differ from the value
    last seen under their name (``seen``, updated): what a stream's chunk or choice adds to
    the ones before it. None when there is none.

    Servers repeat such fields on every chunk (OpenRouter's ``provider``, Perplexity's
    ``citations``): each value is kept once, and again only when it changes.
    """
    found: dict[str, Any] | None = None
    for name, value in body.items():
        if value is None or name in known:
            continue
        if name in seen and same_json(seen[name], value):
            continue
        seen[name] = value
        if found is None:
            found = {}
        found[name] = value
    return found


def same_json(first: Any, second: Any) -> bool:
    """Whether two parsed JSON values are the same value: equal, with the same types all
    through (``1``, ``1.0`` and ``true`` differ, so do ``0.0`` and ``-0.0``), NaN the same as
    NaN.

    Walks with a stack, not recursion (nor ``==`` on containers, which recurses in C): a
    server may nest a value a thousand levels deep.
    """
    pending = [(first, second)]
    while pending:
        left, right = pending.pop()
        kind = type(left)
        if kind is not type(right):
            return False
        if kind is dict:
            if left.keys() != right.keys():
                return False
            pending.extend((value, right[name]) for name, value in left.items())
        elif kind is list:
            if len(left) != len(right):
                return False
            pending.extend(zip(left, right, strict=True))
        elif kind is float:
            if left.hex() != right.hex():  # exact: -0.0 is not 0.0, NaN is NaN
                return False
        elif left != right:
            return False
    return True


class MessageFields:
    """The checked parts of one delta or message beyond its text and tool calls.

    Attributes:
        reasoning_kwargs: What goes in the reasoning chunk's ``additional_kwargs``.
        kwargs: What goes in the main chunk's ``additional_kwargs``: refusal, annotations,
            the rest.
        images: The image blocks of ``images`` (see ``_media_out``).
        audio: The checked ``audio`` object, or None.
    """

    __slots__ = ("audio", "images", "kwargs", "reasoning_kwargs")

    def __init__(self) -> None:
        self.reasoning_kwargs: dict[str, Any] = {}
        self.kwargs: dict[str, Any] = {}
        self.images: list[dict[str, Any]] = []
        self.audio: dict[str, Any] | None = None


def message_fields(body: dict[str, Any], *, streamed: bool) -> MessageFields:
    """Check and sort the fields of a delta (``streamed``) or message beyond text and tool
    calls; raises ``ShapeError`` for a mapped field of the wrong type."""
    fields = MessageFields()
    where = "delta" if streamed else "message"
    reasoning = check_optional_str(body.get("reasoning_content"), f"a {where}.reasoning_content")
    other = check_optional_str(body.get("reasoning"), f"a {where}.reasoning")
    # A null carries nothing (OpenAI-style servers send "function_call": null and the like).
    unmapped = {
        name: value
        for name, value in body.items()
        if value is not None and name not in _MAPPED_FIELDS
    }
    if reasoning is None:
        reasoning = other
    elif other is not None and other != reasoning:
        unmapped["reasoning"] = other  # both names, different texts: keep the second as sent
    if reasoning:
        fields.reasoning_kwargs["reasoning_content"] = reasoning
    details = _optional_list(body, "reasoning_details", where)
    if details:
        fields.reasoning_kwargs["reasoning_details"] = details
    refusal = check_optional_str(body.get("refusal"), f"a {where}.refusal")
    if refusal:
        fields.kwargs["refusal"] = refusal
    annotations = _optional_list(body, "annotations", where)
    if annotations:
        fields.kwargs["annotations"] = annotations
    fields.images = image_blocks(body.get("images"), where)
    fields.audio = check_audio(body.get("audio"), where)
    if unmapped:
        fields.kwargs[UNMAPPED_KEY] = [{where: unmapped}]
    return fields


def check_logprobs(logprobs: Any) -> dict[str, Any] | None:
    """A choice's ``logprobs`` if it is an object or null; raises ``ShapeError`` otherwise."""
    if logprobs is None or type(logprobs) is dict:
        return logprobs
    raise ShapeError(f"logprobs that is not an object ({type(logprobs).__name__})")


def check_tool_call(raw: Any, *, streamed: bool) -> tuple[Any, str | None, str | None, str | None]:
    """``(index, id, name, arguments)`` of one OpenAI-style tool call (or streamed fragment);
    raises ``ShapeError`` when a member has the wrong type."""
    if type(raw) is not dict:
        raise ShapeError(f"a tool call that is not an object ({type(raw).__name__})")
    index = raw.get("index")
    if index is not None and type(index) is not int:
        raise ShapeError(f"a tool call index that is not an integer ({index!r})")
    function = raw.get("function")
    if function is None and streamed:
        function = {}  # a fragment may carry only its index and id
    if type(function) is not dict:
        raise ShapeError("a tool call without a function object")
    check_optional_str(raw.get("type"), "a tool call type")
    return (
        index,
        check_optional_str(raw.get("id"), "a tool call id"),
        check_optional_str(function.get("name"), "a tool call function.name"),
        check_optional_str(function.get("arguments"), "a tool call function.arguments"),
    )


def parse_tool_calls(raw_calls: list[Any]) -> tuple[list[ToolCall], list[InvalidToolCall]]:
    """Parse OpenAI-style ``tool_calls``; arguments that are not a JSON object are kept, with
    their raw text, as invalid calls."""
    tool_calls: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for raw in raw_calls:
        _, call_id, name, arguments = check_tool_call(raw, streamed=False)
        try:
            args = json.loads(arguments, strict=False) if arguments else {}
        except ValueError as error:
            invalid.append(
                invalid_tool_call(name=name, args=arguments, id=call_id, error=str(error))
            )
            continue
        if type(args) is not dict:
            invalid.append(
                invalid_tool_call(
                    name=name,
                    args=arguments,
                    id=call_id,
                    error=f"the arguments are not a JSON object: {arguments!r}",
                )
            )
            continue
        tool_calls.append(tool_call(name=name or "", args=args, id=call_id))
    return tool_calls, invalid
