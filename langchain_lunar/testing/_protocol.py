"""Lunar wire-protocol pieces with no I/O: error bodies, usage and cost.

Request validation is in ``_validate``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

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
