"""Any JSON value in any position of an answer: the exact text, or a clear typed error.

Hypothesis builds chunks and completions in which each position (choices, choice, delta,
content, tool calls and their members, usage and its members, id, model, finish_reason) holds
either what the protocol allows or any JSON value at all. The oracle below is written from the
protocol doc, not from the client: a stream of well-formed events gives exactly their text; the
first ill-formed event gives a ``MalformedResponseError`` that quotes it, wrapped in a
``StreamInterruptedError`` holding exactly the delivered text once anything was delivered.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langchain_lunar import MalformedResponseError, StreamInterruptedError

from .calls import CallWay, call_sync, invoking_ways, streaming_ways
from .helpers import Recorder, merged, mock_model, sse

ABSENT: Any = object()  # a key left out of its object

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def mostly(usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` 19 times in 20, else ``rare``: an answer has a dozen positions, and most
    examples should be well formed or wrong in one place only."""
    return st.integers(0, 19).flatmap(lambda roll: rare if roll == 0 else usual)


def sometimes_anything(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly what the protocol allows, now and then null or any JSON value."""
    return mostly(valid, st.one_of(st.just(None), JSON))


def obj(**members: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object whose members are drawn from ``members`` or left out."""
    maybe_absent = {key: mostly(value, st.just(ABSENT)) for key, value in members.items()}
    return st.fixed_dictionaries(maybe_absent).map(
        lambda drawn: {key: value for key, value in drawn.items() if value is not ABSENT}
    )


TEXT = st.text(max_size=5)
COUNT = st.integers(0, 10**6)
USAGE = obj(
    prompt_tokens=sometimes_anything(COUNT),
    completion_tokens=sometimes_anything(COUNT),
    total_tokens=sometimes_anything(COUNT),
    prompt_tokens_details=sometimes_anything(obj(cached_tokens=sometimes_anything(COUNT))),
    completion_tokens_details=sometimes_anything(obj(reasoning_tokens=sometimes_anything(COUNT))),
    total_cost_usd=sometimes_anything(st.floats(0, 10) | st.integers(0, 10)),
)


def tool_call(*, streamed: bool) -> st.SearchStrategy[dict[str, Any]]:
    return obj(
        index=sometimes_anything(st.integers(0, 3)),
        id=sometimes_anything(TEXT),
        type=sometimes_anything(st.just("function")),
        function=sometimes_anything(
            obj(name=sometimes_anything(TEXT), arguments=sometimes_anything(TEXT))
        ),
    )


def answer(*, streamed: bool) -> st.SearchStrategy[Any]:
    """A chunk (``delta``) or a completion (``message``), any position possibly wrong."""
    body = obj(
        content=sometimes_anything(TEXT),
        tool_calls=sometimes_anything(st.lists(tool_call(streamed=streamed), max_size=2)),
    )
    choice = obj(
        index=sometimes_anything(st.just(0)),
        finish_reason=sometimes_anything(st.sampled_from(["stop", "length", "tool_calls"])),
        **{"delta" if streamed else "message": sometimes_anything(body)},
    )
    event = obj(
        id=sometimes_anything(TEXT),
        model=sometimes_anything(TEXT),
        usage=sometimes_anything(USAGE),
        choices=sometimes_anything(
            mostly(st.lists(choice, min_size=1, max_size=1), st.lists(choice, max_size=2))
        ),
    )
    return mostly(event, JSON)


# --- the oracle, from the protocol doc --------------------------------------------------------


def is_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def is_count(value: Any) -> bool:
    return value is None or (type(value) is int and value >= 0)


def usage_ok(usage: Any) -> bool:
    if usage is None:
        return True
    if not isinstance(usage, dict):
        return False
    details = [("prompt_tokens_details", "cached_tokens")]
    details.append(("completion_tokens_details", "reasoning_tokens"))
    return (
        all(is_count(usage.get(name)) for name in ("prompt_tokens", "completion_tokens"))
        and is_count(usage.get("total_tokens"))
        and all(
            usage.get(holder) is None
            or (isinstance(usage[holder], dict) and is_count(usage[holder].get(name)))
            for holder, name in details
        )
        # A cost that is no amount is left out with a warning (test_hostile_errors.py).
    )


def tool_call_ok(raw: Any, *, streamed: bool) -> bool:
    if not isinstance(raw, dict):
        return False
    function = raw.get("function")
    if function is None and streamed:
        function = {}
    return (
        (raw.get("index") is None or type(raw["index"]) is int)
        and is_str(raw.get("id"))
        and is_str(raw.get("type"))
        and isinstance(function, dict)
        and is_str(function.get("name"))
        and is_str(function.get("arguments"))
    )


def body_of(event: Any, *, streamed: bool) -> dict[str, Any] | None:
    """The delta or message of a well-formed event (None if it has none); raises ValueError
    for an ill-formed one."""
    if not isinstance(event, dict):
        raise ValueError("not an object")
    if not (
        is_str(event.get("id")) and is_str(event.get("model")) and usage_ok(event.get("usage"))
    ):
        raise ValueError("id, model or usage")
    choices = event.get("choices")
    if choices is None or choices == []:
        if streamed:
            return None
        raise ValueError("a completion needs a choice")
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
        raise ValueError("choices")
    choice = choices[0]
    if not (choice.get("index") is None or (type(choice["index"]) is int and choice["index"] == 0)):
        raise ValueError("index")
    if not is_str(choice.get("finish_reason")):
        raise ValueError("finish_reason")
    body = choice.get("delta" if streamed else "message")
    if body is None and streamed:
        return None
    if not isinstance(body, dict) or not is_str(body.get("content")):
        raise ValueError("delta or message")
    calls = body.get("tool_calls")
    if calls is not None and not (
        isinstance(calls, list) and all(tool_call_ok(c, streamed=streamed) for c in calls)
    ):
        raise ValueError("tool_calls")
    return body


def first_ill_formed(events: list[Any], *, streamed: bool) -> int | None:
    for position, event in enumerate(events):
        try:
            body_of(event, streamed=streamed)
        except ValueError:
            return position
    return None


def text_of(events: list[Any]) -> str:
    bodies = [body_of(event, streamed=True) or {} for event in events]
    return "".join(body.get("content") or "" for body in bodies)


# Delta fields the protocol doc names; a non-null value under any other name is kept and
# delivered in a chunk of its own (README: "What a stream yields").
DOCUMENTED = {"role", "content", "tool_calls", "reasoning_content", "reasoning"}
DOCUMENTED |= {"reasoning_details", "refusal", "annotations"}


def delivers(event: Any) -> bool:
    body = body_of(event, streamed=True) or {}
    others = [v for k, v in body.items() if k not in DOCUMENTED and v is not None]
    return bool(body.get("content") or body.get("tool_calls") or others)


# --- the tests --------------------------------------------------------------------------------

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@streaming_ways
@PROPERTY
@given(events=st.lists(answer(streamed=True), min_size=1, max_size=5))
def test_a_stream_gives_the_exact_text_or_a_malformed_error_quoting_the_event(
    way: CallWay, events: list[Any]
) -> None:
    body = sse(
        *[json.dumps(event) for event in events],
        {"choices": [{"delta": {}, "finish_reason": "stop"}]},
    )
    model = mock_model(Recorder(body))
    bad = first_ill_formed(events, streamed=True)
    if bad is None:
        chunks = call_sync(model, way)
        assert all(type(chunk.content) is str for chunk in chunks)
        assert merged(chunks).content == text_of(events)
        fragments = sum(
            len((body_of(e, streamed=True) or {}).get("tool_calls") or []) for e in events
        )
        assert sum(len(chunk.tool_call_chunks) for chunk in chunks) == fragments
        return
    with pytest.raises((MalformedResponseError, StreamInterruptedError)) as caught:
        call_sync(model, way)
    error = caught.value
    before = events[:bad]
    if any(delivers(event) for event in before):
        assert type(error) is StreamInterruptedError
        assert error.text == text_of(before)
        error = error.__cause__
    assert type(error) is MalformedResponseError
    assert repr(json.dumps(events[bad])[:300]) in str(error)


@invoking_ways
@PROPERTY
@given(completion=answer(streamed=False))
def test_a_completion_gives_the_exact_text_or_a_malformed_error_quoting_it(
    way: CallWay, completion: Any
) -> None:
    text = json.dumps(completion)
    model = mock_model(
        lambda request: httpx.Response(
            200, content=text.encode(), headers={"content-type": "application/json"}
        )
    )
    if first_ill_formed([completion], streamed=False) is None:
        message = call_sync(model, way)
        body = body_of(completion, streamed=False) or {}
        assert message.content == (body.get("content") or "")
        calls = body.get("tool_calls") or []
        assert len(message.tool_calls) + len(message.invalid_tool_calls) == len(calls)
        return
    with pytest.raises(MalformedResponseError) as caught:
        call_sync(model, way)
    assert type(caught.value) is MalformedResponseError
    assert repr(text[:300]) in str(caught.value)


@pytest.mark.parametrize(
    ("event", "says"),
    [
        ({"choices": 7}, "choices that is not a list"),
        ({"choices": "abc"}, "choices that is not a list"),
        ({"choices": [None]}, "a choice that is not an object"),
        ({"choices": [{"delta": "Hello"}]}, "a delta that is not an object"),
        ({"choices": [{"delta": {"content": 5}}]}, "a delta.content that is not a string"),
        ({"choices": [{"delta": {"content": ["a"]}}]}, "a delta.content that is not a string"),
        ({"choices": [{"delta": {"tool_calls": [None]}}]}, "a tool call that is not an object"),
        ({"usage": {"prompt_tokens": "9"}}, "usage.prompt_tokens that is not a token count"),
    ],
)
def test_the_cases_seen_in_the_wild_say_what_is_wrong(event: dict[str, Any], says: str) -> None:
    model = mock_model(Recorder(sse(event)))
    with pytest.raises(MalformedResponseError, match=says):
        list(model.stream("hi"))
