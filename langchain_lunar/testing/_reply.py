"""What the assistant says: from a request body to an ``Answer`` (text, tokens, finish reason).

Everything that decides the *content* of a reply lives here, independent of HTTP and of SSE
framing, so richer replies (scripted tool calls) can be added by extending ``Answer`` and
``make_answer`` without touching the transport.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ReplyFn = Callable[[dict[str, Any]], str]
"""A reply callable: gets the parsed JSON request body, returns the assistant text."""

# Each token is a word with the whitespace before it, plus trailing whitespace as a last token,
# so "".join(tokens) == text exactly.
_TOKEN_RE = re.compile(r"\s*\S+|\s+$")


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
    """The default reply: ``"You said: <text of the last user message>"`` (empty if none)."""
    for message in reversed(body["messages"]):
        if message.get("role") == "user":
            return "You said: " + message_text(message)
    return "You said: "


def count_prompt_tokens(body: dict[str, Any]) -> int:
    """Whitespace-separated words over all messages' text, plus one per message (never 0)."""
    messages: list[dict[str, Any]] = body["messages"]
    return sum(len(message_text(m).split()) + 1 for m in messages)


@dataclass(frozen=True)
class Answer:
    """One assistant answer, after ``stop`` and ``max_tokens`` were applied.

    ``text == "".join(tokens)``; ``finish_reason`` is ``"stop"`` or ``"length"``.
    """

    text: str
    tokens: tuple[str, ...]
    finish_reason: str


def _stop_strings(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list):
        return []
    # An empty stop string would cut everything; real servers ignore or reject it.
    return [s for s in stop if isinstance(s, str) and s]


def make_answer(body: dict[str, Any], text: str) -> Answer:
    """Build the answer to ``body`` from the raw reply ``text``.

    ``stop``: the text is cut before the earliest occurrence of any stop string (finish "stop").
    ``max_tokens``: then at most that many tokens are kept; if tokens were dropped the finish
    reason is "length".
    """
    cuts = [i for i in (text.find(s) for s in _stop_strings(body)) if i >= 0]
    if cuts:
        text = text[: min(cuts)]
    tokens = tokenize(text)
    finish_reason = "stop"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and len(tokens) > max_tokens:
        tokens = tokens[:max_tokens]
        finish_reason = "length"
    return Answer(text="".join(tokens), tokens=tuple(tokens), finish_reason=finish_reason)
