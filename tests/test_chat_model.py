"""ChatLunar's fields, environment, per-call overrides, headers and validation."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from langchain_lunar import ChatLunar
from langchain_lunar.chat_models import DEFAULT_BASE_URL

from .helpers import Recorder, mock_model, text_stream


def test_key_and_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUNAR_API_KEY", "env-key")
    monkeypatch.setenv("LUNAR_BASE_URL", "http://localhost:9999/v1/")
    model = ChatLunar(model="m")
    assert isinstance(model.api_key, SecretStr)
    assert model.api_key.get_secret_value() == "env-key"
    assert model.base_url == "http://localhost:9999/v1"


def test_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LUNAR_BASE_URL", raising=False)
    assert (
        ChatLunar(model="m", api_key="k").base_url
        == DEFAULT_BASE_URL
        == "https://api.lunar-sys.com/v1"
    )


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LUNAR_API_KEY", raising=False)
    monkeypatch.delenv("LUNAR_BASE_URL", raising=False)
    with pytest.raises(ValidationError, match="LUNAR_API_KEY"):
        ChatLunar(model="m")


def test_no_key_is_fine_for_another_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LUNAR_API_KEY", raising=False)
    assert ChatLunar(model="m", base_url="http://127.0.0.1:1/v1").api_key is None


@pytest.mark.parametrize(
    "url", ["ftp://x/v1", "api.lunar-sys.com/v1", "file:///etc/passwd", "http://"]
)
def test_base_url_must_be_http(url: str) -> None:
    with pytest.raises(ValidationError, match="http:// or https://"):
        ChatLunar(model="m", api_key="k", base_url=url)


def test_model_name_alias_and_unknown_fields() -> None:
    assert ChatLunar(model_name="m", api_key="k").model == "m"
    with pytest.raises(ValidationError, match="temprature"):
        ChatLunar(model="m", api_key="k", temprature=0.1)


def test_url_and_both_auth_headers() -> None:
    recorder = Recorder(text_stream("a"))
    list(mock_model(recorder, api_key="sk-1", base_url="http://lunar.test/v1/").stream("hi"))
    request = recorder.requests[-1]
    assert str(request.url) == "http://lunar.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-1"
    assert request.headers["x-api-key"] == "sk-1"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["user-agent"].startswith("langchain-lunar/")


def test_no_auth_headers_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LUNAR_API_KEY", raising=False)
    recorder = Recorder(text_stream("a"))
    list(mock_model(recorder, api_key=None, base_url="http://local.test/v1").stream("hi"))
    assert "authorization" not in recorder.requests[-1].headers
    assert "x-api-key" not in recorder.requests[-1].headers


def test_every_field_reaches_the_body() -> None:
    recorder = Recorder(text_stream("a"))
    model = mock_model(
        recorder,
        temperature=0.1,
        max_tokens=5,
        top_p=0.9,
        stop=["END"],
        frequency_penalty=0.2,
        presence_penalty=0.3,
        seed=7,
        model_kwargs={"user": "u1"},
        default_headers={"X-Trace": "t1"},
    )
    list(model.stream("hi"))
    body = recorder.last_json
    expected = {
        "temperature": 0.1,
        "max_tokens": 5,
        "top_p": 0.9,
        "stop": ["END"],
        "frequency_penalty": 0.2,
        "presence_penalty": 0.3,
        "seed": 7,
        "user": "u1",
    }
    assert {k: body[k] for k in expected} == expected
    assert recorder.requests[-1].headers["x-trace"] == "t1"


def test_unset_fields_are_not_sent() -> None:
    recorder = Recorder(text_stream("a"))
    list(mock_model(recorder).stream("hi"))
    assert set(recorder.last_json) == {"model", "messages", "stream", "stream_options"}


def test_per_call_overrides_win() -> None:
    recorder = Recorder(text_stream("a"))
    model = mock_model(recorder, temperature=0.1, model_kwargs={"user": "u1"})
    list(
        model.stream(
            "hi",
            model="claude-3-haiku",
            temperature=0.9,
            stop=["x"],
            response_format={"type": "json_object"},
            model_kwargs={"user": "u2"},
            default_headers={"X-Call": "1"},
        )
    )
    body = recorder.last_json
    assert (body["model"], body["temperature"], body["stop"], body["user"]) == (
        "claude-3-haiku",
        0.9,
        ["x"],
        "u2",
    )
    assert body["response_format"] == {"type": "json_object"}
    assert recorder.requests[-1].headers["x-call"] == "1"


def test_bind_overrides_and_per_call_key() -> None:
    recorder = Recorder(text_stream("a"))
    bound = mock_model(recorder).bind(
        model="llama-3.1-8b", seed=3, api_key="call-key", base_url="http://other.test/v2"
    )
    list(bound.stream("hi"))
    request = recorder.requests[-1]
    assert recorder.last_json["model"] == "llama-3.1-8b"
    assert recorder.last_json["seed"] == 3
    assert request.headers["x-api-key"] == "call-key"
    assert str(request.url) == "http://other.test/v2/chat/completions"
    assert "api_key" not in recorder.last_json
    assert "base_url" not in recorder.last_json


def test_per_call_timeout_reaches_httpx() -> None:
    seen: list[dict[str, float | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=text_stream("a")
        )

    model = mock_model(handler, timeout=httpx.Timeout(30.0, connect=2.0))
    list(model.stream("hi"))
    list(model.stream("hi", timeout=5))
    assert seen[0] == {"connect": 2.0, "read": 30.0, "write": 30.0, "pool": 30.0}
    assert seen[1]["read"] == 5


def test_stop_argument_of_invoke_is_sent() -> None:
    recorder = Recorder(text_stream("a"))
    list(mock_model(recorder, stop="never").stream("hi", stop=["END"]))
    assert recorder.last_json["stop"] == ["END"]


def test_n_other_than_one_is_refused() -> None:
    with pytest.raises(ValueError, match="remove n=2"):
        list(mock_model(Recorder(text_stream("a"))).stream("hi", n=2))


def test_ls_params() -> None:
    model = ChatLunar(model="m", api_key="k", temperature=0.2, max_tokens=9, stop="x")
    params = model._get_ls_params()
    assert params == {
        "ls_provider": "lunar",
        "ls_model_name": "m",
        "ls_model_type": "chat",
        "ls_temperature": 0.2,
        "ls_max_tokens": 9,
        "ls_stop": ["x"],
    }
    assert model._get_ls_params(model="other")["ls_model_name"] == "other"


def test_identity() -> None:
    model = ChatLunar(model="m", api_key="k", temperature=0.2)
    assert model._llm_type == "lunar-chat"
    assert model._identifying_params["model"] == "m"
    assert model._identifying_params["temperature"] == 0.2
    assert "api_key" not in model._identifying_params


def test_one_sync_client_reused_across_calls() -> None:
    model = ChatLunar(model="m", api_key="k")
    assert model._sync_client() is model._sync_client()


def test_async_client_per_event_loop_and_reused_within_one() -> None:
    model = ChatLunar(model="m", api_key="k")

    async def two_lookups() -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
        return model._async_client(), model._async_client()

    first, again = asyncio.run(two_lookups())
    assert first is again
    second, _ = asyncio.run(two_lookups())
    assert second is not first  # the first loop is closed; its connections are unusable
    assert len(model._clients._async) == 1  # and its client was closed

    from_thread: list[httpx.AsyncClient] = []
    thread = threading.Thread(target=lambda: from_thread.append(asyncio.run(two_lookups())[0]))
    thread.start()
    thread.join()
    assert from_thread[0] is not second


def test_user_clients_are_used() -> None:
    recorder = Recorder(text_stream("a"))
    model = mock_model(recorder)
    model.invoke("hi", stream=True)
    assert len(recorder.requests) == 1


def test_model_ids_that_name_a_provider_reach_the_server_as_they_are() -> None:
    recorder = Recorder(text_stream("a"))
    list(mock_model(recorder, model="openai/gpt-4o-mini").stream("hi"))
    assert recorder.last_json["model"] == "openai/gpt-4o-mini"
