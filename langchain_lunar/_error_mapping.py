"""Translate every failure of an exchange into the typed error for it, in one place.

An error status and its body, an error event inside a stream, an httpx exception, and a stream
that stalled: each becomes one of the errors of ``_exceptions``, its text free of the key.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from langchain_lunar._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ContextLengthExceededError,
    FirstChunkTimeoutError,
    GatewayTimeoutError,
    LunarError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    StreamChunkTimeoutError,
    UnprocessableEntityError,
)
from langchain_lunar._json import loads
from langchain_lunar._secrets import MASK, Secrets, redact, redact_deep

_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
    504: GatewayTimeoutError,
}

# An in-stream error event may name its kind by `type` instead of a numeric `code`.
_STATUS_BY_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "server_error": 500,
    "api_error": 500,
    "overloaded_error": 503,
    "timeout_error": 504,
}

_CONTEXT_OVERFLOW_MARKERS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "maximum context",
    "too many tokens",
    "prompt is too long",
)

# (milliseconds, seconds) header pairs, most trusted first: the answering server's own headers
# describe the endpoint the retry goes to, the relayed ones only the provider behind it.
_RETRY_AFTER_HEADERS = (
    ("retry-after-ms", "retry-after"),
    ("llm_provider-retry-after-ms", "llm_provider-retry-after"),
)

_SNIPPET_CHARS = 500

KEPT_BODY_CHARS = 4096
"""The most of an error body (and of its message) an error keeps: an error may be kept, logged
and pickled, and the server may send megabytes."""

# Error bodies nest a few levels (FastAPI's validation errors: four); deeper levels are left out
# of ``APIError.body``, so that no ``repr``, ``json.dumps`` or ``pickle`` of an error can
# exhaust the stack.
_MAX_BODY_DEPTH = 32
_TOO_DEEP_NOTE = (
    f" (the error body is nested more than {_MAX_BODY_DEPTH} levels deep; "
    "the deeper levels are left out of error.body)"
)
# An HTTP status has three digits; a longer run of digits in an error event's code is none
# (and int() refuses strings of more than 4300 digits).
_STATUS_DIGITS = 3


def error_from_response(
    status_code: int,
    content: bytes,
    headers: Mapping[str, str],
    *,
    reason: str = "",
    secrets: Secrets = (),
    cut_at: int | None = None,
) -> APIError:
    """Build the error for an HTTP response whose status is 400 or above.

    ``content`` is the body, or its start when ``cut_at`` is set: the body passed that bound
    and was not read further. A body longer than ``KEPT_BODY_CHARS`` bytes is read for the
    message and the wait it asks for, and ``error.body`` keeps its start, as text.

    Whatever the body, the reason phrase and the headers hold, this returns the error of the
    status: a part that cannot be read (a header that is no wait, a body nested too deeply) is
    left out, never raised. Every text in it is masked (see ``_readable``).
    """
    for secret in secrets:
        content = content.replace(secret.encode(), MASK.encode())
    # A body cut short is no JSON: only its start is kept, as text.
    body, nested_too_deeply = _readable(_parse_body(content) if cut_at is None else None, secrets)
    message = _message_from_body(body) or redact(reason.strip(), secrets) or f"HTTP {status_code}"
    if len(message) > KEPT_BODY_CHARS:
        message = message[:KEPT_BODY_CHARS] + "..."
    if nested_too_deeply:
        message += _TOO_DEEP_NOTE
    if cut_at is not None:
        message += (
            f" (the error body passed max_event_bytes={cut_at}: it was not read further, "
            "and error.body holds its start)"
        )
    retry_after = parse_retry_after(headers, body)
    if cut_at is not None or len(content) > KEPT_BODY_CHARS:
        body = _start_of(content, secrets)
    request_id = headers.get("x-request-id")
    return _build(
        status_code,
        message,
        body,
        request_id=redact(request_id, secrets) if request_id else None,
        retry_after=retry_after,
    )


def _start_of(content: bytes, secrets: Secrets) -> str:
    """The first ``KEPT_BODY_CHARS`` characters of a body, masked, then "..."."""
    # A secret crossing the cut is masked before it (the bytes were masked already; the text
    # is masked again for a key spelled otherwise).
    room = KEPT_BODY_CHARS + max(map(len, secrets), default=0)
    text = redact(content[: room * 4].decode("utf-8", errors="replace")[:room], secrets)
    return text[:KEPT_BODY_CHARS] + "..."


def error_from_event(payload: Mapping[str, Any], *, secrets: Secrets = ()) -> APIError:
    """Build the error for ``data: {"error": ...}`` received inside a 200 stream.

    As ``error_from_response``: every text masked, any nesting and any value read without
    raising.
    """
    body, nested_too_deeply = _readable(dict(payload), secrets)
    error = body.get("error")
    details: Mapping[str, Any] = error if isinstance(error, Mapping) else {}
    status = _status_of_event(details)
    message = _message_from_body(body) or "The server sent an error event without a message"
    if nested_too_deeply:
        message += _TOO_DEEP_NOTE
    return _build(
        status,
        message,
        body,
        request_id=None,
        retry_after=parse_retry_after({}, body),
    )


def translate_transport_error(error: httpx.HTTPError, secrets: Secrets) -> LunarError:
    """Map an httpx exception to ours, chained to it; the text never contains the key."""
    text = redact(str(error) or type(error).__name__, secrets)
    translated: LunarError
    if isinstance(error, httpx.TimeoutException):
        translated = APITimeoutError(f"Request timed out ({type(error).__name__}): {text}")
    elif isinstance(error, httpx.DecodingError):
        translated = MalformedResponseError(f"The response body could not be decoded: {text}")
    elif isinstance(error, httpx.RemoteProtocolError):
        translated = APIConnectionError(
            f"The connection broke before the answer was complete: {text}"
        )
    else:
        translated = APIConnectionError(
            f"Could not talk to the server ({type(error).__name__}): {text}"
        )
    translated.__cause__ = error
    return translated


def stall_error(model: str, chunk_timeout: float | None) -> StreamChunkTimeoutError:
    """The error for a stream of ``model`` that sent no data event for ``chunk_timeout`` s.

    Raised instead of the httpx error (if any) that the stall caused: the watchdog's cut, or
    the read timeout.
    """
    assert chunk_timeout is not None  # only a stream with a chunk timeout can stall
    return StreamChunkTimeoutError(
        f"No data from {model} for {chunk_timeout:g} s (stream_chunk_timeout; "
        "keep-alive comments do not count), so the model is taken to have stalled. Raise "
        "stream_chunk_timeout, or set it to None, if the model may stay silent that long.",
        timeout=chunk_timeout,
        model=model,
    )


def first_stall_error(model: str, first_timeout: float | None) -> FirstChunkTimeoutError:
    """The error for a stream of ``model`` whose first data event had not come
    ``first_timeout`` s after the request (keep-alive comments do not count).

    Raised instead of the httpx error (if any) that the wait caused: the watchdog's cut, or
    the read timeout, lowered to ``first_timeout`` for the response headers.
    """
    assert first_timeout is not None  # only a stream with a first-chunk timeout can stall
    return FirstChunkTimeoutError(
        f"No data from {model} within {first_timeout:g} s of the request (first_chunk_timeout; "
        "keep-alive comments do not count), so it is not asked again: its thinking would be "
        "paid for and lost again. Raise first_chunk_timeout, or set it to None, if the model "
        "may think that long before its first token.",
        timeout=first_timeout,
        model=model,
    )


def parse_retry_after(headers: Mapping[str, str], body: Any = None) -> float | None:
    """Seconds the server asked to wait, or None when it did not say.

    The first of these that holds a finite, non-negative wait counts:

    1. ``retry-after-ms`` (milliseconds), then ``Retry-After`` (seconds or an HTTP date): the
       answering server's own word;
    2. ``llm_provider-retry-after-ms``, then ``llm_provider-retry-after``: the same headers of the
       provider behind a LiteLLM gateway, which relays every upstream header under the
       ``llm_provider-`` prefix and does not always add ``Retry-After`` itself;
    3. the body's ``retry_after``, at the top level or inside ``error``.

    A value that is not a usable wait (text, negative, NaN, infinite) is skipped, not an error.
    """
    for milliseconds_header, seconds_header in _RETRY_AFTER_HEADERS:
        seconds = _header_wait(headers, milliseconds_header, seconds_header)
        if seconds is not None:
            return seconds
    if isinstance(body, Mapping):
        error = body.get("error")
        for holder in (body, error if isinstance(error, Mapping) else {}):
            seconds = _finite(holder.get("retry_after"))
            if seconds is not None:
                return seconds
    return None


def _build(
    status: int | None,
    message: str,
    body: Any,
    *,
    request_id: str | None,
    retry_after: float | None,
) -> APIError:
    cls = _BY_STATUS.get(status) if status is not None else None
    if cls is None:
        cls = ServerError if status is not None and status >= 500 else APIError
    if cls is BadRequestError and _is_context_overflow(message, body):
        cls = ContextLengthExceededError
    return cls(
        message, status_code=status, body=body, request_id=request_id, retry_after=retry_after
    )


def _parse_body(content: bytes) -> Any:
    if not content:
        return None
    try:
        return loads(content)
    except ValueError:  # not JSON, or JSON nested too deeply for any parser
        return content.decode("utf-8", errors="replace")


def _readable(body: Any, secrets: Secrets) -> tuple[Any, bool]:
    """``body`` as an error may keep it: every string masked, after parsing (a key spelled with
    JSON escapes is found too), object keys included; at most ``_MAX_BODY_DEPTH`` levels deep.
    And whether deeper levels were left out."""
    return redact_deep(body, secrets, max_depth=_MAX_BODY_DEPTH)


def _message_from_body(body: Any) -> str | None:
    """The server's explanation: ``error.message``, ``error``, ``detail``, ``message`` or text."""
    if isinstance(body, str):
        text = body.strip()
        return text[:_SNIPPET_CHARS] + ("..." if len(text) > _SNIPPET_CHARS else "") or None
    if not isinstance(body, Mapping):
        return None
    error = body.get("error")
    if isinstance(error, Mapping) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str) and error:
        return error
    detail = body.get("detail")
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list) and detail:
        # FastAPI-style validation errors: [{"loc": [...], "msg": "..."}].
        return "; ".join(
            str(item.get("msg", item)) if isinstance(item, Mapping) else str(item)
            for item in detail
        )
    if body.get("message"):
        return str(body["message"])
    return None


