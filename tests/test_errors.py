"""Error statuses, bodies and in-stream error events map to typed, provider-neutral errors."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest
from langchain_core import exceptions as core

import langchain_lunar as lunar
from langchain_lunar._error_mapping import error_from_event, error_from_response, parse_retry_after


def from_status(status: int, body: bytes = b"", **headers: str) -> lunar.APIError:
    return error_from_response(status, body, headers)


@pytest.mark.parametrize(
    ("status", "cls", "neutral"),
    [
        (400, lunar.BadRequestError, core.ModelInvalidRequestError),
        (401, lunar.AuthenticationError, core.ModelAuthenticationError),
        (403, lunar.PermissionDeniedError, core.ModelPermissionDeniedError),
        (404, lunar.NotFoundError, core.ModelNotFoundError),
        (422, lunar.UnprocessableEntityError, core.ModelInvalidRequestError),
        (429, lunar.RateLimitError, core.ModelRateLimitError),
        (500, lunar.ServerError, core.ModelAPIError),
        (502, lunar.ServerError, core.ModelAPIError),
        (503, lunar.ServiceUnavailableError, core.ModelAPIError),
        (504, lunar.GatewayTimeoutError, core.ModelAPIError),
    ],
)
def test_status_maps_to_vendor_name_and_neutral_class(
    status: int, cls: type, neutral: type
) -> None:
    error = from_status(status, b'{"error": {"message": "nope"}}', **{"x-request-id": "req_9"})
    assert type(error) is cls
    assert isinstance(error, neutral)
    assert isinstance(error, lunar.APIError)
    assert isinstance(error, lunar.LunarError)
    assert error.status_code == status
    assert error.request_id == "req_9"
    assert error.body == {"error": {"message": "nope"}}
    assert str(error) == f"Error code: {status} - nope (request id: req_9)"


def test_retryable_flags_follow_langchain() -> None:
    assert from_status(429).is_retryable
    assert from_status(503).is_retryable
    assert not from_status(400).is_retryable
    assert not from_status(401).is_retryable


def test_other_statuses_are_plain_api_errors() -> None:
    error = from_status(409, b'{"message": "conflict"}')
    assert type(error) is lunar.APIError
    assert str(error) == "Error code: 409 - conflict"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": {"message": "m1", "type": "t", "code": "c"}}', "m1"),
        (b'{"error": "m2"}', "m2"),
        (b'{"detail": "m3"}', "m3"),
        (b'{"detail": [{"loc": ["body", "model"], "msg": "field required"}]}', "field required"),
        (b'{"message": "m4"}', "m4"),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"", "Bad Gateway"),
    ],
)
def test_message_from_every_body_form(body: bytes, message: str) -> None:
    error = error_from_response(502, body, {}, reason="Bad Gateway")
    assert error.message == message


def test_long_text_body_is_a_snippet() -> None:
    error = from_status(500, b"x" * 5000)
    assert len(error.message) < 600
    assert error.message.endswith("...")


def test_context_overflow_is_a_context_overflow_error() -> None:
    body = (
        b'{"error": {"message": "This model\'s maximum context length is 8192 tokens",'
        b' "code": "context_length_exceeded"}}'
    )
    error = from_status(400, body)
    assert isinstance(error, lunar.ContextLengthExceededError)
    assert isinstance(error, lunar.BadRequestError)
    assert isinstance(error, core.ContextOverflowError)
    assert not isinstance(
        from_status(400, b'{"error": {"message": "bad temperature"}}'), core.ContextOverflowError
    )


def test_retry_after_forms() -> None:
    assert from_status(429, **{"retry-after": "3"}).retry_after == 3  # type: ignore[attr-defined]
    assert from_status(429, **{"retry-after": "1.5"}).retry_after == 1.5  # type: ignore[attr-defined]
    assert from_status(429, **{"retry-after-ms": "250"}).retry_after == 0.25  # type: ignore[attr-defined]
    assert from_status(429, b'{"error": {"message": "x"}, "retry_after": 4}').retry_after == 4  # type: ignore[attr-defined]
    assert from_status(429, b'{"error": {"message": "x", "retry_after": 6}}').retry_after == 6  # type: ignore[attr-defined]
    assert from_status(429).retry_after is None  # type: ignore[attr-defined]


def test_retry_after_http_date() -> None:
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    seconds = parse_retry_after({"retry-after": when})
    assert seconds is not None
    assert 28 <= seconds <= 30
    past = format_datetime(datetime.now(timezone.utc) - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"retry-after": past}) == 0


@pytest.mark.parametrize("bad", ["soon", "-1", "nan", "inf", ""])
def test_unusable_retry_after_is_none(bad: str) -> None:
    assert parse_retry_after({"retry-after": bad}) is None


def test_ms_header_wins_over_seconds() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"llm_provider-retry-after": "3"}, 3.0),
        ({"llm_provider-retry-after": "1.5"}, 1.5),
        ({"llm_provider-retry-after": "0"}, 0.0),
        ({"llm_provider-retry-after-ms": "1500"}, 1.5),
        ({"llm_provider-retry-after-ms": "0.5"}, 0.0005),
    ],
)
def test_retry_after_relayed_by_a_litellm_gateway(headers: dict[str, str], expected: float) -> None:
    assert parse_retry_after(headers) == expected
    assert error_from_response(429, b"", headers).retry_after == expected


def test_relayed_retry_after_http_date() -> None:
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    seconds = parse_retry_after({"llm_provider-retry-after": when})
    assert seconds is not None
    assert 28 <= seconds <= 30
    past = format_datetime(datetime.now(timezone.utc) - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"llm_provider-retry-after": past}) == 0


def test_relayed_headers_are_found_in_any_case_in_httpx_headers() -> None:
    headers = httpx.Headers({"LLM_Provider-Retry-After-Ms": "2500"})
    assert parse_retry_after(headers) == 2.5
    assert parse_retry_after(httpx.Headers({"LLM_PROVIDER-RETRY-AFTER": "4"})) == 4


@pytest.mark.parametrize("bad", ["soon", "-1", "nan", "inf", "-inf", ""])
@pytest.mark.parametrize("name", ["llm_provider-retry-after", "llm_provider-retry-after-ms"])
def test_unusable_relayed_retry_after_is_none(name: str, bad: str) -> None:
    assert parse_retry_after({name: bad}) is None


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        # the answering server's own headers come before the relayed ones...
        ({"retry-after": "9", "llm_provider-retry-after-ms": "1500"}, None, 9.0),
        ({"retry-after-ms": "250", "llm_provider-retry-after": "7"}, None, 0.25),
        # ...milliseconds before seconds among the relayed ones, as among the direct ones...
        ({"llm_provider-retry-after-ms": "1500", "llm_provider-retry-after": "9"}, None, 1.5),
        # ...and every header before the body.
        ({"llm_provider-retry-after": "7"}, {"retry_after": 2}, 7.0),
        # An unusable header does not hide a usable one further down.
        ({"retry-after": "soon", "llm_provider-retry-after": "7"}, None, 7.0),
        ({"llm_provider-retry-after-ms": "nan", "llm_provider-retry-after": "7"}, None, 7.0),
        ({"llm_provider-retry-after": "-1"}, {"retry_after": 2}, 2.0),
    ],
)
def test_retry_after_precedence(headers: dict[str, str], body: object, expected: float) -> None:
    assert parse_retry_after(headers, body) == expected


@pytest.mark.parametrize(
    ("error", "cls", "status"),
    [
        ({"message": "m", "code": 429}, lunar.RateLimitError, 429),
        ({"message": "m", "code": "503"}, lunar.ServiceUnavailableError, 503),
        ({"message": "m", "type": "rate_limit_error"}, lunar.RateLimitError, 429),
        ({"message": "m", "type": "server_error"}, lunar.ServerError, 500),
        ({"message": "m", "code": "weird"}, lunar.APIError, None),
    ],
)
def test_in_stream_error_event(error: dict[str, object], cls: type, status: int | None) -> None:
    built = error_from_event({"error": error})
    assert type(built) is cls
    assert built.status_code == status
    assert built.message == "m"


def test_key_echoed_by_the_server_is_redacted() -> None:
    error = error_from_response(
        401, b'{"error": {"message": "bad key sk-canary-123"}}', {}, secrets=("sk-canary-123",)
    )
    assert "sk-canary-123" not in str(error)


def test_errors_pickle() -> None:
    error = from_status(429, b'{"error": {"message": "slow"}}', **{"retry-after": "2"})
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is lunar.RateLimitError
    assert (str(clone), clone.retry_after, clone.status_code) == (str(error), 2, 429)
    interrupted = lunar.StreamInterruptedError("broke", text="abc", model="m")
    clone2 = pickle.loads(pickle.dumps(interrupted))
    assert (str(clone2), clone2.text, clone2.model) == ("broke", "abc", "m")
