"""A hostile server gets nothing: whatever an error answer holds (a wait of 1e308 s, a date in
the year 99999999999999999999, a body nested a thousand levels deep, a code of 5000 digits, a
cost that is NaN, the key spelled with JSON escapes), only a typed ``LunarError`` escapes, the
error is classified by what it is (so a 5xx still retries and falls back), and the key is
masked everywhere."""

from __future__ import annotations

import copy
import json
import logging
import math
import pickle
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langchain_lunar import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ChatLunar,
    InProcessCooldowns,
    RateLimitError,
    RedisCooldowns,
    ServerError,
    ServiceUnavailableError,
    get_lunar_callback,
)
from langchain_lunar._error_mapping import error_from_event, error_from_response, parse_retry_after
from langchain_lunar._json import loads
from langchain_lunar._secrets import MASK, TOO_DEEP, quote, redact_deep
from langchain_lunar.testing import RedisServer

from .calls import STREAMING, CallWay, all_ways, answer, call, streaming_ways
from .helpers import chunk, completion, mock_model, sse, sse_response
from .raw_server import Answer, RawServers, http
from .test_cooldowns import build, fresh_key, key_of
from .test_retries import Responders, ok, status

CANARY = "sk-canary-5f0e1c2d9a"
# The canary with its letters as JSON escapes: what the server sends, not what it means.
ESCAPED_CANARY = "".join(f"\\u{ord(c):04x}" if c.isalpha() else c for c in CANARY)

FAR_DATE = "Mon, 01 Jan 99999999999999999999 00:00:00 GMT"
FAR_OFFSET = "Mon, 01 Jan 2030 00:00:00 +" + "9" * 22


def nested(depth: int) -> str:
    """A JSON list ``depth`` levels deep, as text (no encoder can write it: too deep)."""
    return "[" * depth + '"deep"' + "]" * depth


def deep_text(depth: int) -> str:
    """``{"error": {"error": ...}}`` ``depth`` levels deep, as text (~2 KB for 1000)."""
    return '{"error":' * depth + '"x"' + "}" * depth


# --- Retry-After that no clock can hold ---------------------------------------------------------


@pytest.mark.parametrize("value", [FAR_DATE, FAR_OFFSET])
@pytest.mark.parametrize("name", ["retry-after", "llm_provider-retry-after"])
def test_a_date_no_datetime_can_hold_is_no_wait(name: str, value: str) -> None:
    assert parse_retry_after({name: value}) is None
    error = error_from_response(503, b"", {name: value})
    assert type(error) is ServiceUnavailableError
    assert error.retry_after is None


def test_a_body_retry_after_beyond_a_float_is_no_wait() -> None:
    body = b'{"error": {"message": "slow", "retry_after": 1' + b"0" * 400 + b"}}"
    error = error_from_response(429, body, {})
    assert type(error) is RateLimitError
    assert error.retry_after is None


@all_ways
async def test_a_5xx_with_a_broken_retry_after_still_falls_back(
    way: CallWay, raw_server: RawServers
) -> None:
    broken = http(b"503 Service Unavailable", [b"retry-after: " + FAR_DATE.encode()], b"{}")
    server = raw_server.start(Answer([broken]), Answer([ok_bytes(way, "b")]))
    llm = raw_model(server.url, fallbacks=["b"])
    message = await answer(llm, way)
    assert message.content == "Hi there"
    [failed] = message.response_metadata["failed_attempts"]
    assert (failed["error"], failed["then"]) == ("ServiceUnavailableError", "fallback")


# --- max_cooldown: a wait of a year, or of 1e308 s, cools for minutes ------------------------


