"""A canary key must never show in a repr, an error, a log line, a serialized model or a trace."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumpd, dumps, load

from langchain_lunar import ChatLunar, LunarError

from .helpers import Recorder, mock_model, text_stream

CANARY = "sk-canary-5f0e1c2d9a"


class Everything(BaseCallbackHandler):
    """Keeps everything LangChain hands to callbacks and tracers."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.seen.append((serialized, kwargs))

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self.seen.append(response)

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self.seen.append(str(error))


def test_not_in_repr_str_or_model_dump() -> None:
    model = ChatLunar(model="m", api_key=CANARY, timeout=httpx.Timeout(5.0, connect=1.0))
    for text in (repr(model), str(model), str(model.model_dump()), model.model_dump_json()):
        assert CANARY not in text


def test_not_in_dumpd_and_load_brings_it_back_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = ChatLunar(model="m", api_key=CANARY, temperature=0.3)
    serialized = dumpd(model)
    assert CANARY not in json.dumps(serialized)
    assert serialized["kwargs"]["api_key"] == {"lc": 1, "type": "secret", "id": ["LUNAR_API_KEY"]}
    monkeypatch.setenv("LUNAR_API_KEY", CANARY)
    revived = load(
        serialized,
        allowed_objects=[ChatLunar],
        valid_namespaces=["langchain_lunar"],
        secrets_from_env=True,
    )
    assert isinstance(revived, ChatLunar)
    assert revived.api_key is not None
    assert revived.api_key.get_secret_value() == CANARY
    assert revived.temperature == 0.3
    assert CANARY not in dumps(model)


def test_not_in_callbacks_or_traces_even_when_passed_per_call() -> None:
    handler = Everything()
    model = mock_model(Recorder(text_stream("a")), api_key=CANARY)
    model.invoke("hi", stream=True, config={"callbacks": [handler]})
    list(model.stream("hi", api_key=CANARY, config={"callbacks": [handler]}))
    assert CANARY not in repr(handler.seen)


def test_not_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    def echo_key(request: httpx.Request) -> httpx.Response:
        # A hostile or buggy server that echoes the key in its error message.
        return httpx.Response(
            401, json={"error": {"message": f"invalid key {request.headers['x-api-key']}"}}
        )

    caplog.set_level(logging.DEBUG)
    handler = Everything()
    model = mock_model(echo_key, api_key=CANARY)
    for call in (
        lambda: model.invoke("hi", config={"callbacks": [handler]}),
        lambda: list(model.stream("hi")),
    ):
        with pytest.raises(LunarError) as caught:
            call()
        assert CANARY not in str(caught.value)
        assert CANARY not in repr(caught.value)
        assert CANARY not in json.dumps(caught.value.body)  # type: ignore[attr-defined]
    assert CANARY not in caplog.text
    assert CANARY not in repr(handler.seen)


def test_not_in_connection_error_text() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"failed for {request.headers['authorization']}")

    with pytest.raises(LunarError) as caught:
        mock_model(refuse, api_key=CANARY).invoke("hi")
    assert CANARY not in str(caught.value)


# --- the canary walk: every secret a call can carry, through every path ---------------------

HEADER_CANARIES = {
    "Authorization": "Bearer hdr-canary-auth-71c3",
    "X-Api-Key": "hdr-canary-xkey-52d8",
    "Cookie": "session=hdr-canary-cookie-93ef",
    "OpenAI-Session-Token": "hdr-canary-token-0b44",
}
ALL_CANARIES = [CANARY, "hdr-canary-auth-71c3", "hdr-canary-xkey-52d8", "hdr-canary-cookie-93ef"]
ALL_CANARIES.append("hdr-canary-token-0b44")


def assert_clean(*things: Any) -> None:
    text = "\n".join(repr(thing) for thing in things)
    for canary in ALL_CANARIES:
        assert canary not in text, f"{canary} leaked"


