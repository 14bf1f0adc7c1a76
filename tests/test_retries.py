"""Retries and fallbacks: which errors retry, which fall back, the exact waits, what is recorded."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from langchain_lunar import (
    APIConnectionError,
    APITimeoutError,
    ChatLunar,
    LunarError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)

from .calls import CallWay, all_ways, answer, call, streaming_ways
from .helpers import Recorder, chunk, completion, mock_model, sse, sse_response, text_stream

Responder = Callable[[httpx.Request], httpx.Response]


def ok(model: str) -> Responder:
    """A successful answer, streaming or not, that names the model that served."""

    def reply(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("stream"):
            return sse_response(text_stream("Hi", " there", model=model))
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        return httpx.Response(200, json=completion("Hi there", model=model, usage=usage))

    return reply


def status(code: int, headers: dict[str, str] | None = None, body: Any = None) -> Responder:
    return lambda request: httpx.Response(
        code, headers=headers, json=body or {"error": {"message": f"status {code}"}}
    )


def raises(error: Exception) -> Responder:
    def reply(request: httpx.Request) -> httpx.Response:
        raise error

    return reply


def stream_body(body: bytes) -> Responder:
    return lambda request: sse_response(body)


class Responders:
    """Answers requests in order and records the model each one asked for."""

    def __init__(self, *replies: Responder) -> None:
        self.replies = list(replies)
        self.models: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.models.append(json.loads(request.content)["model"])
        return self.replies.pop(0)(request)


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def scripted(script: Responders, **fields: Any) -> tuple[ChatLunar, Sleeps]:
    fields.setdefault("max_retries", 2)
    fields.setdefault("backoff_jitter", 0)
    model = mock_model(script, **fields)
    sleeps = Sleeps()
    model._sleep = sleeps
    model._asleep = sleeps.asleep
    return model, sleeps


@all_ways
async def test_429_retry_after_seconds_is_waited_then_retried(way: CallWay) -> None:
    script = Responders(status(429, {"Retry-After": "1"}), ok("gpt-4o-mini"))
    model, sleeps = scripted(script)
    message = await answer(model, way)
    assert message.content == "Hi there"
    assert script.models == ["gpt-4o-mini", "gpt-4o-mini"]
    assert sleeps.waits == [1.0]
    assert message.response_metadata["failed_attempts"] == [
        {
            "model": "gpt-4o-mini",
            "error": "RateLimitError",
            "status_code": 429,
            "message": "Error code: 429 - status 429",
            "wait": 1.0,
            "then": "retry",
        }
    ]


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"retry-after-ms": "1500"}, None, 1.5),
        ({}, {"error": {"message": "slow down"}, "retry_after": 2}, 2.0),
        ({"Retry-After": "0"}, None, 0.0),
    ],
)
@all_ways
async def test_every_retry_after_form_is_honoured(
    way: CallWay, headers: dict[str, str], body: Any, expected: float
) -> None:
    model, sleeps = scripted(Responders(status(429, headers, body), ok("m")))
    await answer(model, way)
    assert sleeps.waits == [expected]


@all_ways
async def test_retry_after_http_date(way: CallWay) -> None:
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=3), usegmt=True)
    model, sleeps = scripted(Responders(status(503, {"Retry-After": when}), ok("m")))
    await answer(model, way)
    assert len(sleeps.waits) == 1
    assert 1.5 < sleeps.waits[0] <= 3


@all_ways
async def test_exponential_backoff_then_fallback(way: CallWay) -> None:
    script = Responders(status(500), status(502), status(503), ok("claude-3-haiku"))
    model, sleeps = scripted(script, fallbacks=["claude-3-haiku", "llama-3.1-8b"], backoff_base=0.5)
    message = await answer(model, way)
    assert script.models == ["gpt-4o-mini"] * 3 + ["claude-3-haiku"]
    assert sleeps.waits == [0.5, 1.0, 0.0]  # no wait before moving to the next model
    assert message.response_metadata["model_name"] == "claude-3-haiku"
    failed = message.response_metadata["failed_attempts"]
    assert [(a["model"], a["status_code"], a["wait"], a["then"]) for a in failed] == [
        ("gpt-4o-mini", 500, 0.5, "retry"),
        ("gpt-4o-mini", 502, 1.0, "retry"),
        ("gpt-4o-mini", 503, 0.0, "fallback"),
    ]


def test_backoff_is_capped_and_jittered() -> None:
    script = Responders(status(500), status(500), status(500), status(500), ok("m"))
    model, sleeps = scripted(
        script, max_retries=4, backoff_base=1, backoff_max=3, backoff_jitter=0.25
    )
    model.invoke("hi")
    assert 1 <= sleeps.waits[0] <= 1.25
    assert 2 <= sleeps.waits[1] <= 2.25
    assert sleeps.waits[2:] == [3, 3]


@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
@all_ways
async def test_client_errors_are_raised_at_once_with_one_request(way: CallWay, code: int) -> None:
    script = Responders(status(code), ok("claude-3-haiku"))
    model, sleeps = scripted(script, fallbacks=["claude-3-haiku"])
    with pytest.raises(LunarError) as caught:
        await answer(model, way)
    assert caught.value.status_code == code  # type: ignore[attr-defined]
    assert script.models == ["gpt-4o-mini"]
    assert sleeps.waits == []


@pytest.mark.parametrize("code", [408, 409, 429, 500, 502, 503, 504, 529])
@all_ways
async def test_retryable_statuses(way: CallWay, code: int) -> None:
    script = Responders(status(code), ok("m"))
    model, _sleeps = scripted(script)
    assert (await answer(model, way)).content == "Hi there"
    assert len(script.models) == 2


@all_ways
async def test_a_wait_longer_than_max_retry_wait_moves_on_without_sleeping(way: CallWay) -> None:
    script = Responders(status(429, {"Retry-After": "3600"}), ok("claude-3-haiku"))
    model, sleeps = scripted(script, fallbacks=["claude-3-haiku"], max_retry_wait=5)
    message = await answer(model, way)
    assert script.models == ["gpt-4o-mini", "claude-3-haiku"]
    assert sleeps.waits == [0.0]  # the hour is not waited: the next model is asked at once
    assert message.response_metadata["model_name"] == "claude-3-haiku"


@all_ways
async def test_a_wait_longer_than_max_retry_wait_without_fallback_raises_with_retry_after(
    way: CallWay,
) -> None:
    script = Responders(status(429, {"Retry-After": "3600"}))
    model, sleeps = scripted(script, max_retry_wait=5)
    with pytest.raises(RateLimitError) as caught:
        await answer(model, way)
    assert caught.value.retry_after == 3600
    assert script.models == ["gpt-4o-mini"]
    assert sleeps.waits == []


@all_ways
async def test_a_long_wait_relayed_by_a_gateway_moves_to_the_fallback_at_once(way: CallWay) -> None:
    # LiteLLM's proxy relays the provider's Retry-After under its own name and sends no other.
    script = Responders(status(429, {"llm_provider-retry-after": "3600"}), ok("claude-3-haiku"))
    model, sleeps = scripted(script, fallbacks=["claude-3-haiku"], max_retry_wait=5)
    message = await answer(model, way)
    assert script.models == ["gpt-4o-mini", "claude-3-haiku"]  # one request to the primary
    assert sleeps.waits == [0.0]  # a zero wait: the hour is not slept before the fallback
    assert message.response_metadata["model_name"] == "claude-3-haiku"
    failed = message.response_metadata["failed_attempts"]
    assert [(a["model"], a["status_code"], a["wait"], a["then"]) for a in failed] == [
        ("gpt-4o-mini", 429, 0.0, "fallback")
    ]


@all_ways
async def test_a_wait_in_milliseconds_relayed_by_a_gateway_is_waited_exactly(way: CallWay) -> None:
    script = Responders(status(429, {"llm_provider-retry-after-ms": "1500"}), ok("gpt-4o-mini"))
    model, sleeps = scripted(script, backoff_base=4)  # a backoff wait could not be 1.5 s
    message = await answer(model, way)
    assert message.content == "Hi there"
    assert script.models == ["gpt-4o-mini", "gpt-4o-mini"]
    assert sleeps.waits == [1.5]


@all_ways
async def test_when_every_model_fails_the_last_error_lists_them_all(way: CallWay) -> None:
    script = Responders(
        status(503), status(503), status(429), status(429), status(500), status(500)
    )
    model, _ = scripted(script, max_retries=1, fallbacks=["b", "c"])
    with pytest.raises(ServerError) as caught:
        await answer(model, way)
    assert caught.value.status_code == 500
    assert [(a["model"], a["status_code"]) for a in caught.value.failed_attempts] == [
        ("gpt-4o-mini", 503),
        ("gpt-4o-mini", 503),
        ("b", 429),
        ("b", 429),
        ("c", 500),
        ("c", 500),
    ]
    assert script.models == ["gpt-4o-mini", "gpt-4o-mini", "b", "b", "c", "c"]


@all_ways
async def test_connection_errors_and_timeouts_are_retried(way: CallWay) -> None:
    script = Responders(
        raises(httpx.ConnectError("refused")), raises(httpx.ReadTimeout("slow")), ok("m")
    )
    model, sleeps = scripted(script)
    assert (await answer(model, way)).content == "Hi there"
    assert len(script.models) == 3
    assert len(sleeps.waits) == 2


@all_ways
async def test_exhausted_connection_errors_raise_the_typed_error(way: CallWay) -> None:
    script = Responders(raises(httpx.ConnectTimeout("t")), raises(httpx.ConnectTimeout("t")))
    model, _ = scripted(script, max_retries=1)
    with pytest.raises(APITimeoutError):
        await answer(model, way)
    assert len(script.models) == 2


@streaming_ways
async def test_error_event_before_the_first_chunk_is_retried(way: CallWay) -> None:
    overloaded = stream_body(
        sse(chunk("", role="assistant"), {"error": {"message": "busy", "code": 429}}, done=False)
    )
    script = Responders(overloaded, ok("claude-3-haiku"))
    model, _ = scripted(script, max_retries=0, fallbacks=["claude-3-haiku"])
    message = await answer(model, way)
    assert message.content == "Hi there"
    assert script.models == ["gpt-4o-mini", "claude-3-haiku"]


@streaming_ways
async def test_error_event_of_a_client_error_is_not_retried(way: CallWay) -> None:
    script = Responders(
        stream_body(sse({"error": {"message": "bad", "code": 400}}, done=False)), ok("m")
    )
    model, _ = scripted(script, fallbacks=["b"])
    with pytest.raises(LunarError):
        await answer(model, way)
    assert len(script.models) == 1


@streaming_ways
async def test_a_failure_after_the_first_chunk_is_never_retried(way: CallWay) -> None:
    broken = stream_body(
        sse(chunk("Hel"), chunk("lo"), {"error": {"message": "busy", "code": 503}}, done=False)
    )
    script = Responders(broken, ok("claude-3-haiku"))
    model, sleeps = scripted(script, fallbacks=["claude-3-haiku"])
    delivered: list[Any] = []
    with pytest.raises(StreamInterruptedError) as caught:
        await call(model, way, into=delivered)
    assert [str(c.content) for c in delivered] == ["Hel", "lo"]
    assert caught.value.text == "Hello"
    assert caught.value.model == "gpt-4o-mini"
    assert script.models == ["gpt-4o-mini"]  # no token replayed from another model
    assert sleeps.waits == []


@streaming_ways
async def test_a_role_only_opening_chunk_does_not_commit_the_stream(way: CallWay) -> None:
    role_then_drop = stream_body(
        sse(chunk("", role="assistant"), done=False)
    )  # ends before any token
    script = Responders(role_then_drop, ok("claude-3-haiku"))
    model, _ = scripted(script, max_retries=0, fallbacks=["claude-3-haiku"])
    chunks = await call(model, way)
    assert "".join(str(c.content) for c in chunks) == "Hi there"
    assert chunks[-1].response_metadata["model_name"] == "claude-3-haiku"


def test_retries_and_fallbacks_are_logged_without_the_key(caplog: pytest.LogCaptureFixture) -> None:
    script = Responders(status(429, {"Retry-After": "1"}), status(500), ok("b"))
    model, _ = scripted(script, api_key="sk-canary-77", max_retries=1, fallbacks=["b"])
    with caplog.at_level(logging.WARNING, logger="langchain_lunar"):
        model.invoke("hi")
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert messages[0].startswith(
        "Retrying gpt-4o-mini in 1.00 s (retry 1 of 1) after RateLimitError (429)"
    )
    assert messages[1].startswith("Falling back from gpt-4o-mini to b after ServerError (500)")
    assert "sk-canary-77" not in caplog.text


async def test_per_call_settings_override_the_fields() -> None:
    script = Responders(status(503), ok("b"))
    model, sleeps = scripted(script, max_retries=5)
    await model.ainvoke("hi", max_retries=0, fallbacks=["b"])
    assert script.models == ["gpt-4o-mini", "b"]
    assert sleeps.waits == [0.0]


def test_batch_retries_each_input() -> None:
    script = Responders(status(503), ok("m"), ok("m"))
    model, _ = scripted(script, max_retries=1)
    answers = model.batch(["a", "b"], config={"max_concurrency": 1})
    assert [a.content for a in answers] == ["Hi there", "Hi there"]
    assert len(script.models) == 3


def test_langchain_with_fallbacks_still_works_on_top() -> None:
    script = Responders(status(401))
    model, _ = scripted(script)
    backup = GenericFakeChatModel(messages=iter([AIMessage("from the backup")]))
    assert model.with_fallbacks([backup]).invoke("hi").content == "from the backup"


def test_no_failed_attempts_key_when_nothing_failed() -> None:
    model, _ = scripted(Responders(ok("m")))
    assert "failed_attempts" not in model.invoke("hi").response_metadata


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        ChatLunar(model="m", api_key="k", max_retries=-1)


def test_connection_error_type() -> None:
    assert issubclass(APITimeoutError, APIConnectionError)


@pytest.mark.parametrize("stop_first", [True, False], ids=["stop-then-wait", "wait-then-stop"])
def test_the_decision_does_not_depend_on_tenacitys_hook_order(stop_first: bool) -> None:
    # tenacity 8.2 calls stop before wait, 8.3 and later the reverse; both must give one plan.
    from tenacity import RetryCallState

    from langchain_lunar._retry import RetrySettings, _Plan

    plan = _Plan(["a", "b"], RetrySettings(max_retries=1, backoff_base=1, backoff_jitter=0))
    errors = [
        ServerError("down", status_code=500),
        RateLimitError("slow down", status_code=429, retry_after=2.0),
        ServerError("down", status_code=503),
        ServerError("down", status_code=500),
    ]
    steps = []
    for number, error in enumerate(errors, start=1):
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = number
        state.set_exception((type(error), error, None))
        if stop_first:
            stopped, wait = plan.stop(state), plan.wait(state)
        else:
            wait, stopped = plan.wait(state), plan.stop(state)
        steps.append((plan.model, stopped, wait))
        if not stopped:
            plan.before_sleep(state)
    assert steps == [("a", False, 1.0), ("a", False, 0.0), ("b", False, 1.0), ("b", True, 0.0)]
    assert [(f["model"], f["then"]) for f in plan.failed] == [
        ("a", "retry"),
        ("a", "fallback"),
        ("b", "retry"),
    ]


def test_importing_chat_lunar_does_not_import_tenacity() -> None:
    # Part of the import-time budget: tenacity is imported at the first retry.
    code = (
        "import sys; from langchain_lunar import ChatLunar; "
        "assert 'tenacity' not in sys.modules, 'tenacity imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@all_ways
async def test_a_call_that_succeeds_at_once_builds_no_retry_loop(
    way: CallWay, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tenacity

    def no_loop(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a retry loop was built")

    monkeypatch.setattr(tenacity, "Retrying", no_loop)
    monkeypatch.setattr(tenacity, "AsyncRetrying", no_loop)
    body = text_stream("a", "b")
    model = mock_model(Recorder(body), max_retries=2, streaming=True)
    assert (await answer(model, way)).content == "ab"