@pytest.mark.parametrize("asked", ["1e308", "3e11", "31536000"])
@all_ways
async def test_an_absurd_wait_cools_for_max_cooldown_and_later_calls_work(
    way: CallWay, asked: str
) -> None:
    store = InProcessCooldowns()
    key = fresh_key()
    first, _ = build(
        Responders(status(429, {"Retry-After": asked}), ok("b")),
        cooldowns=store,
        api_key=key,
        fallbacks=["b"],
    )
    before = time.time()
    await answer(first, way)
    ends = store.until(key_of("gpt-4o-mini", key))
    assert ends is not None
    assert 299 <= ends - before <= 300.5  # max_cooldown's default, not the wait asked for

    for _ in range(2):  # every later call: the model is skipped, nothing raises
        script = Responders(ok("b"))
        later, _ = build(script, cooldowns=store, api_key=key, fallbacks=["b"])
        message = await answer(later, way)
        assert script.models == ["b"]
        assert [a["then"] for a in message.response_metadata["failed_attempts"]] == ["skip"]


@all_ways
async def test_max_cooldown_caps_the_cooldown_and_may_be_given_per_call(way: CallWay) -> None:
    store = InProcessCooldowns()
    key = fresh_key()
    script = Responders(status(503, {"Retry-After": "30"}), ok("b"))
    llm, _ = build(script, cooldowns=store, api_key=key, fallbacks=["b"], max_cooldown=5)
    before = time.time()
    await answer(llm, way)
    ends = store.until(key_of("gpt-4o-mini", key))
    assert ends is not None
    assert 4 <= ends - before <= 5.5

    key = fresh_key()
    llm, _ = build(
        Responders(status(503, {"Retry-After": "30"}), ok("b")),
        cooldowns=store,
        api_key=key,
        fallbacks=["b"],
    )
    await answer(llm, way, max_cooldown=2)
    ends = store.until(key_of("gpt-4o-mini", key))
    assert ends is not None
    assert ends - before <= 2.5


@pytest.mark.parametrize("value", [-1, math.inf, math.nan, "long"])
def test_max_cooldown_must_be_a_finite_number_of_seconds(value: Any) -> None:
    assert ChatLunar(model="m", api_key="k", max_cooldown=0.5).max_cooldown == 0.5
    assert ChatLunar(model="m", api_key="k").max_cooldown == 300
    with pytest.raises(ValueError, match="max_cooldown"):
        ChatLunar(model="m", api_key="k", max_cooldown=value)


class AbsurdStore(InProcessCooldowns):
    """A store (not ours, or written by an older client) that answers any end at all for
    gpt-4o-mini."""

    def __init__(self, ends: float) -> None:
        super().__init__()
        self.ends = ends

    def until(self, key: str) -> float | None:
        return self.ends if key.endswith("|gpt-4o-mini") else None


@pytest.mark.parametrize("ends", [math.inf, 1e308, time.time() + 3e11, math.nan])
@all_ways
async def test_any_end_a_store_answers_is_read_without_raising(way: CallWay, ends: float) -> None:
    script = Responders(ok("b"))
    llm, _ = build(script, cooldowns=AbsurdStore(ends), fallbacks=["b"])
    message = await answer(llm, way)
    assert message.content == "Hi there"
    if not math.isnan(ends):  # NaN is no end: the model is asked
        assert script.models == ["b"]

    # The last model cooling: raised as a RateLimitError that waits at most max_cooldown.
    llm, _ = build(Responders(ok("a")), cooldowns=AbsurdStore(ends), max_cooldown=120)
    if math.isnan(ends):
        await answer(llm, way)
        return
    with pytest.raises(RateLimitError) as raised:
        await answer(llm, way)
    assert raised.value.retry_after is not None
    assert raised.value.retry_after <= 120


def test_the_in_process_store_ignores_an_end_that_is_no_number() -> None:
    store = InProcessCooldowns()
    for ends in (math.inf, math.nan):
        store.cool("k", ends)
        assert store.until("k") is None


