"""The unvalidated text chunk must be indistinguishable from the validated one."""

from __future__ import annotations

import copy
import pickle

import pytest
from langchain_core.load import dumpd
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from langchain_lunar import _fast_chunks


def test_the_fast_path_is_active_with_the_pinned_libraries() -> None:
    # If a pydantic or langchain-core release changes the layout, the self-check turns the
    # fast path off (correct but slower); this test makes that visible.
    assert _fast_chunks.text_chunk is _fast_chunks._fast_text_chunk


def test_same_as_validated() -> None:
    fast = _fast_chunks._fast_text_chunk("héllo", "chatcmpl-1")
    slow = ChatGenerationChunk(message=AIMessageChunk(content="héllo", id="chatcmpl-1"))
    assert fast == slow
    assert fast.text == "héllo"
    assert fast.model_dump() == slow.model_dump()
    assert dumpd(fast) == dumpd(slow)
    assert pickle.loads(pickle.dumps(fast)) == slow
    assert fast.message.model_fields_set == slow.message.model_fields_set


def test_dicts_are_per_chunk_and_the_shared_empty_lists_refuse_to_change() -> None:
    first = _fast_chunks.text_chunk("a", None)
    second = _fast_chunks.text_chunk("b", None)
    first.message.additional_kwargs["x"] = 1
    assert second.message.additional_kwargs == {}
    call = {"name": "f", "args": "", "id": "1", "index": 0, "type": "tool_call_chunk"}
    for change in (
        lambda: first.message.tool_call_chunks.append(call),
        lambda: first.message.tool_calls.extend([call]),
        lambda: first.message.invalid_tool_calls.insert(0, call),
    ):
        with pytest.raises(TypeError, match="assign a new list"):
            change()
    assert second.message.tool_call_chunks == []
    first.message.tool_call_chunks = [call]  # assigning a new list is fine
    assert second.message.tool_call_chunks == []


def test_copies_are_ordinary_lists() -> None:
    chunk = _fast_chunks.text_chunk("a", None)
    for copy_ in (
        chunk.model_copy(deep=True),
        pickle.loads(pickle.dumps(chunk)),
        copy.deepcopy(chunk),
    ):
        copy_.message.tool_calls.append({"name": "f", "args": {}, "id": "1", "type": "tool_call"})
        assert chunk.message.tool_calls == []
    assert type(chunk.message.tool_calls.copy()) is list


def test_assignment_and_aggregation_behave() -> None:
    chunk = _fast_chunks.text_chunk("a", None)
    chunk.message.id = "run-1"  # as BaseChatModel.stream does
    chunk.message.response_metadata = {"k": "v"}
    assert "response_metadata" in chunk.message.model_fields_set
    total = (
        chunk
        + _fast_chunks.text_chunk("b", "run-1")
        + ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                chunk_position="last",
                usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
            )
        )
    )
    assert total.text == "ab"
    assert total.message.usage_metadata == {
        "input_tokens": 1,
        "output_tokens": 2,
        "total_tokens": 3,
    }
