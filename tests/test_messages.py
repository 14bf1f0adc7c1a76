"""LangChain messages become the request's `messages`; anything unsupported is named."""

from __future__ import annotations

import pytest
from langchain_core.messages import (
    AIMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_lunar._messages import to_lunar_messages


def test_roles_names_and_tool_round_trip() -> None:
    messages = [
        SystemMessage("be brief"),
        HumanMessage("add 1 and 2", name="ada"),
        AIMessage("", tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "call_1"}]),
        ToolMessage("3", tool_call_id="call_1"),
        AIMessage("It is 3.", name="bot"),
    ]
    assert to_lunar_messages(messages) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "name": "ada", "content": "add 1 and 2"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "type": "function",
                    "id": "call_1",
                    "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "3"},
        {"role": "assistant", "name": "bot", "content": "It is 3."},
    ]


def test_tool_message_with_list_content_and_error_status() -> None:
    message = ToolMessage(
        content=[{"type": "text", "text": "failed: no such city"}], tool_call_id="c", status="error"
    )
    assert to_lunar_messages([message]) == [
        {"role": "tool", "tool_call_id": "c", "content": "failed: no such city"}
    ]


def test_image_parts_in_every_form() -> None:
    message = HumanMessage(
        content=[
            {"type": "text", "text": "what is this?"},
            {
                "type": "image_url",
                "image_url": {"url": "https://example.com/a.png", "detail": "low"},
            },
            {"type": "image", "url": "https://example.com/b.png"},
            {"type": "image", "base64": "iVBORw0KGgo=", "mime_type": "image/png"},
        ]
    )
    parts = to_lunar_messages([message])[0]["content"]
    assert parts[0] == {"type": "text", "text": "what is this?"}
    assert parts[1] == {
        "type": "image_url",
        "image_url": {"url": "https://example.com/a.png", "detail": "low"},
    }
    assert parts[2] == {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}}
    assert parts[3] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
    }


def test_text_only_parts_become_a_string() -> None:
    message = HumanMessage(content=[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])
    assert to_lunar_messages([message]) == [{"role": "user", "content": "a\nb"}]


def test_v1_assistant_message_goes_back_with_its_calls_in_tool_calls() -> None:
    # The message of a stream_events(version="v3") run (or of output_version="v1"): its
    # content holds reasoning and tool_call blocks, which no server takes as content.
    call = {"name": "add", "args": {"a": 1}, "id": "call_1", "type": "tool_call"}
    bad_call = {"name": "add", "args": "{", "id": "call_2", "error": None}
    message = AIMessage(
        [
            {"type": "reasoning", "reasoning": "Add them."},
            {"type": "text", "text": "Adding.", "index": 1},
            {**call, "index": 2},
            {"type": "invalid_tool_call", **bad_call, "index": 3},
        ],
        tool_calls=[call],
        invalid_tool_calls=[{"type": "invalid_tool_call", **bad_call}],  # type: ignore[list-item]
    )
    assert to_lunar_messages([message]) == [
        {
            "role": "assistant",
            "content": "Adding.",
            "tool_calls": [
                {
                    "type": "function",
                    "id": "call_1",
                    "function": {"name": "add", "arguments": '{"a": 1}'},
                },
                {"type": "function", "id": "call_2", "function": {"name": "add", "arguments": "{"}},
            ],
        }
    ]


def test_a_call_block_missing_from_tool_calls_is_refused() -> None:
    block = {"type": "tool_call", "name": "add", "args": {"a": 1}, "id": "call_1"}
    with pytest.raises(ValueError, match=r"messages\[0\]\.content\[0\] is a tool_call block"):
        to_lunar_messages([AIMessage([block])])


def test_chat_message_with_a_known_role() -> None:
    assert to_lunar_messages([ChatMessage(role="user", content="x")]) == [
        {"role": "user", "content": "x"}
    ]


@pytest.mark.parametrize(
    ("message", "named"),
    [
        (FunctionMessage(name="f", content="x"), "FunctionMessage"),
        (ChatMessage(role="narrator", content="x"), "ChatMessage"),
    ],
)
def test_unsupported_message_kinds_are_named(message: object, named: str) -> None:
    with pytest.raises(TypeError, match=named):
        to_lunar_messages([HumanMessage("ok"), message])  # type: ignore[list-item]


def test_unsupported_part_is_named_with_its_place() -> None:
    uploaded = HumanMessage(
        content=[
            {"type": "text", "text": "read this"},
            {"type": "file", "file_id": "file-abc123"},
        ]
    )
    with pytest.raises(ValueError, match=r"messages\[1\]\.content\[1\] is a file block"):
        to_lunar_messages([SystemMessage("s"), uploaded])


def test_unknown_block_is_refused() -> None:
    with pytest.raises(ValueError, match="weird"):
        to_lunar_messages([HumanMessage(content=[{"type": "weird", "x": 1}])])


def test_developer_role_is_refused() -> None:
    message = SystemMessage("s", additional_kwargs={"__openai_role__": "developer"})
    with pytest.raises(ValueError, match="role 'developer'"):
        to_lunar_messages([message])
