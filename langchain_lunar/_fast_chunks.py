"""Build text chunks without pydantic validation: the one object made for every streamed token.

Validating an ``AIMessageChunk`` and its ``ChatGenerationChunk`` costs more than everything
else ChatLunar does per token, and pydantic's ``model_construct`` is no faster because it runs
in Python. For a chunk whose content is a ``str`` and that carries nothing else, the validated
result is known exactly, so ``text_chunk`` fills in the same instance state directly.

That state is pydantic's internal layout. Everything the shortcut relies on (the slot
descriptors of ``BaseModel``, the fields of both classes) is looked up inside one check at
import, which then builds a chunk both ways and compares them field by field. If anything is
missing or differs (a future pydantic or langchain-core), ``text_chunk`` validates as usual and
the reason is logged once at DEBUG on the ``langchain_lunar`` logger. Chunks with tool-call
fragments always validate, because langchain-core derives ``tool_calls`` from them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from pydantic import BaseModel

logger = logging.getLogger("langchain_lunar")

TextChunkFactory = Callable[[str, "str | None"], ChatGenerationChunk]


def validated_text_chunk(content: str, message_id: str | None) -> ChatGenerationChunk:
    """The reference: ``ChatGenerationChunk(message=AIMessageChunk(content=..., id=...))``."""
    return ChatGenerationChunk(message=AIMessageChunk(content=content, id=message_id))


def _build_fast_text_chunk() -> TextChunkFactory:
    """The unvalidated factory; raises if pydantic's layout is not the one it relies on."""
    # pydantic keeps a model's state in four slots of BaseModel; their descriptors are called
    # directly, which skips object.__setattr__'s look-up of the slot by name on every chunk.
    slots = BaseModel.__dict__
    set_dict = slots["__dict__"].__set__
    set_fields_set = slots["__pydantic_fields_set__"].__set__
    set_extra = slots["__pydantic_extra__"].__set__
    set_private = slots["__pydantic_private__"].__set__
    new = object.__new__
    if AIMessageChunk.__new__ is not new or ChatGenerationChunk.__new__ is not new:
        raise TypeError("a chunk class overrides __new__")

    # The validated state of a text chunk, copied per chunk with its own values filled in.
    message_state = dict(validated_text_chunk("", None).message.__dict__)
    generation_state = dict(validated_text_chunk("", None).__dict__)
    # langchain-core keeps the text as a str subclass that `.text()` can also be called on.
    # Its __new__ is Python code that only calls str.__new__; calling that directly skips a
    # Python frame per chunk, and is the same object as long as the class adds no state of its own.
    text_class = type(generation_state["text"])
    if text_class is not str and (
        getattr(text_class, "__slots__", None) != () or text_class.__init__ is not str.__init__
    ):
        raise TypeError(f"{text_class.__name__} keeps state of its own")
    new_str = str.__new__

    def fast_text_chunk(content: str, message_id: str | None) -> ChatGenerationChunk:
        message = new(AIMessageChunk)
        state = message_state.copy()
        state["content"] = content
        state["id"] = message_id
        # Containers are per chunk: callers may add to them.
        state["additional_kwargs"] = {}
        state["response_metadata"] = {}
        state["tool_calls"] = []
        state["invalid_tool_calls"] = []
        state["tool_call_chunks"] = []
        set_dict(message, state)
        # A new set each time: pydantic adds to it when a field is assigned later.
        set_fields_set(message, {"content", "id"})
        set_extra(message, {})  # AIMessageChunk allows extra fields
        set_private(message, None)

        generation = new(ChatGenerationChunk)
        state = generation_state.copy()
        state["text"] = new_str(text_class, content)
        state["message"] = message
        set_dict(generation, state)
        set_fields_set(generation, {"message", "text"})
        set_extra(generation, None)
        set_private(generation, None)
        return generation

    return fast_text_chunk


def same_state(left: Any, right: Any) -> bool:
    """Whether two pydantic objects hold equal state of the same types in every slot, nested
    models included."""
    if type(left) is not type(right) or left.__dict__.keys() != right.__dict__.keys():
        return False
    for key, value in right.__dict__.items():
        mine = left.__dict__[key]
        if hasattr(value, "__pydantic_fields_set__"):
            if not same_state(mine, value):
                return False
        elif mine != value or type(mine) is not type(value):
            return False
    return bool(
        left.__pydantic_fields_set__ == right.__pydantic_fields_set__
        and left.__pydantic_extra__ == right.__pydantic_extra__
        and left.__pydantic_private__ == right.__pydantic_private__
    )


def choose_text_chunk() -> TextChunkFactory:
    """The fast factory if it reproduces the validated chunks exactly, else the validated one."""
    try:
        fast = _build_fast_text_chunk()
        for content, message_id in (("a", "b"), ("", None), ("é\n", "chatcmpl-1")):
            if not same_state(fast(content, message_id), validated_text_chunk(content, message_id)):
                raise ValueError(f"a chunk of {content!r} differs from the validated one")
        first, second = fast("a", None).message.__dict__, fast("a", None).message.__dict__
        shared = [
            name
            for name, value in first.items()
            if isinstance(value, (list, dict, set)) and value is second[name]
        ]
        if shared:
            raise ValueError(f"two chunks would share {shared}")
    except Exception as error:  # any layout surprise means: do not take the fast path
        logger.debug("Streamed text chunks are validated by pydantic, because: %r", error)
        return validated_text_chunk
    return fast


text_chunk: TextChunkFactory = choose_text_chunk()
"""``ChatGenerationChunk(message=AIMessageChunk(content=content, id=message_id))``, fast.
Only for ``str`` content."""