@all_ways
async def test_an_absurd_wait_cannot_poison_redis(
    way: CallWay, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    key = fresh_key()
    cooldowns = RedisCooldowns(url=redis_server.url, prefix="test:")
    llm, _ = build(
        Responders(status(429, {"Retry-After": "3e11"}), ok("b")),
        cooldowns=cooldowns,
        api_key=key,
        fallbacks=["b"],
    )
    with caplog.at_level(logging.WARNING, logger="langchain_lunar"):
        await answer(llm, way)
        # A store's own guard too, for a caller that is not ChatLunar.
        if way in ("ainvoke", "astream"):
            await cooldowns.acool("other", math.inf)
            await cooldowns.acool("far", time.time() + 1e12)
        else:
            cooldowns.cool("other", math.inf)
            cooldowns.cool("far", time.time() + 1e12)
    assert "Redis" not in caplog.text  # no "cannot reach Redis": the script never failed

    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        stored = f"test:{key_of('gpt-4o-mini', key)}"
        assert 290_000 < client.pttl(stored) <= 300_000
        assert client.get("test:other") is None
        assert 0 < client.pttl("test:far") <= 366 * 86400 * 1000
    if way in ("ainvoke", "astream"):
        await cooldowns.aclose()
    cooldowns.close()


# --- Bodies and events no JSON round trip survives ----------------------------------------------


@pytest.mark.parametrize("status_code", [400, 503])
def test_an_error_body_nested_a_thousand_levels_is_the_status_error(status_code: int) -> None:
    body = ('{"error": {"message": "bad", "detail": ' + nested(1000) + "}}").encode()
    for secrets in ((), (CANARY,)):
        error = error_from_response(status_code, body, {}, secrets=secrets)
        assert error.status_code == status_code
        assert str(error).startswith(f"Error code: {status_code} - bad")
        assert "nested more than" in error.message
        # What a tracer, a logger or a worker pool does with an error: none of it overflows.
        repr(error.body), json.dumps(error.body), copy.deepcopy(error)
        assert type(pickle.loads(pickle.dumps(error))) is type(error)


def test_an_error_body_of_nothing_but_nesting_says_so() -> None:
    error = error_from_response(400, deep_text(1000).encode(), {}, reason="Bad Request")
    assert type(error) is BadRequestError
    assert error.message.startswith("Bad Request (the error body is nested more than")


def test_an_error_body_too_deep_for_the_parser_is_kept_as_text_or_cut() -> None:
    # orjson refuses 5,000 levels on some builds (then the body is kept as text) and parses
    # them on others (Python 3.13's wheel): either way the error is the status's, and bounded.
    error = error_from_response(500, deep_text(5000).encode(), {}, secrets=(CANARY,))
    assert type(error) is ServerError
    assert isinstance(error.body, str) or TOO_DEEP in json.dumps(error.body)


DEEP_EVENT = '{"error": {"message": "overloaded", "code": 503, "detail": ' + nested(1000) + "}}"


def answers_error_then_ok(event: str) -> Responders:
    """An error event given as JSON text (a 200 stream or a JSON answer, as the request asks),
    then a success."""

    def error(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("stream"):
            return sse_response(f"data: {event}\n\ndata: [DONE]\n\n".encode())
        return httpx.Response(200, content=event.encode())

    return Responders(error, ok("b"))


@all_ways
async def test_an_error_event_nested_a_thousand_levels_still_falls_back(way: CallWay) -> None:
    script = answers_error_then_ok(DEEP_EVENT)
    llm = mock_model(script, fallbacks=["b"], api_key=CANARY)
    message = await answer(llm, way)
    assert script.models == ["gpt-4o-mini", "b"]
    [failed] = message.response_metadata["failed_attempts"]
    assert failed["error"] == "ServiceUnavailableError"


def test_error_from_event_reads_a_deep_event_with_and_without_secrets() -> None:
    for secrets in ((), (CANARY,)):
        error = error_from_event(loads(DEEP_EVENT), secrets=secrets)  # orjson: 1024 levels
        assert type(error) is ServiceUnavailableError
        repr(error.body), json.dumps(error.body)


@pytest.mark.parametrize(
    ("code", "kind", "expected"),
    [
        ("9" * 5000, None, APIError),
        ("9" * 5000, "server_error", ServerError),
        (10**400, "rate_limit_error", RateLimitError),
        ("1" + "0" * 30, None, APIError),
    ],
)
def test_a_code_of_thousands_of_digits_is_no_status(code: Any, kind: Any, expected: type) -> None:
    error = error_from_event({"error": {"message": "m", "code": code, "type": kind}})
    assert type(error) is expected
    assert str(error).endswith("m")


@all_ways
async def test_a_code_of_thousands_of_digits_still_falls_back_by_its_type(way: CallWay) -> None:
    event = {"error": {"message": "m", "type": "server_error", "code": "9" * 5000}}
    script = answers_error_then_ok(json.dumps(event))
    message = await answer(mock_model(script, fallbacks=["b"]), way)
    assert script.models == ["gpt-4o-mini", "b"]
    assert message.content == "Hi there"


@streaming_ways
async def test_an_sse_retry_field_of_thousands_of_digits_is_ignored(way: CallWay) -> None:
    body = (
        b"retry: " + b"9" * 5000 + b"\n" + sse(chunk("Hi", role="assistant"), chunk(finish="stop"))
    )
    llm = mock_model(lambda request: sse_response(body))
    chunks = await call(llm, way)
    assert "".join(c.content for c in chunks) == "Hi"


# --- Costs and counts that are no amounts ----------------------------------------------------


BAD_COSTS = {
    "nan": "NaN",
    "inf": "1e999",
    "negative": "-1e308",
    "text": json.dumps(f"0.5 {CANARY}"),
    "huge-int": "1" + "0" * 400,
    "bool": "true",
    "object": "{}",
}


def with_cost(request: httpx.Request, total: str) -> httpx.Response:
    """An answer whose usage has ``total_cost_usd`` as the JSON text given, and valid parts."""
    usage = (
        '{"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, '
        f'"input_cost_usd": 0.001, "output_cost_usd": 0.002, "total_cost_usd": {total}}}'
    )
    if json.loads(request.content).get("stream"):
        events = [json.dumps(chunk("Hi", role="assistant")), json.dumps(chunk(finish="stop"))]
        last = '{"id": "chatcmpl-1", "choices": [], "usage": ' + usage + "}"
        body = "".join(f"data: {e}\n\n" for e in [*events, last, "[DONE]"]).encode()
        return sse_response(body)
    text = (
        '{"id": "c1", "model": "gpt-4o-mini", "choices": [{"index": 0, "message": '
        '{"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}], "usage": ' + usage + "}"
    )
    return httpx.Response(200, content=text.encode(), headers={"content-type": "application/json"})


@pytest.mark.parametrize("total", BAD_COSTS.values(), ids=BAD_COSTS.keys())
@all_ways
async def test_a_cost_that_is_no_amount_is_dropped_with_one_warning(
    way: CallWay, total: str, caplog: pytest.LogCaptureFixture
) -> None:
    llm = mock_model(lambda request: with_cost(request, total), api_key=CANARY)
    with caplog.at_level(logging.WARNING, logger="langchain_lunar"), get_lunar_callback() as cb:
        message = await answer(llm, way)
    assert message.content == "Hi"
    assert "total_cost_usd" not in message.response_metadata
    assert message.response_metadata["input_cost_usd"] == 0.001
    warnings = [r for r in caplog.records if "total_cost_usd" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert CANARY not in caplog.text
    # The parts count instead, and the total stays a finite, non-negative sum.
    assert math.isfinite(cb.cost_usd)
    assert cb.cost_usd == pytest.approx(0.003)


def test_the_meter_adds_only_amounts_whatever_the_metadata_holds() -> None:
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, LLMResult

    from langchain_lunar import LunarCallbackHandler

    handler = LunarCallbackHandler()
    for total in (math.nan, math.inf, -1e308, 10**400, "1", True, 0.5):
        message = AIMessage("x", response_metadata={"model_name": "m", "total_cost_usd": total})
        result = LLMResult(generations=[[ChatGeneration(message=message)]])
        handler.on_llm_end(result, run_id=None)  # type: ignore[arg-type]
    assert handler.cost_usd == 0.5


@all_ways
async def test_token_counts_of_hundreds_of_digits_raise_nothing(way: CallWay) -> None:
    huge = "1" + "0" * 400
    usage = f'"usage": {{"prompt_tokens": {huge}, "completion_tokens": 2, "total_tokens": {huge}}}'

    def reply(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("stream"):
            first = json.dumps(chunk("Hi", role="assistant"))
            last = '{"id": "chatcmpl-1", "choices": [], ' + usage + "}"
            return sse_response(f"data: {first}\n\ndata: {last}\n\ndata: [DONE]\n\n".encode())
        text = (
            '{"id": "c1", "choices": [{"index": 0, "message": {"role": "assistant", '
            '"content": "Hi"}, "finish_reason": "stop"}], ' + usage + "}"
        )
        return httpx.Response(200, content=text.encode())

    with get_lunar_callback() as cb:
        message = await answer(mock_model(reply), way)
    assert message.content == "Hi"
    assert cb.requests == 1
    assert cb.output_tokens == 2


# --- A model skipped while it cools down is no request ------------------------------------------


@all_ways
async def test_a_skipped_model_is_not_counted_as_a_request(way: CallWay) -> None:
    store = InProcessCooldowns()
    store.cool(key_of("gpt-4o-mini", "test-key"), time.time() + 30)
    llm, _ = build(Responders(ok("b")), cooldowns=store, fallbacks=["b"])
    with get_lunar_callback() as cb:
        message = await answer(llm, way)
    assert [a["then"] for a in message.response_metadata["failed_attempts"]] == ["skip"]
    assert cb.requests == 1
    assert cb.by_model["b"].requests == 1
    assert "gpt-4o-mini" not in cb.by_model


# --- The key, masked after parsing and before any cut -------------------------------------------


def assert_masked(error: BaseException) -> None:
    for text in (str(error), repr(error), repr(error.__dict__), repr(pickle.dumps(error))):
        assert CANARY not in text
        assert "canary" not in text  # not even a part of it


def test_a_key_spelled_with_json_escapes_is_masked_in_message_and_body() -> None:
    body = (
        '{"error": {"message": "bad key ' + ESCAPED_CANARY + '", '
        '"' + ESCAPED_CANARY + '": ["' + ESCAPED_CANARY + '"]}}'
    ).encode()
    assert CANARY.encode() not in body
    error = error_from_response(401, body, {}, secrets=(CANARY,))
    assert type(error) is AuthenticationError
    assert error.message == "bad key **********"
    assert_masked(error)
    event = error_from_event(json.loads(body), secrets=(CANARY,))
    assert_masked(event)


def test_a_key_across_the_snippet_cut_is_masked_whole() -> None:
    for start in range(490, 501):
        error = error_from_response(500, b"x" * start + CANARY.encode(), {}, secrets=(CANARY,))
        assert_masked(error)
        assert "sk-" not in error.message


def raw_model(url: str, **fields: Any) -> ChatLunar:
    fields.setdefault("max_retries", 0)
    model = ChatLunar(model="gpt-4o-mini", api_key=CANARY, base_url=url, **fields)
    model._sleep = lambda seconds: None

    async def asleep(seconds: float) -> None:
        return None

    model._asleep = asleep
    return model


def ok_bytes(way: CallWay, model: str) -> bytes:
    """A whole successful answer, as a stream for a streaming way."""
    if way in STREAMING:
        first = chunk("Hi there", role="assistant")
        first["model"] = model
        body = sse(first, chunk(finish="stop"))
        return http(b"200 OK", [b"content-type: text/event-stream"], body)
    answer = json.dumps(completion("Hi there", model=model)).encode()
    return http(b"200 OK", [b"content-type: application/json"], answer)


@all_ways
async def test_the_reason_phrase_and_request_id_are_masked(
    way: CallWay, raw_server: RawServers
) -> None:
    key = CANARY.encode()
    server = raw_server.start(
        Answer([http(b"401 Invalid API key " + key, [b"x-request-id: req-" + key])])
    )
    with pytest.raises(AuthenticationError) as raised:
        await call(raw_model(server.url), way)
    assert raised.value.message == "Invalid API key **********"
    assert raised.value.request_id == "req-**********"
    assert_masked(raised.value)


@all_ways
async def test_retries_and_fallbacks_log_and_record_no_key(
    way: CallWay, raw_server: RawServers, caplog: pytest.LogCaptureFixture
) -> None:
    key = CANARY.encode()
    busy = http(b"503 Busy for " + key, [b"x-request-id: " + key])
    escaped = json.dumps({"error": {"message": "no " + ESCAPED_CANARY}}).replace("\\\\", "\\")
    server = raw_server.start(
        Answer([busy]),
        Answer([http(b"500 Oops", [b"content-type: application/json"], escaped.encode())]),
        Answer([ok_bytes(way, "b")]),
    )
    llm = raw_model(server.url, max_retries=1, fallbacks=["b"])
    with caplog.at_level(logging.DEBUG, logger="langchain_lunar"):
        message = await answer(llm, way)
    assert message.content == "Hi there"
    attempts = message.response_metadata["failed_attempts"]
    assert [a["then"] for a in attempts] == ["retry", "fallback"]
    assert "Retrying gpt-4o-mini" in caplog.text
    assert "Falling back" in caplog.text
    for text in (caplog.text, repr(attempts)):
        assert "canary" not in text


# --- Any error answer at all ---------------------------------------------------------------------

ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.sampled_from([CANARY, f"x {CANARY} y", "9" * 5000, "server_error", "Mon, 01 Jan 9999"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["error", "message", "code", "type", "detail", "retry_after", CANARY])
            | st.text(max_size=4),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40) | (
    st.sampled_from([FAR_DATE, FAR_OFFSET, "1e308", "-1", "nan", "inf", "1" + "0" * 400])
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status_code=st.integers(400, 599),
    body=ANY_JSON,
    retry_after=HEADER_TEXT,
    reason=HEADER_TEXT,
)
def test_any_error_answer_is_a_masked_api_error_of_its_status(
    status_code: int, body: Any, retry_after: str, reason: str
) -> None:
    content = json.dumps(body).encode() if not isinstance(body, str) else body.encode()
    headers = {"retry-after": retry_after, "retry-after-ms": retry_after, "x-request-id": CANARY}
    error = error_from_response(
        status_code, content, headers, reason=reason + CANARY, secrets=(CANARY,)
    )
    assert isinstance(error, APIError)
    assert error.status_code == status_code
    assert error.retry_after is None or 0 <= error.retry_after < math.inf
    assert_masked(error)
    json.dumps(error.body)

    event = error_from_event({"error": body}, secrets=(CANARY,))
    assert isinstance(event, APIError)
    assert_masked(event)


def test_quote_masks_before_it_cuts() -> None:
    text = "x" * 295 + CANARY + " tail"
    assert quote(text, (CANARY,), 300) == repr("x" * 295 + "*****") + "..."
    assert quote(b"short", (CANARY,), 300) == "'short'"


def test_redact_deep_masks_keys_and_values_and_bounds_the_depth() -> None:
    value = {CANARY: [CANARY, {"k": f"a{CANARY}b", "n": 1.5}], "deep": [[[["x"]]]]}
    masked, truncated = redact_deep(value, (CANARY,), max_depth=4)
    assert masked == {MASK: [MASK, {"k": f"a{MASK}b", "n": 1.5}], "deep": [[[TOO_DEEP]]]}
    assert truncated
    assert value[CANARY][0] == CANARY  # a copy: the original is left as it was
    assert redact_deep(nested_value(100_000), (), max_depth=3)[1]  # no recursion, any depth


def nested_value(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value
