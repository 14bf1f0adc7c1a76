"""Lunar wire-protocol pieces with no I/O: request validation, error bodies, usage and cost."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

VALID_ROLES = ("system", "user", "assistant", "tool", "developer")

DEFAULT_PRICE: tuple[float, float] = (0.15, 0.60)
"""USD per 1M tokens (input, output) for a model that has no entry in ``prices``."""

SYSTEM_FINGERPRINT = "fp_lunar_local"

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}

_DEFAULT_MESSAGES = {
    401: "Invalid or missing API key",
    403: "Permission denied",
    404: "Not found",
    429: "Rate limit exceeded, please retry later",
    500: "Internal server error",
    502: "Bad gateway: upstream provider failed",
    503: "Service unavailable: upstream overloaded",
    504: "Gateway timeout: upstream provider did not answer in time",
}


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """``{"error": {"message", "type", "code"}}`` for ``status``, with a default message if None."""
    if message is None:
        message = _DEFAULT_MESSAGES.get(status)
    if message is None:
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = f"HTTP {status}"
    error_type = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "api_error")
    return {"error": {"message": message, "type": error_type, "code": status}}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_request(body: Any) -> str | None:
    """Why ``body`` is not a valid chat-completions request, or None when it is.

    Checks ``model`` (non-empty string), ``messages`` (non-empty list of objects with a valid
    ``role``), and the types of the fields this server acts on: ``stream``, ``stream_options``,
    ``max_tokens``, ``stop``. Other fields are accepted unchecked, as a permissive server would.
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
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"'messages[{i}]' must be an object"
        if "role" not in message:
            return f"missing required field 'messages[{i}].role'"
        if message["role"] not in VALID_ROLES:
            return (
                f"'messages[{i}].role' must be one of {', '.join(VALID_ROLES)}, "
                f"got {message['role']!r}"
            )
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
    return None


def wants_usage_chunk(body: dict[str, Any]) -> bool:
    """True when the request asked for ``stream_options.include_usage``."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def usage(
    prompt_tokens: int,
    completion_tokens: int,
    price: tuple[float, float],
    latency_ms: float,
    ttft_ms: float,
) -> dict[str, Any]:
    """A Lunar ``usage`` object; costs are ``tokens * USD-per-1M-tokens / 1e6``."""
    input_cost = prompt_tokens * price[0] / 1e6
    output_cost = completion_tokens * price[1] / 1e6
    cache_cost = 0.0
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "input_cost_usd": input_cost,
        "output_cost_usd": output_cost,
        "cache_input_cost_usd": cache_cost,
        "total_cost_usd": input_cost + output_cost + cache_cost,
        "latency_ms": round(latency_ms, 3),
        "ttft_ms": round(ttft_ms, 3),
    }
