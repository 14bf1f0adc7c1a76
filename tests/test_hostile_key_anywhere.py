"""The key, put anywhere a server can put it, shows nowhere a user can see.

A property test over the whole path (``ChatLunar`` through httpx): the server echoes the key in
an error body (plain or with JSON ``\\u`` escapes, before or across the cut of a quote), a reason
phrase, headers, a redirect's ``Location``, a stream's ids, a line that is not JSON, an error
event, a page, or events after ``[DONE]``; with retries and a fallback, so that retry logs and
``failed_attempts`` are exercised too. Whatever happens, the key is in no error (its text, its
``repr``, its traceback with every cause), no callback, no log line and no answer or metadata.
Only the text a model writes is the user's own and is not searched: no case puts the key there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.callbacks import BaseCallbackHandler
from pydantic import SecretStr

from langchain_lunar import ChatLunar

KEY = "sk-lunar-Zq7Vx2Lm9Rt4Hw8Kp3Nb6Yc1Fd5Gj0Ts"
ESCAPED = KEY[:5] + "\\u00" + format(ord(KEY[5]), "02x") + KEY[6:]  # the same key, in JSON


def _placed(text: str, padding: int) -> str:
    return "x" * padding + text + " (echoed)"


def _sse(*lines: str) -> bytes:
    return "".join(f"data: {line}\n\n" for line in lines).encode()


def _chunk(content: str, **fields: Any) -> str:
    return json.dumps(
        {
            "id": fields.get("id", "c1"),
            "object": "chat.completion.chunk",
            "model": fields.get("model", "m"),
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
        }
    )


STOP = json.dumps({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
EVENT_STREAM = {"content-type": "text/event-stream"}


def _answer(kind: str, status: int, padding: int, escaped: bool) -> httpx.Response:
    """One hostile answer of ``kind``, with the key placed after ``padding`` characters."""
    in_json = _placed(ESCAPED if escaped else KEY, padding)
    plain = _placed(KEY, padding)
    if kind == "error body":
        body = f'{{"error": {{"message": "{in_json}", "code": "{in_json}"}}}}'
        return httpx.Response(
            status,
            headers={"x-request-id": KEY, "retry-after": plain, "content-type": "application/json"},
            content=body.encode(),
            extensions={"reason_phrase": plain.encode()},
        )
    if kind == "error text":
        return httpx.Response(status, content=plain.encode(), headers={"x-request-id": plain})
    if kind == "redirect":
        return httpx.Response(307, headers={"location": f"https://evil.example/{plain}"})
    if kind == "page":
        return httpx.Response(200, headers={"content-type": "text/html"}, content=plain.encode())
    if kind == "ids":
        lines = (_chunk("Hi", id=plain, model=plain), STOP, "[DONE]")
        return httpx.Response(200, headers=EVENT_STREAM, content=_sse(*lines))
    if kind == "not json":
        lines = (_chunk("Hi"), "{" + in_json)
        return httpx.Response(200, headers=EVENT_STREAM, content=_sse(*lines))
    if kind == "error event":
        event = f'{{"error": {{"message": "{in_json}", "code": {status}}}}}'
        return httpx.Response(200, headers=EVENT_STREAM, content=_sse(event))
    if kind == "after done":
        lines = (_chunk("Hi"), STOP, "[DONE]", in_json, f'{{"x": "{in_json}"}}')
        return httpx.Response(200, headers=EVENT_STREAM, content=_sse(*lines))
    if kind == "json instead":
        body = f'{{"id": "{in_json}", "choices": []}}'
        headers = {"content-type": "application/json"}
        return httpx.Response(200, headers=headers, content=body.encode())
    if kind == "completion ids":
        message = {"role": "assistant", "content": "Hi"}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        completion = {"id": plain, "model": plain, "system_fingerprint": plain, "choices": [choice]}
        headers = {"content-type": "application/json"}
        return httpx.Response(200, headers=headers, content=json.dumps(completion).encode())
    raise AssertionError(kind)


KINDS = [
    "error body",
    "error text",
    "redirect",
    "page",
    "ids",
    "not json",
    "error event",
    "after done",
    "json instead",
    "completion ids",
]


class Seen(BaseCallbackHandler):
    """Everything the callbacks were given, as text."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.texts.append(repr(kwargs.get("chunk")))

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self.texts.append(repr(response))

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self.texts.append(_error_text(error))


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _error_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)) + repr(error) + repr(vars(error))


def _model(handler: Callable[[httpx.Request], httpx.Response]) -> ChatLunar:
    transport = httpx.MockTransport(handler)
    return ChatLunar(
        model="first",
        fallbacks=["second"],
        api_key=SecretStr(KEY),
        http_client=httpx.Client(transport=transport, follow_redirects=True),
        http_async_client=httpx.AsyncClient(transport=transport, follow_redirects=True),
        max_retries=1,
        max_retry_wait=0,  # a server-asked wait is never slept here
        backoff_base=0,
        backoff_max=0,
        backoff_jitter=0,
        cooldowns=None,
    )


def _call(llm: ChatLunar, way: str, seen: Seen) -> str:
    config: Any = {"callbacks": [seen]}
    if way == "stream":
        return repr(list(llm.stream("hi", config=config)))
    if way == "invoke":
        return repr(llm.invoke("hi", config=config))

    async def astream() -> str:
        return repr([chunk async for chunk in llm.astream("hi", config=config)])

    return asyncio.run(astream())


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(KINDS),
    status=st.sampled_from([400, 401, 429, 500, 503]),
    padding=st.integers(0, 700),
    escaped=st.booleans(),
    way=st.sampled_from(["stream", "invoke", "astream"]),
)
def test_the_key_shows_nowhere(
    kind: str, status: int, padding: int, escaped: bool, way: str
) -> None:
    lines = Lines()
    logger = logging.getLogger()
    logger.addHandler(lines)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    seen = Seen()
    llm = _model(lambda request: _answer(kind, status, padding, escaped))
    try:
        shown = _call(llm, way, seen)
    except Exception as error:  # any error: what it says is what is checked
        shown = _error_text(error)
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
    for where, text in [("result or error", shown), *(("callbacks", t) for t in seen.texts)]:
        assert KEY not in text, where
    for line in lines.lines:
        assert KEY not in line, line


@pytest.mark.parametrize("kind", KINDS)
def test_each_answer_carries_the_key(kind: str) -> None:
    # The property above is worth something only if the key is in what each kind sends.
    response = _answer(kind, 503, 290, escaped=False)
    sent = response.read() + b"".join(name + value for name, value in response.headers.raw)
    sent += response.extensions.get("reason_phrase", b"")
    assert KEY.encode() in sent