def _status_of_event(error: Mapping[str, Any]) -> int | None:
    for key in ("code", "status", "status_code"):
        value = error.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1000:
            return value
        if isinstance(value, str) and value.isdigit() and len(value) <= _STATUS_DIGITS:
            return int(value)
    kind = error.get("type") or error.get("code")
    return _STATUS_BY_TYPE.get(kind) if isinstance(kind, str) else None


def _is_context_overflow(message: str, body: Any) -> bool:
    text = f"{message} {json.dumps(body) if isinstance(body, Mapping) else ''}".lower()
    return any(marker in text for marker in _CONTEXT_OVERFLOW_MARKERS)


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond 1e308
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _header_wait(
    headers: Mapping[str, str], milliseconds_header: str, seconds_header: str
) -> float | None:
    """The wait one header pair asks for: milliseconds first, then seconds or an HTTP date."""
    milliseconds = _finite(headers.get(milliseconds_header))
    if milliseconds is not None:
        return milliseconds / 1000
    value = headers.get(seconds_header)
    if value is None:
        return None
    seconds = _finite(value)
    return seconds if seconds is not None else _seconds_until(value)


def _seconds_until(http_date: str) -> float | None:
    """The seconds until an HTTP date; None for a date that is none, or none a ``datetime``
    can hold (a year beyond 9999, a time-zone offset of days: OverflowError inside)."""
    try:
        moment = parsedate_to_datetime(http_date)
        return max(0.0, moment.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None
