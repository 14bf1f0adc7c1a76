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

from langchain_lunar._media_in import WIRE_PART_TYPES, wire_content
from langchain_lunar._responses import REQUESTED_MODEL_KEY

_ROLES = frozenset({"system", "user", "assistant", "tool"})


def to_lunar_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """Convert messages, raising a ``TypeError``/``ValueError`` that names anything unsupported.

    Supported: system, human (text, image, file, audio and video parts, in OpenAI form or as
    LangChain's standard blocks, see ``_media_in``), AI (with tool calls), tool messages, and
    ``name`` on any of them.
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
    converted: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        video = False
        audio_id = None
        if isinstance(message.content, list):
            blocks: list[Any] = message.content
            if _is_assistant(message):
                blocks = _without_v1_only_blocks(message, blocks, f"messages[{index}]")
                audio_id, blocks = _answered_audio(blocks)
            wired = wire_content(blocks, f"messages[{index}]")
            message = message.model_copy(update={"content": wired})
            # langchain-core's converter refuses the one part it does not know, video_url;
            # the check below still refuses any other unknown part.
            video = any(isinstance(p, dict) and p.get("type") == "video_url" for p in wired)
        dicts = convert_to_openai_messages([message], pass_through_unknown_blocks=video)
        if audio_id is not None:
            dicts[0]["audio"] = {"id": audio_id}
        converted.extend(dicts)
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
                if kind not in WIRE_PART_TYPES:
                    raise ValueError(
                        f"messages[{index}].content[{part_index}] is a {kind!r} part; Lunar "
                        "takes text, image, file, audio and video parts only. Remove it or "
                        "turn it into text."
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
            if not fields:
                # A v1 message may carry its reasoning in blocks only.
                reasoning = reasoning_of(message)
                if reasoning:
                    fields = {"reasoning_content": reasoning}
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


_CALL_BLOCKS = frozenset({"tool_call", "tool_call_chunk", "invalid_tool_call"})


def _without_v1_only_blocks(message: BaseMessage, content: list[Any], where: str) -> list[Any]:
    """``content`` without the blocks of a v1 assistant message (``output_version="v1"``, or
    the message of a ``stream_events(version="v3")`` run) that no server takes as content:
    tool calls, which go in ``tool_calls``, and reasoning, which ``ReturnedReasoning`` sends
    back. Raises ``ValueError`` for a call block the message's ``tool_calls`` lack."""
    calls = (
        [*message.tool_calls, *message.invalid_tool_calls] if isinstance(message, AIMessage) else []
    )
    call_ids = {call["id"] for call in calls}
    kept = []
    for index, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind in _CALL_BLOCKS and block.get("id") not in call_ids:
            raise ValueError(
                f"{where}.content[{index}] is a {kind} block with id {block.get('id')!r}, which "
                "the message's tool_calls and invalid_tool_calls lack; Lunar takes tool calls "
                "from those. Add the call there."
            )
        if kind not in _CALL_BLOCKS and kind != "reasoning":
            kept.append(block)
    return kept


def _answered_audio(content: list[Any]) -> tuple[str | None, list[Any]]:
    """The id of the audio an assistant message answered with, and its content without it.

    Audio models take their earlier spoken answers back by id only (``"audio": {"id"}`` on
    the assistant message), not as data: no server takes audio parts from the assistant.
    """
    audio_id = None
    rest = []
    for block in content:
        block_id = block.get("id") if isinstance(block, dict) else None
        if (
            isinstance(block, dict)
            and block.get("type") == "audio"
            and isinstance(block_id, str)
            and block_id
            and not block_id.startswith("lc_")  # langchain-core's own ids name no audio
        ):
            audio_id = block_id
        else:
            rest.append(block)
    return audio_id, rest


def _is_assistant(message: BaseMessage) -> bool:
    return isinstance(message, AIMessage) or (
        isinstance(message, ChatMessage) and message.role == "assistant"
    )
