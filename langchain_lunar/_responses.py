"""Turn Lunar's response objects into LangChain messages: usage, cost, tool calls, metadata."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessage, InvalidToolCall, ToolCall
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.messages.tool import invalid_tool_call
from langchain_core.output_parsers.openai_tools import parse_tool_call
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_lunar._exceptions import MalformedResponseError

PROVIDER = "lunar"

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


def usage_to_metadata(usage: Mapping[str, Any]) -> UsageMetadata:
    """Map an OpenAI-style ``usage`` object to LangChain's ``UsageMetadata``."""
    input_tokens = int(usage.get("prompt_tokens") or 0)
    output_tokens = int(usage.get("completion_tokens") or 0)
    metadata = UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=int(usage.get("total_tokens") or input_tokens + output_tokens),
    )
    prompt_details = usage.get("prompt_tokens_details")
    if isinstance(prompt_details, Mapping) and prompt_details.get("cached_tokens") is not None:
        metadata["input_token_details"] = InputTokenDetails(
            cache_read=int(prompt_details["cached_tokens"])
        )
    completion_details = usage.get("completion_tokens_details")
    if (
        isinstance(completion_details, Mapping)
        and completion_details.get("reasoning_tokens") is not None
    ):
        metadata["output_token_details"] = OutputTokenDetails(
            reasoning=int(completion_details["reasoning_tokens"])
        )
    return metadata


def response_metadata(
    *,
    model_name: str,
    finish_reason: str | None,
    system_fingerprint: str | None,
    usage: Mapping[str, Any] | None,
    failed_attempts: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """The ``response_metadata`` of a finished answer, Lunar's cost fields included, and the
    attempts that failed before it (retries and fallbacks), when there were any."""
    metadata: dict[str, Any] = {"model_name": model_name, "model_provider": PROVIDER}
    if finish_reason is not None:
        metadata["finish_reason"] = finish_reason
    if system_fingerprint is not None:
        metadata["system_fingerprint"] = system_fingerprint
    if usage:
        for field in COST_FIELDS:
            if usage.get(field) is not None:
                metadata[field] = usage[field]
    if failed_attempts:
        metadata["failed_attempts"] = list(failed_attempts)
    return metadata


def completion_to_result(
    payload: Any, requested_model: str, failed_attempts: tuple[dict[str, Any], ...] = ()
) -> ChatResult:
    """Convert a non-streaming ``chat.completion`` object into a ``ChatResult``."""
    choices = payload.get("choices") if isinstance(payload, Mapping) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise MalformedResponseError(
            f"The server's answer has no choices[0]: {str(payload)[:500]!r}"
        )
    choice = choices[0]
    message = choice.get("message") or {}
    tool_calls, invalid_tool_calls = parse_tool_calls(message.get("tool_calls") or [])
    usage = payload.get("usage") if isinstance(payload.get("usage"), Mapping) else None
    finish_reason = choice.get("finish_reason")
    ai_message = AIMessage(
        content=message.get("content") or "",
        id=payload.get("id"),
        tool_calls=tool_calls,
        invalid_tool_calls=invalid_tool_calls,
        usage_metadata=usage_to_metadata(usage) if usage else None,
        response_metadata=response_metadata(
            model_name=payload.get("model") or requested_model,
            finish_reason=finish_reason,
            system_fingerprint=payload.get("system_fingerprint"),
            usage=usage,
            failed_attempts=failed_attempts,
        ),
    )
    generation_info = {"finish_reason": finish_reason} if finish_reason else None
    return ChatResult(
        generations=[ChatGeneration(message=ai_message, generation_info=generation_info)]
    )


def parse_tool_calls(raw_calls: list[Any]) -> tuple[list[ToolCall], list[InvalidToolCall]]:
    """Parse OpenAI-style ``tool_calls``; arguments that are not valid JSON are kept as invalid."""
    tool_calls: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for raw in raw_calls:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("function"), Mapping):
            raise MalformedResponseError(f"A tool call without a function object: {raw!r}")
        try:
            parsed = parse_tool_call(dict(raw), return_id=True)
        except OutputParserException as error:
            invalid.append(
                invalid_tool_call(
                    name=raw["function"].get("name"),
                    args=raw["function"].get("arguments"),
                    id=raw.get("id"),
                    error=str(error),
                )
            )
            continue
        if parsed is not None:
            tool_calls.append(parsed)  # type: ignore[arg-type]
    return tool_calls, invalid
