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


USAGE_DETAILS = ("auto", "none", "openai", "deepseek", "anthropic")
"""The forms of token details a ``usage`` object can carry; see ``usage``."""


def usage(
    prompt_tokens: int,
    completion_tokens: int,
    price: tuple[float, float],
    latency_ms: float,
    ttft_ms: float,
    *,
    reasoning_tokens: int = 0,
    cached_tokens: int = 0,
    cache_write_tokens: int = 0,
    details: str = "auto",
) -> dict[str, Any]:
    """A Lunar ``usage`` object; costs are ``tokens * USD-per-1M-tokens / 1e6``.

    ``cached_tokens`` and ``cache_write_tokens`` are parts of ``prompt_tokens`` (read from and
    written to the provider's prompt cache); they do not change the costs. ``details``:

    - ``"auto"``: ``prompt_tokens_details: {"cached_tokens"}`` only when ``cached_tokens`` > 0,
      ``completion_tokens_details: {"reasoning_tokens"}`` only when ``reasoning_tokens`` > 0;
    - ``"none"``: neither, as servers that report no details;
    - ``"openai"``: both objects always, zeros included;
    - ``"deepseek"``: as ``"openai"``, plus ``prompt_cache_hit_tokens`` (= cached) and
      ``prompt_cache_miss_tokens`` (= prompt - cached);
    - ``"anthropic"``: as ``"openai"``, plus ``cache_read_input_tokens`` (= cached) and
      ``cache_creation_input_tokens`` (= cache writes), as gateways relay Anthropic's usage.
    """
    input_cost = prompt_tokens * price[0] / 1e6
    output_cost = completion_tokens * price[1] / 1e6
    cache_cost = 0.0
    result: dict[str, Any] = {
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
    always = details not in ("auto", "none")
    if always or (details == "auto" and cached_tokens > 0):
        result["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    if always or (details == "auto" and reasoning_tokens > 0):
        result["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    if details == "deepseek":
        result["prompt_cache_hit_tokens"] = cached_tokens
        result["prompt_cache_miss_tokens"] = prompt_tokens - cached_tokens
    elif details == "anthropic":
        result["cache_read_input_tokens"] = cached_tokens
        result["cache_creation_input_tokens"] = cache_write_tokens
    return result


def wants_logprobs(body: dict[str, Any]) -> int | None:
    """How many ``top_logprobs`` the request asked for (0 when it did not say), or None when
    it did not set ``logprobs: true``."""
    if body.get("logprobs") is not True:
        return None
    top = body.get("top_logprobs")
    return top if isinstance(top, int) and not isinstance(top, bool) else 0


def token_logprob(token: str, index: int, top: int) -> dict[str, Any]:
    """The ``logprobs.content`` entry of the ``index``-th token (from 0) of an answer.

    Deterministic: ``logprob`` is ``-(index % 100 + 1) / 100``. ``top_logprobs`` holds ``top``
    entries: the token itself first, then ``"<alt1>"``, ``"<alt2>"``... each 1.0 less likely
    (in log space) than the one before.
    """
    logprob = -(index % 100 + 1) / 100
    alternatives = [
        {"token": alt, "logprob": logprob - j, "bytes": list(alt.encode("utf-8"))}
        for j, alt in enumerate([token] + [f"<alt{j}>" for j in range(1, top)])
    ]
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode("utf-8")),
        "top_logprobs": alternatives[:top],
    }
