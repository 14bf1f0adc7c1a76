"""``_json.loads``: orjson's speed, ``json.loads``'s answers."""

from __future__ import annotations

import json
import math

import pytest

from langchain_lunar import _json


def test_orjson_is_used_where_installed() -> None:
    # It comes with langchain-core on CPython; without it every chunk parses 3x slower.
    assert _json._orjson_loads is not None


@pytest.mark.parametrize(
    "document",
    [
        '{"choices": [{"delta": {"content": "h\\u00e9llo \\ud83c\\udf19"}}], "usage": null}',
        b'{"a": 1, "a": 2, "b": [1.5, -0, 1e-400, true, false, null]}',
        '"\\ud800"',  # a lone surrogate: orjson refuses, json accepts
        "[NaN, Infinity, 1e400]",  # not JSON, but json accepts it
    ],
)
def test_same_answer_as_json(document: str | bytes) -> None:
    assert repr(_json.loads(document)) == repr(json.loads(document))


@pytest.mark.parametrize(
    "document", ["", "{", "[1,]", "data: {}", b'"\xff"', "[" * 100_000 + "]" * 100_000]
)
def test_every_refusal_is_a_value_error(document: str | bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (the type is the promise; texts vary)
        _json.loads(document)


def test_without_orjson_json_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_json, "_orjson_loads", None)
    assert math.isnan(_json.loads("NaN"))
    assert _json.loads('{"x": [1]}') == {"x": [1]}


def test_the_one_documented_difference_integers_beyond_64_bits() -> None:
    # README and _json.py say so; if orjson ever keeps them exact, both texts should change.
    assert _json.loads("12345678901234567890123") == 1.2345678901234568e22
    assert json.loads("12345678901234567890123") == 12345678901234567890123
