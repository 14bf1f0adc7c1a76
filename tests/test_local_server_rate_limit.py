"""``LocalLunarServer``'s rate limit per API key (``RateLimit``) and model cooldowns
(``cool()``), over real TCP with plain httpx: no langchain_lunar client code involved."""

from __future__ import annotations

import email.utils
import math
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from langchain_lunar.testing import Fault, LocalLunarServer, RateLimit, RetryAfterForm
from langchain_lunar.testing._limits import retry_hint

PATH = "/chat/completions"


def body(model: str = "m", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    # One client for the whole test: a new one per request costs tens of milliseconds (its
    # TLS context), which would eat the timing slack of the tests.
    with httpx.Client(timeout=5) as c:
        yield c


def post(
    client: httpx.Client,
    server: LocalLunarServer,
    key: str | None = None,
    *,
    bearer: bool = True,
    **extra: Any,
) -> httpx.Response:
    headers = {}
    if key is not None:
        headers = {"Authorization": f"Bearer {key}"} if bearer else {"x-api-key": key}
    return client.post(server.base_url + PATH, json=body(**extra), headers=headers)


def assert_rate_limit_body(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 429
    assert r.headers["content-type"] == "application/json"
    error: dict[str, Any] = r.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "rate_limit_exceeded"
    assert error["message"].startswith("Rate limit reached")
    return error


# --- the token bucket ---------------------------------------------------------------------


def test_no_limit_by_default(client: httpx.Client) -> None:
    with LocalLunarServer() as server:
        assert all(post(client, server, "k").status_code == 200 for _ in range(20))
        assert server.rate_limited == 0
        assert server.admitted_by_key == {"k": 20}


def test_burst_is_admitted_then_429_with_the_wait_for_the_next_token_rounded_up(
    client: httpx.Client,
) -> None:
    # One token every 2.5 s; the next comes 2.5 s after the first request, less the time
    # between the first and third arrivals (at most `elapsed`).
    with LocalLunarServer(rate_limit=RateLimit(0.4, burst=2)) as server:
        start = time.monotonic()
        assert [post(client, server, "k").status_code for _ in range(2)] == [200, 200]
        refused = post(client, server, "k")
        elapsed = time.monotonic() - start
        error = assert_rate_limit_body(refused)
        assert "retry_after" not in error  # the default form is the header only
        assert "retry-after-ms" not in refused.headers
        assert math.ceil(2.5 - elapsed) <= int(refused.headers["retry-after"]) <= 3
        assert "0.4 per second, burst 2" in error["message"]
        assert server.rate_limited == 1
        assert server.admitted_by_key == {"k": 2}
        assert len(server.requests) == 3  # refused requests are recorded too


def test_retry_after_ms_is_exactly_when_the_next_request_is_admitted(client: httpx.Client) -> None:
    with LocalLunarServer(rate_limit=RateLimit(5, burst=1, retry_after="ms")) as server:
        start = time.monotonic()
        assert post(client, server).status_code == 200
        refused = post(client, server)
        elapsed = time.monotonic() - start
        assert_rate_limit_body(refused)
        assert "retry-after" not in refused.headers
        wait_ms = int(refused.headers["retry-after-ms"])
        # 200 ms per token, less what passed between the two arrivals (at most `elapsed`).
        assert 200 - elapsed * 1000 - 1 <= wait_ms <= 200
        time.sleep(wait_ms / 1000)
        assert post(client, server).status_code == 200  # rounded up: never early
        assert server.rate_limited == 1
        assert server.admitted_by_key == {None: 2}


def test_the_bucket_refills_at_the_rate_up_to_the_burst(client: httpx.Client) -> None:
    # One token every 200 ms; each round of requests must fit in the slack noted.
    with LocalLunarServer(rate_limit=RateLimit(5, burst=2)) as server:

        def statuses(n: int) -> list[int]:
            return [post(client, server, "k", bearer=False).status_code for _ in range(n)]

        assert statuses(3) == [200, 200, 429]  # within 200 ms
        time.sleep(0.3)  # one and a half tokens come back
        assert statuses(2) == [200, 429]  # within 100 ms
        time.sleep(0.7)  # three and a half tokens' worth, but the bucket holds two
        assert statuses(3) == [200, 200, 429]  # within 200 ms
        assert server.rate_limited == 3
        assert server.admitted_by_key == {"k": 5}


def test_each_key_has_its_own_bucket_and_keyless_requests_share_one(client: httpx.Client) -> None:
    with LocalLunarServer(rate_limit=(0.1, 1)) as server:
        assert post(client, server, "a").status_code == 200
        assert post(client, server, "a").status_code == 429
        assert post(client, server, "b").status_code == 200
        assert post(client, server, "b").status_code == 429
        assert post(client, server).status_code == 200
        assert post(client, server).status_code == 429
        assert post(client, server, "c", bearer=False).status_code == 200
        assert server.rate_limited == 3
        assert server.admitted_by_key == {"a": 1, "b": 1, None: 1, "c": 1}


def test_bearer_and_x_api_key_are_the_same_key(client: httpx.Client) -> None:
    with LocalLunarServer(rate_limit=RateLimit(0.1, burst=2)) as server:
        assert post(client, server, "k").status_code == 200
        assert post(client, server, "k", bearer=False).status_code == 200
        assert post(client, server, "k").status_code == 429
        assert post(client, server, "k", bearer=False).status_code == 429
        # The vendor SDK sends its key as x-api-key and a JWT as Bearer: x-api-key is the key.
        both = {"x-api-key": "other", "Authorization": "Bearer k"}
        r = client.post(server.base_url + PATH, json=body(), headers=both)
        assert r.status_code == 200
        assert server.admitted_by_key == {"k": 2, "other": 1}


def test_concurrent_requests_never_overdraw_a_bucket(client: httpx.Client) -> None:
    with LocalLunarServer(rate_limit=RateLimit(0.01, burst=3)) as server:
        barrier = threading.Barrier(8)
        statuses: list[int] = []

        def hit() -> None:
            barrier.wait()
            statuses.append(post(client, server, "k").status_code)

        threads = [threading.Thread(target=hit) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert sorted(statuses) == [200] * 3 + [429] * 5
        assert server.rate_limited == 5
        assert server.admitted_by_key == {"k": 3}


def test_streaming_requests_are_refused_before_the_stream_starts(client: httpx.Client) -> None:
    with LocalLunarServer(rate_limit=RateLimit(0.1, burst=1)) as server:
        assert post(client, server, stream=True).headers["content-type"] == "text/event-stream"
        refused = post(client, server, stream=True)
        assert_rate_limit_body(refused)
        assert refused.headers["retry-after"] == "10"


def test_refused_requests_take_no_scripted_step_and_failed_auth_takes_no_token(
    client: httpx.Client,
) -> None:
    limit = RateLimit(2, burst=1, retry_after="ms")
    with LocalLunarServer(api_key="k", rate_limit=limit) as server:
        server.script(Fault.status(503), "scripted")
        assert post(client, server, "wrong").status_code == 401
        assert post(client, server, "k", model="").status_code == 400  # invalid: no token either
        assert post(client, server, "k").status_code == 503  # the one token, and the first step
        refused = post(client, server, "k")
        assert refused.status_code == 429
        time.sleep(int(refused.headers["retry-after-ms"]) / 1000)
        served = post(client, server, "k")
        assert served.json()["choices"][0]["message"]["content"] == "scripted"
        assert server.rate_limited == 1
        assert server.admitted_by_key == {"k": 2}


def test_retry_after_as_http_date(client: httpx.Client) -> None:
    with LocalLunarServer(rate_limit=RateLimit(0.25, burst=1, retry_after="http-date")) as server:
        assert post(client, server).status_code == 200
        refused = post(client, server)
        assert_rate_limit_body(refused)
        when = email.utils.parsedate_to_datetime(refused.headers["retry-after"]).timestamp()
        # The next token is at most 4 s away; a date has whole seconds, rounded up.
        assert time.time() + 2 < when <= time.time() + 5


def test_retry_after_in_the_body_or_not_at_all(client: httpx.Client) -> None:
    with LocalLunarServer(rate_limit=RateLimit(0.5, burst=1, retry_after="body")) as server:
        post(client, server)
        refused = post(client, server)
        error = assert_rate_limit_body(refused)
        assert 1.0 < error["retry_after"] <= 2.0
        assert error["retry_after"] == round(error["retry_after"], 3)
        assert "retry-after" not in refused.headers
        assert "retry-after-ms" not in refused.headers
    with LocalLunarServer(rate_limit=RateLimit(0.5, burst=1, retry_after=None)) as server:
        post(client, server)
        refused = post(client, server)
        assert "retry_after" not in assert_rate_limit_body(refused)
        assert "retry-after" not in refused.headers
        assert "retry-after-ms" not in refused.headers


@pytest.mark.parametrize(
    ("form", "wait", "headers", "extra"),
    [
        ("seconds", 1.0001, {"Retry-After": "2"}, {}),
        ("seconds", 0.001, {"Retry-After": "1"}, {}),
        ("seconds", 3.0, {"Retry-After": "3"}, {}),
        ("ms", 0.2501, {"retry-after-ms": "251"}, {}),
        ("ms", 0.00001, {"retry-after-ms": "1"}, {}),
        ("body", 1.2341, {}, {"retry_after": 1.235}),
        (None, 5.0, {}, {}),
    ],
)
def test_every_retry_hint_rounds_up(
    form: RetryAfterForm | None, wait: float, headers: dict[str, str], extra: dict[str, Any]
) -> None:
    # Rounding down would tell a client to come back before its request can be admitted.
    assert retry_hint(form, wait) == (headers, extra)


def test_rate_limit_arguments_are_checked() -> None:
    assert RateLimit(2.5).burst == 3  # default: one second's worth
    assert RateLimit(0.1).burst == 1
    for bad in [0, -1.0, math.inf, math.nan, True, "5"]:
        with pytest.raises(ValueError, match="requests_per_second"):
            RateLimit(bad)  # type: ignore[arg-type]
    for bad_burst in [0, 1.5, True]:
        with pytest.raises(ValueError, match="burst"):
            RateLimit(1, burst=bad_burst)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retry_after"):
        RateLimit(1, retry_after="minutes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rate_limit"):
        LocalLunarServer(rate_limit=5)  # type: ignore[arg-type]


# --- cooling models -----------------------------------------------------------------------


def test_a_cooling_model_is_refused_with_the_time_left_and_others_are_served(
    client: httpx.Client,
) -> None:
    with LocalLunarServer() as server:
        server.cool("model-a", 2.5)
        first = post(client, server, model="model-a")
        error = assert_rate_limit_body(first)
        assert "'model-a'" in error["message"]
        assert first.headers["retry-after"] == "3"  # 2.5 s left, rounded up
        assert post(client, server, model="model-b").status_code == 200
        time.sleep(0.6)
        later = post(client, server, model="model-a", stream=True)
        assert later.status_code == 429
        assert later.headers["retry-after"] == "2"  # under 1.9 s left now
        assert server.cooling_refusals == {"model-a": 2}
        assert server.rate_limited == 0  # not the rate limit's 429s
        assert [r.model for r in server.requests] == ["model-a", "model-b", "model-a"]


def test_cooling_ends_after_its_period_or_at_zero_and_takes_no_step(client: httpx.Client) -> None:
    with LocalLunarServer() as server:
        server.script("after the cooldown", model="model-a")
        start = time.monotonic()
        server.cool("model-a", 0.3, retry_after="ms")
        refused = post(client, server, model="model-a")
        elapsed = time.monotonic() - start
        assert refused.status_code == 429
        assert 300 - elapsed * 1000 <= int(refused.headers["retry-after-ms"]) <= 300
        time.sleep(int(refused.headers["retry-after-ms"]) / 1000)
        served = post(client, server, model="model-a")
        assert served.json()["choices"][0]["message"]["content"] == "after the cooldown"

        server.cool("model-a", 60)
        assert post(client, server, model="model-a").headers["retry-after"] == "60"
        server.cool("model-a", 0)
        assert post(client, server, model="model-a").status_code == 200
        assert server.cooling_refusals == {"model-a": 2}


def test_cooling_comes_after_the_rate_limit_and_refused_requests_took_a_token(
    client: httpx.Client,
) -> None:
    with LocalLunarServer(rate_limit=RateLimit(0.1, burst=2)) as server:
        server.cool("model-a", 30)
        assert post(client, server, "k", model="model-a").headers["retry-after"] == "30"
        assert post(client, server, "k", model="model-b").status_code == 200
        refused = post(client, server, "k", model="model-a")
        assert "cooling" not in assert_rate_limit_body(refused)["message"]
        assert refused.headers["retry-after"] == "10"
        assert server.cooling_refusals == {"model-a": 1}
        assert server.rate_limited == 1
        assert server.admitted_by_key == {"k": 2}


def test_cool_arguments_are_checked() -> None:
    server = LocalLunarServer()
    with pytest.raises(ValueError, match="model"):
        server.cool("", 1.0)
    for seconds in [-1.0, math.inf, math.nan]:
        with pytest.raises(ValueError, match="seconds"):
            server.cool("m", seconds)
    with pytest.raises(ValueError, match="retry_after"):
        server.cool("m", 1, retry_after="later")  # type: ignore[arg-type]


# --- the CLI ------------------------------------------------------------------------------


def test_cli_rate_limit() -> None:
    args = [sys.executable, "-m", "langchain_lunar.testing", "--rate-limit", "0.2:2"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", base_url)
        statuses = [httpx.post(base_url + PATH, json=body(), timeout=5) for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert statuses[-1].headers["retry-after"] == "5"
    finally:
        proc.terminate()
        proc.communicate(timeout=5)
    bad = subprocess.run(
        [*args[:-1], "fast"], capture_output=True, text=True, timeout=10, check=False
    )
    assert bad.returncode == 2
    assert "argument --rate-limit: expected RPS[:BURST], got 'fast'" in bad.stderr