class Runs(BaseCallbackHandler):
    """What a tracer such as LangSmith's records: every callback with all its arguments."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self.seen.append(("start", args, kwargs))

    def on_llm_new_token(self, *args: Any, **kwargs: Any) -> None:
        self.seen.append(("token", args, kwargs))

    def on_llm_end(self, *args: Any, **kwargs: Any) -> None:
        self.seen.append(("end", args, kwargs))

    def on_llm_error(self, *args: Any, **kwargs: Any) -> None:
        self.seen.append(("error", args, kwargs))


def echo_headers(status: int) -> Any:
    """A server that echoes every request header in its answer (an error, or the text)."""

    def reply(request: httpx.Request) -> httpx.Response:
        echoed = "; ".join(f"{k}={v}" for k, v in request.headers.items())
        if status != 200:
            return httpx.Response(status, json={"error": {"message": f"bad: {echoed}"}})
        if json.loads(request.content).get("stream"):
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=text_stream("ok")
            )
        return httpx.Response(
            200,
            json={"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]},
        )

    return reply


def traced_calls(runnable: Any, runs: Runs, **kwargs: Any) -> list[Any]:
    import asyncio

    config = {"callbacks": [runs]}

    async def run_async() -> list[Any]:
        results: list[Any] = [await runnable.ainvoke("hi", config=config, **kwargs)]
        results.extend([c async for c in runnable.astream("hi", config=config, **kwargs)])
        events = runnable.astream_events("hi", config=config, version="v2", **kwargs)
        results.extend([event async for event in events])
        return results

    results: list[Any] = [runnable.invoke("hi", config=config, **kwargs)]
    results.extend(runnable.stream("hi", config=config, **kwargs))
    results.extend(runnable.batch(["a", "b"], config=config, **kwargs))
    results.extend(asyncio.run(run_async()))
    return results


@pytest.mark.parametrize("where", ["constructor", "bind", "per-call"])
def test_canaries_never_reach_callbacks_traces_events_or_reprs(where: str) -> None:
    secrets = {"api_key": CANARY, "default_headers": HEADER_CANARIES}
    recorder = Recorder(echo_headers(200))
    model = mock_model(recorder, **(secrets if where == "constructor" else {"api_key": "k-plain"}))
    runnable: Any = model.bind(**secrets) if where == "bind" else model
    runs = Runs()
    results = traced_calls(runnable, runs, **(secrets if where == "per-call" else {}))
    # The secrets were really sent...
    assert recorder.requests[-1].headers["cookie"] == HEADER_CANARIES["Cookie"]
    assert recorder.requests[-1].headers["x-api-key"] == HEADER_CANARIES["X-Api-Key"]
    # ...and show nowhere else.
    assert_clean(results, runs.seen, runnable, model, str(runnable), model.model_dump())
    assert_clean(dumpd(model), dumps(model), model.model_dump_json(), dumpd(runnable))


@pytest.mark.parametrize("status", [401, 500])
def test_canaries_echoed_by_the_server_never_reach_errors_or_logs(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    runs = Runs()
    model = mock_model(echo_headers(status), api_key=CANARY, max_retries=1, fallbacks=["other"])
    model._sleep = lambda seconds: None
    for call in (
        lambda: model.invoke("hi", default_headers=HEADER_CANARIES, config={"callbacks": [runs]}),
        lambda: list(model.stream("hi", default_headers=HEADER_CANARIES)),
    ):
        with pytest.raises(LunarError) as caught:
            call()
        error = caught.value
        assert "bad: " in str(error)  # the server's message is kept, masked
        assert_clean(str(error), repr(error), error.__dict__, error.failed_attempts)
    assert_clean(caplog.text, runs.seen)


def test_canaries_in_a_connection_error_are_masked() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused {dict(request.headers)}")

    model = mock_model(refuse, api_key=CANARY)
    with pytest.raises(LunarError) as caught:
        model.invoke("hi", default_headers=HEADER_CANARIES)
    assert_clean(str(caught.value), caught.value.failed_attempts)


def test_a_short_header_value_is_not_masked_in_text() -> None:
    # Masking "1" would garble every message; a real credential is never that short.
    from langchain_lunar._secrets import secrets_of

    assert secrets_of(None, {"X-Session": "1", "Authorization": "Bearer abcdefgh"}) == (
        "Bearer abcdefgh",
        "abcdefgh",
    )
