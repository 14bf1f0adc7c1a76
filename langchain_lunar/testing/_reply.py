"""What the assistant says: from a request body and a ``Reply`` to an ``Answer``.

Everything that decides the *content* of a reply lives here (text, tool calls, finish reason),
independent of HTTP and of SSE framing.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# Each token is a word with the whitespace before it, plus trailing whitespace as a last token,
# so "".join(tokens) == text exactly.
_TOKEN_RE = re.compile(r"\s*\S+|\s+$")


@dataclass(frozen=True)
class ToolCall:
    """One function call the assistant makes.

    Attributes:
        name: the function name.
        arguments: a dict is sent as compact JSON text (``{"a":1}``); a str is sent verbatim,
            so a test can send arguments that are not valid JSON.
        id: the tool-call id; None picks ``"call_" + 24 random hex digits`` afresh for every
            answer that carries this call, as a real server issues a new id per call.
    """

    name: str
    arguments: dict[str, Any] | str
    id: str | None = None

    def __post_init__(self) -> None:
        # Fail at construction, not in a server thread halfway through a stream.
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"ToolCall.name must be a non-empty str, got {self.name!r}")
        if not isinstance(self.arguments, (dict, str)):
            raise TypeError(f"ToolCall.arguments must be a dict or a str, got {self.arguments!r}")
        if self.id is not None and (not isinstance(self.id, str) or not self.id):
            raise ValueError(f"ToolCall.id must be None or a non-empty str, got {self.id!r}")
        self.arguments_text()  # a dict that is not JSON-serializable raises TypeError here

    def arguments_text(self) -> str:
        """``arguments`` as sent on the wire: a str as is, a dict as compact JSON."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Reply:
    """One assistant answer as a test scripts it: ``text``, then ``tool_calls`` (in order)."""

    text: str = ""
    tool_calls: Sequence[ToolCall] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError(f"Reply.text must be a str, got {self.text!r}")
        calls = tuple(self.tool_calls)
        for call in calls:
            if not isinstance(call, ToolCall):
                raise TypeError(f"Reply.tool_calls must hold ToolCall objects, got {call!r}")
        # A tuple keeps the frozen Reply immutable even when it was given a list.
        object.__setattr__(self, "tool_calls", calls)


ReplyFn = Callable[[dict[str, Any]], str | Reply]
"""A reply callable: gets the parsed JSON request body, returns the assistant text or a Reply."""


@dataclass(frozen=True)
class SentToolCall:
    """A ``ToolCall`` as this answer sends it: its id chosen, its arguments as text."""

    id: str
    name: str
    arguments: str

    def message_form(self) -> dict[str, Any]:
        """The entry of a non-streaming ``message.tool_calls`` list."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True)
class Answer:
    """One assistant answer, after ``stop`` and ``max_tokens`` were applied.

    ``text == "".join(tokens)``; ``finish_reason`` is ``"stop"``, ``"length"`` or
    ``"tool_calls"`` (exactly when ``tool_calls`` is not empty).
    """

    text: str
    tokens: tuple[str, ...]
    finish_reason: str
    tool_calls: tuple[SentToolCall, ...] = ()


def tokenize(text: str) -> list[str]:
    """Split ``text`` into stream tokens: ``"".join(tokenize(t)) == t``; ``tokenize("") == []``."""
    return _TOKEN_RE.findall(text)


def message_text(message: dict[str, Any]) -> str:
    """The text of one message: a string ``content`` as is, a list's text parts joined by a space.

    Non-text parts (images, audio...) and a missing or null ``content`` contribute nothing.
    """
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return " ".join(parts)
    return ""


def echo_reply(body: dict[str, Any]) -> str:
    """The default reply text.

    When the last message is a ``tool`` message: ``"Tool results: "`` followed by the texts of
    the tool messages after the last assistant message, joined by ``"; "`` (so a tool loop
    ends after one round). Otherwise ``"You said: <text of the last user message>"`` (empty
    if there is none).
    """
    messages: list[dict[str, Any]] = body["messages"]
    if messages[-1].get("role") == "tool":
        results: list[str] = []
        for message in reversed(messages):
            if message.get("role") == "assistant":
                break
            if message.get("role") == "tool":
                results.append(message_text(message))
        return "Tool results: " + "; ".join(reversed(results))
    for message in reversed(messages):
        if message.get("role") == "user":
            return "You said: " + message_text(message)
    return "You said: "


def count_prompt_tokens(body: dict[str, Any]) -> int:
    """Whitespace-separated words over all messages' text, plus one per message (never 0)."""
    messages: list[dict[str, Any]] = body["messages"]
    return sum(len(message_text(m).split()) + 1 for m in messages)


def _stop_strings(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list):
        return []
    # An empty stop string would cut everything; real servers ignore or reject it.
    return [s for s in stop if isinstance(s, str) and s]


def _send(call: ToolCall) -> SentToolCall:
    call_id = call.id if call.id is not None else "call_" + secrets.token_hex(12)
    return SentToolCall(id=call_id, name=call.name, arguments=call.arguments_text())


def make_answer(body: dict[str, Any], reply: Reply) -> Answer:
    """Build the answer to ``body`` from the scripted ``reply``.

    ``stop``: the text is cut before the earliest occurrence of any stop string (finish "stop").
    ``max_tokens``: then at most that many text tokens are kept; if tokens were dropped the
    finish reason is "length". Either cut ends the answer inside its text, before the tool
    calls, so the tool calls are dropped then. Otherwise the tool calls are all sent, whole
    (``max_tokens`` does not limit them), with finish reason "tool_calls".
    """
    text = reply.text
    cuts = [i for i in (text.find(s) for s in _stop_strings(body)) if i >= 0]
    if cuts:
        text = text[: min(cuts)]
    tokens = tokenize(text)
    finish_reason = "stop"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and len(tokens) > max_tokens:
        tokens = tokens[:max_tokens]
        finish_reason = "length"
    calls: tuple[SentToolCall, ...] = ()
    if not cuts and finish_reason == "stop" and reply.tool_calls:
        calls = tuple(_send(call) for call in reply.tool_calls)
        finish_reason = "tool_calls"
    return Answer(
        text="".join(tokens), tokens=tuple(tokens), finish_reason=finish_reason, tool_calls=calls
    )
