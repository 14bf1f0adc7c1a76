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
