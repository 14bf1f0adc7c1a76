"""Build text chunks without pydantic validation: the one object made for every streamed token.

Validating an ``AIMessageChunk`` and its ``ChatGenerationChunk`` costs about 7 µs, more than
everything else ChatLunar does per token, and pydantic's ``model_construct`` is no faster
because it runs in Python. For a text-only chunk the validated result is known exactly, so
``text_chunk`` fills in the same instance state directly.

That state is pydantic's internal layout, so at import this module builds one chunk both ways
and compares them field by field; if they differ (a future pydantic or langchain-core),
``text_chunk`` validates as usual. Chunks with tool-call fragments always validate, because
langchain-core derives ``tool_calls`` from them.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

_MESSAGE_FIELDS_SET = ("content", "id")
_GENERATION_FIELDS_SET = ("message", "text")


def _unchecked(
    cls: type[Any],
    values: dict[str, Any],
    fields_set: tuple[str, ...],
    extra: dict[str, Any] | None,
) -> Any:
    instance: Any = object.__new__(cls)  # pydantic models do not override __new__
    object.__setattr__(instance, "__dict__", values)
    # Fresh containers each time: pydantic adds to them when a field is assigned later.
    object.__setattr__(instance, "__pydantic_fields_set__", set(fields_set))
    object.__setattr__(instance, "__pydantic_extra__", extra)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance


def _fast_text_chunk(content: str, message_id: str | None) -> ChatGenerationChunk:
    message = _unchecked(
        AIMessageChunk,
        {
            "content": content,
            "additional_kwargs": {},
            "response_metadata": {},
            "type": "AIMessageChunk",
            "name": None,
            "id": message_id,
            "tool_calls": [],
            "invalid_tool_calls": [],
            "usage_metadata": None,
            "tool_call_chunks": [],
            "chunk_position": None,
        },
        _MESSAGE_FIELDS_SET,
        {},  # AIMessageChunk allows extra fields
    )
    generation: ChatGenerationChunk = _unchecked(
        ChatGenerationChunk,
        {
            "text": content,
            "generation_info": None,
            "type": "ChatGenerationChunk",
            "message": message,
        },
        _GENERATION_FIELDS_SET,
        None,
    )
    return generation


def _validated_text_chunk(content: str, message_id: str | None) -> ChatGenerationChunk:
    return ChatGenerationChunk(message=AIMessageChunk(content=content, id=message_id))


def _same_state(left: Any, right: Any) -> bool:
    return (
        type(left) is type(right)
        and left.__dict__.keys() == right.__dict__.keys()
        and all(
            _same_state(left.__dict__[k], right.__dict__[k])
            if hasattr(right.__dict__[k], "__pydantic_fields_set__")
            else left.__dict__[k] == right.__dict__[k]
            for k in right.__dict__
        )
        and left.__pydantic_fields_set__ == right.__pydantic_fields_set__
        and left.__pydantic_extra__ == right.__pydantic_extra__
        and left.__pydantic_private__ == right.__pydantic_private__
    )


def _fast_path_is_exact() -> bool:
    try:
        return _same_state(_fast_text_chunk("a", "b"), _validated_text_chunk("a", "b"))
    except Exception:  # any layout surprise means: do not take the fast path
        return False


text_chunk = _fast_text_chunk if _fast_path_is_exact() else _validated_text_chunk
"""``ChatGenerationChunk(message=AIMessageChunk(content=content, id=message_id))``, fast."""
