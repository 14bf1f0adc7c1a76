"""Per-call settings (``.bind()`` and keyword arguments) are checked exactly as the fields are."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from langchain_lunar import ChatLunar

from .calls import CallWay, all_ways, call_sync
from .helpers import Recorder, mock_model, text_stream

BAD_VALUES = [
    ("base_url", "ftp://x"),
    ("base_url", "api.lunar-sys.com/v1"),
    ("max_retries", -1),
    ("max_retries", "many"),
    ("max_retry_wait", -0.5),
    ("max_cooldown", -1),
    ("max_cooldown", float("inf")),
    ("backoff_base", -1),
    ("backoff_max", -1),
    ("backoff_jitter", -1),
    ("timeout", "soon"),
    ("fallbacks", "gpt-4o"),
    ("fallbacks", [1, 2]),
    ("stream_usage", "maybe"),
    ("default_headers", {"X-Title": 5}),
    ("model_kwargs", ["user", "x"]),
    ("api_key", 12345),
    ("temperature", "hot"),
    ("max_tokens", "lots"),
    ("model", 5),
    ("stop", 5),
]


@all_ways
@pytest.mark.parametrize(("name", "value"), BAD_VALUES, ids=[f"{n}={v!r}" for n, v in BAD_VALUES])
def test_a_bad_per_call_value_is_a_value_error_naming_it_before_any_request(
    way: CallWay, name: str, value: Any
) -> None:
    # The constructor refuses the same value, so both paths agree.
    with pytest.raises(ValidationError):
        ChatLunar(**{"model": "m", "api_key": "k", name: value})
    recorder = Recorder(text_stream("a"))
    model = mock_model(recorder)
    for runnable in (model.bind(**{name: value}),):
        with pytest.raises(ValueError, match=f"Invalid per-call setting {name}") as caught:
            call_sync(runnable, way)
        assert not isinstance(caught.value, ValidationError)
    assert recorder.requests == []


def test_per_call_values_are_normalised_as_the_fields_are() -> None:
    recorder = Recorder(text_stream("a"))
    model = mock_model(recorder)
    list(model.stream("hi", base_url="http://other.test/v1/", max_retries="1", temperature="0.5"))
    request = recorder.requests[-1]
    assert str(request.url) == "http://other.test/v1/chat/completions"
    assert recorder.last_json["temperature"] == 0.5


def test_the_value_of_a_secret_setting_is_not_quoted() -> None:
    model = mock_model(Recorder(text_stream("a")))
    with pytest.raises(ValueError, match="Invalid per-call setting default_headers") as caught:
        model.invoke("hi", default_headers={"Authorization": ["sk-not-a-string-9"]})
    assert "sk-not-a-string-9" not in str(caught.value)


@pytest.mark.parametrize("name", ["http_client", "streaming_unused", "rate_limiter", "cache"])
def test_a_setting_of_the_model_cannot_be_given_per_call(name: str) -> None:
    recorder = Recorder(text_stream("a"))
    model = mock_model(recorder)
    if name not in ChatLunar.model_fields:  # not a field: an ordinary body field
        list(model.stream("hi", **{name: 1}))
        assert recorder.last_json[name] == 1
        return
    with pytest.raises(ValueError, match=f"{name} is a setting of the model"):
        list(model.stream("hi", **{name: httpx.Client()}))
    assert recorder.requests == []


def test_none_per_call_means_the_models_own_setting() -> None:
    recorder = Recorder(text_stream("a"))
    model = mock_model(recorder, temperature=0.2, base_url="http://own.test/v1")
    list(model.stream("hi", temperature=None, base_url=None))
    assert recorder.last_json["temperature"] == 0.2
    assert str(recorder.requests[-1].url) == "http://own.test/v1/chat/completions"
