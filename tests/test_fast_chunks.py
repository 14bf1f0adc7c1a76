"""The unvalidated text chunk must be indistinguishable from the validated one."""

from __future__ import annotations

import copy
import logging
import pickle

import pytest
from langchain_core.load import dumpd
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from langchain_lunar import _fast_chunks


def test_the_fast_path_is_active_with_the_pinned_libraries() -> None:
    # If a pydantic or langchain-core release changes the layout, the self-check turns the
    # fast path off (correct but slower); this test makes that visible.
    assert _fast_chunks.text_chunk is not _fast_chunks.validated_text_chunk


@pytest.mark.parametrize("content", ["héllo", "", "a\nb"])
def test_same_as_validated(content: str) -> None:
    fast = _fast_chunks.text_chunk(content, "chatcmpl-1")
    slow = ChatGenerationChunk(message=AIMessageChunk(content=content, id="chatcmpl-1"))
    assert _fast_chunks.same_state(fast, slow)
    assert fast == slow
    assert fast.model_dump() == slow.model_dump()
    assert dumpd(fast) == dumpd(slow)
    assert pickle.loads(pickle.dumps(fast)) == slow
    assert fast.message.model_fields_set == slow.message.model_fields_set


def test_same_as_validated_in_detail() -> None:
    fast = _fast_chunks.text_chunk("héllo", "chatcmpl-1")
    slow = ChatGenerationChunk(message=AIMessageChunk(content="héllo", id="chatcmpl-1"))
    assert fast == slow
    assert fast.text == "héllo"
    assert fast.model_dump() == slow.model_dump()
    assert dumpd(fast) == dumpd(slow)
    assert pickle.loads(pickle.dumps(fast)) == slow
    assert fast.message.model_fields_set == slow.message.model_fields_set


def test_every_container_is_the_chunks_own() -> None:
    first = _fast_chunks.text_chunk("a", None)
    second = _fast_chunks.text_chunk("b", None)
    first.message.additional_kwargs["x"] = 1
    first.message.response_metadata["y"] = 2
    call = {"name": "f", "args": "", "id": "1", "index": 0, "type": "tool_call_chunk"}
    first.message.tool_call_chunks.append(call)
    first.message.tool_calls.append({"name": "f", "args": {}, "id": "1", "type": "tool_call"})
    first.message.invalid_tool_calls.append(
        {"name": "f", "args": "{", "id": "1", "error": None, "type": "invalid_tool_call"}
    )
    assert second == ChatGenerationChunk(message=AIMessageChunk(content="b"))
    for name in ("tool_calls", "invalid_tool_calls", "tool_call_chunks"):
        assert type(getattr(second.message, name)) is list


def test_copies_are_equal_and_independent() -> None:
    chunk = _fast_chunks.text_chunk("a", None)
    for copy_ in (
        chunk.model_copy(deep=True),
        pickle.loads(pickle.dumps(chunk)),
        copy.deepcopy(chunk),
    ):
        assert copy_ == chunk
        copy_.message.tool_calls.append({"name": "f", "args": {}, "id": "1", "type": "tool_call"})
        assert chunk.message.tool_calls == []


def test_a_layout_surprise_falls_back_to_validation_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> _fast_chunks.TextChunkFactory:
        raise KeyError("__pydantic_fields_set__")

    monkeypatch.setattr(_fast_chunks, "_build_fast_text_chunk", broken)
    with caplog.at_level(logging.DEBUG, logger="langchain_lunar"):
        chosen = _fast_chunks.choose_text_chunk()
    assert chosen is _fast_chunks.validated_text_chunk
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "__pydantic_fields_set__" in caplog.records[0].getMessage()


def test_a_fast_chunk_that_differs_is_refused(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = _fast_chunks._build_fast_text_chunk()

    def off_by_one() -> _fast_chunks.TextChunkFactory:
        return lambda content, message_id: real(content + "!", message_id)

    monkeypatch.setattr(_fast_chunks, "_build_fast_text_chunk", off_by_one)
    with caplog.at_level(logging.DEBUG, logger="langchain_lunar"):
        assert _fast_chunks.choose_text_chunk() is _fast_chunks.validated_text_chunk
    assert "differs" in caplog.text


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
