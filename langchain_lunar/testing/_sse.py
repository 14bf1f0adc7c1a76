"""``WireStyle`` and the encoding of one Server-Sent Event to bytes."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_lunar.testing._protocol import USAGE_DETAILS

_LINE_ENDINGS = ("\n", "\r\n", "\r")
_MODEL_IN = ("first", "every", "none")
_USAGE = ("requested", "never", "every_chunk", "with_finish")
_REASONING_FIELDS = ("reasoning_content", "reasoning")
# Delta fields the server writes itself; an extra field must not silently replace one.
_OWN_DELTA_FIELDS = frozenset(
    {"role", "content", "tool_calls", "refusal", "annotations", "reasoning_details"}
    | set(_REASONING_FIELDS)
)


@dataclass(frozen=True)
class WireStyle:
    """How the server writes a streaming response. The defaults are the plain protocol form.

    Attributes:
        line_ending: ``"\\n"``, ``"\\r\\n"`` or ``"\\r"``; ends every line, including the blank
            line that ends each event.
        comments: write a comment event ``: keep-alive`` (its own block) before every event.
        split_data: pretty-print the JSON (``indent=1``) with one ``data:`` line per JSON line;
            a client must join them with ``"\\n"``.
        extra_fields: add the SSE fields ``event: message`` and ``id: <n>`` (n = 1, 2, ...) to
            each event, and ``retry: 3000`` to the first one (SSE lines; for unknown JSON
            fields see ``extra_delta_fields``).
        no_space: write ``data:{...}`` instead of ``data: {...}``.
        model_in: ``"first"``: ``model`` only in the first chunk; ``"every"``; ``"none"``.
        role_chunk: send the opening ``delta: {"role": "assistant", "content": ""}`` chunk.
        usage: ``"requested"``: a separate usage chunk (``choices: []``) after the finish chunk,
            only when the request set ``stream_options.include_usage``; ``"never"``;
            ``"every_chunk"``: every chunk carries the running cumulative usage (the finish
            chunk the final totals), no separate usage chunk; ``"with_finish"``: the final usage
            rides on the finish chunk. The last two ignore ``include_usage``, like servers that
            always report usage.
        done: send ``data: [DONE]`` at the end.
        finish_reason: send the ``delta: {}`` chunk carrying ``finish_reason``.
        tool_fragment: how many characters of a tool call's ``arguments`` text each
            ``delta.tool_calls`` fragment carries (the last one may carry fewer).
        interleave_tool_calls: send parallel tool calls round-robin (every opening delta with
            id and name first, then one argument fragment of each call in turn), as servers that
            generate calls concurrently do; False sends each call whole before the next.
        reasoning_field: the name reasoning text goes under, in deltas and in the non-streamed
            message: ``"reasoning_content"`` (DeepSeek, Qwen, xAI, LiteLLM) or ``"reasoning"``
            (vLLM, OpenRouter).
        reasoning_details: also send OpenRouter's structured form: each reasoning delta carries
            ``reasoning_details: [{"type": "reasoning.text", "text": <piece>, "index": 0}]``
            beside its piece, and the non-streamed message the same list with the whole text.
        mixed_chunk: send the last reasoning piece and the first text token in one delta (the
            transition chunk), when the answer has both.
        usage_details: which token details ``usage`` carries, streamed or not. ``"auto"``:
            ``prompt_tokens_details.cached_tokens`` when ``Reply.cached_tokens`` > 0 and
            ``completion_tokens_details.reasoning_tokens`` when there is reasoning; ``"none"``:
            neither; ``"openai"``: both always, zeros included; ``"deepseek"``: as
            ``"openai"`` plus ``prompt_cache_hit_tokens`` / ``prompt_cache_miss_tokens``;
            ``"anthropic"``: as ``"openai"`` plus ``cache_read_input_tokens`` /
            ``cache_creation_input_tokens`` (``Reply.cache_write_tokens``).
        extra_delta_fields: JSON fields added to every delta that carries a text token (the
            mixed chunk too) and to a non-streamed message with text, so a client can be
            checked for keeping fields it does not know; may not name a field the server
            writes itself (``content``, ``role``, ``refusal``...).
    """

    line_ending: str = "\n"
    comments: bool = False
    split_data: bool = False
    extra_fields: bool = False
    no_space: bool = False
    model_in: str = "first"
    role_chunk: bool = True
    usage: str = "requested"
    done: bool = True
    finish_reason: bool = True
    tool_fragment: int = 6
    interleave_tool_calls: bool = True
    reasoning_field: str = "reasoning_content"
    reasoning_details: bool = False
    mixed_chunk: bool = False
    usage_details: str = "auto"
    # Out of the hash, so a WireStyle stays hashable with a dict in it.
    extra_delta_fields: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Fail at construction, not in a server thread halfway through a stream.
        for name, value, allowed in (
            ("line_ending", self.line_ending, _LINE_ENDINGS),
            ("model_in", self.model_in, _MODEL_IN),
            ("usage", self.usage, _USAGE),
            ("reasoning_field", self.reasoning_field, _REASONING_FIELDS),
            ("usage_details", self.usage_details, USAGE_DETAILS),
        ):
            if value not in allowed:
                raise ValueError(f"WireStyle.{name} must be one of {allowed!r}, got {value!r}")
        fragment = self.tool_fragment
        if not isinstance(fragment, int) or isinstance(fragment, bool) or fragment < 1:
            raise ValueError(f"WireStyle.tool_fragment must be an int >= 1, got {fragment!r}")
        extra = self.extra_delta_fields
        if not isinstance(extra, Mapping) or not all(isinstance(k, str) for k in extra):
            raise TypeError(f"WireStyle.extra_delta_fields must be a dict of str keys: {extra!r}")
        clash = sorted(_OWN_DELTA_FIELDS & set(extra))
        if clash:
            raise ValueError(f"WireStyle.extra_delta_fields may not set {', '.join(clash)}")
        json.dumps(dict(extra))  # not JSON-serializable: TypeError here
        # A private copy: mutating the caller's dict later cannot change what is sent.
        object.__setattr__(self, "extra_delta_fields", copy.deepcopy(dict(extra)))


def encode_event(style: WireStyle, payload: dict[str, Any] | str, number: int) -> bytes:
    """One SSE event (``number`` counts from 1) carrying ``payload``: a JSON object, or a raw
    string such as ``"[DONE]"`` written as is. Includes the comment block if the style asks."""
    end = style.line_ending
    lines: list[str] = []
    if style.comments:
        # A separate comment-only block: the client must skip it without dispatching anything.
        lines += [": keep-alive", ""]
    if style.extra_fields:
        lines += ["event: message", f"id: {number}"]
        if number == 1:
            lines.append("retry: 3000")
    if isinstance(payload, str):
        data = [payload]
    elif style.split_data:
        data = json.dumps(payload, indent=1, ensure_ascii=False).split("\n")
    else:
        data = [json.dumps(payload, separators=(",", ":"), ensure_ascii=False)]
    prefix = "data:" if style.no_space else "data: "
    lines += [prefix + line for line in data]
    lines.append("")
    return (end.join(lines) + end).encode("utf-8")


def encode_comment(style: WireStyle, text: str) -> bytes:
    """One comment-only block ``: <text>``, ended by a blank line; clients must ignore it."""
    end = style.line_ending
    return f": {text}{end}{end}".encode()
