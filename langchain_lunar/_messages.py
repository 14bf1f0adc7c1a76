"""Turn LangChain messages into the ``messages`` array of a Lunar request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_openai_messages,
)

from langchain_lunar._responses import REQUESTED_MODEL_KEY

_ROLES = frozenset({"system", "user", "assistant", "tool"})
_PART_TYPES = frozenset({"text", "image_url"})


def to_lunar_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """Convert messages, raising a ``TypeError``/``ValueError`` that names anything unsupported.

    Supported: system, human (text and image parts, in OpenAI form or as LangChain's standard
    image blocks), AI (with tool calls), tool messages, and ``name`` on any of them.
    """
    for index, message in enumerate(messages):
        if not isinstance(message, (SystemMessage, HumanMessage, AIMessage, ToolMessage)) and not (
            isinstance(message, ChatMessage) and message.role in _ROLES
        ):
            raise TypeError(
                f"messages[{index}] is a {type(message).__name__}, which Lunar does not take. "
                "Use SystemMessage, HumanMessage, AIMessage or ToolMessage (or a ChatMessage "
                f"with a role of {', '.join(sorted(_ROLES))})."
            )
    converted = convert_to_openai_messages(list(messages), pass_through_unknown_blocks=False)
    # The converter drops invalid tool calls; the model must see its own malformed call again,
    # and a ToolMessage answering one needs its id. Assistant dicts keep the messages' order.
    assistant_messages = [m for m in messages if _is_assistant(m)]
    assistant_dicts = [d for d in converted if d["role"] == "assistant"]
    for message, message_dict in zip(assistant_messages, assistant_dicts, strict=True):
        if isinstance(message, AIMessage) and message.invalid_tool_calls:
            message_dict.setdefault("tool_calls", []).extend(
                {
                    "type": "function",
                    "id": call["id"],
                    "function": {"name": call["name"] or "", "arguments": call["args"] or ""},
                }
                for call in message.invalid_tool_calls
            )
    for index, message_dict in enumerate(converted):
        if message_dict["role"] not in _ROLES:
            raise ValueError(
                f"messages[{index}] has role {message_dict['role']!r}; Lunar takes "
                f"{', '.join(sorted(_ROLES))}."
            )
        content = message_dict.get("content")
        if isinstance(content, list):
            for part_index, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                if kind not in _PART_TYPES:
                    raise ValueError(
                        f"messages[{index}].content[{part_index}] is a {kind!r} part; Lunar "
                        "takes text and image parts only. Remove it or turn it into text."
                    )
    return converted


REASONING_FIELDS = ("reasoning_content", "reasoning_details")
"""The fields of an assistant message that carry its reasoning back to its model."""


class ReturnedReasoning(NamedTuple):
    """The converted messages without reasoning, and the reasoning that assistant messages
    with tool calls send back, each only to the model that produced it.

    DeepSeek's thinking mode and OpenRouter require a tool-calling turn's reasoning back on its
    assistant message; other servers may refuse the unknown fields with a 400. So each is
    returned only to the model that produced it: the one its request named
    (``response_metadata["model_requested"]``, which a gateway cannot rename) or the one the
    server said served it (``"model_name"``, which may be dated: ``gpt-4o-mini-2024-07-18``
    for ``gpt-4o-mini``; messages from before ``model_requested`` have only this one).
    """

    plain: list[dict[str, Any]]
    returned: tuple[tuple[int, frozenset[str], dict[str, Any]], ...]
    """``(index in plain, names of the model that produced it, fields to send back)``."""

    @classmethod
    def of(
        cls, messages: Sequence[BaseMessage], converted: list[dict[str, Any]]
    ) -> ReturnedReasoning:
        """Of ``messages`` and their conversion ``converted`` (by ``to_lunar_messages``)."""
        returned = []
        assistant_messages = [m for m in messages if _is_assistant(m)]
        assistant_indices = [i for i, d in enumerate(converted) if d["role"] == "assistant"]
        for message, index in zip(assistant_messages, assistant_indices, strict=True):
            if not isinstance(message, AIMessage) or not message.tool_calls:
                continue
            metadata = message.response_metadata
            names = frozenset(
                name
                for name in (metadata.get(REQUESTED_MODEL_KEY), metadata.get("model_name"))
                if isinstance(name, str)
            )
            fields = {
                name: message.additional_kwargs[name]
                for name in REASONING_FIELDS
                if message.additional_kwargs.get(name)
            }
            if names and fields:
                returned.append((index, names, fields))
        return cls(converted, tuple(returned))

    def messages_for(self, model: str) -> list[dict[str, Any]]:
        """The messages to send ``model``: with the reasoning it produced put back."""
        mine = [(index, fields) for index, names, fields in self.returned if model in names]
        if not mine:
            return self.plain
        messages = list(self.plain)
        for index, fields in mine:
            messages[index] = {**messages[index], **fields}
        return messages


def reasoning_of(message: BaseMessage) -> str:
    """The thinking a message or chunk carries, or ``""``.

    ``additional_kwargs["reasoning_content"]`` is where ``ChatLunar``, ``ChatDeepSeek`` and
    ``ChatXAI`` put it; ``output_version="v1"`` keeps it there and adds a ``reasoning`` block,
    so blocks count only without it. ``ChatAnthropic`` sends ``thinking`` blocks instead.
    """
    reasoning = message.additional_kwargs.get("reasoning_content")
    if isinstance(reasoning, str):
        return reasoning
    content = message.content
    if type(content) is not list:
        return ""
    pieces = []
    for block in content:
        if isinstance(block, dict):
            kind = block.get("type")
            piece = block.get(kind) if kind in ("reasoning", "thinking") else None
            if isinstance(piece, str):
                pieces.append(piece)
    return "".join(pieces)


def refusal_of(message: BaseMessage) -> str:
    """The refusal text a message or chunk carries (``additional_kwargs["refusal"]``), or
    ``""``."""
    refusal = message.additional_kwargs.get("refusal")
    return refusal if isinstance(refusal, str) else ""


def _is_assistant(message: BaseMessage) -> bool:
    return isinstance(message, AIMessage) or (
        isinstance(message, ChatMessage) and message.role == "assistant"
    )
