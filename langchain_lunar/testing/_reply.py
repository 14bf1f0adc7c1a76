"""What the assistant says: from a request body and a ``Reply`` to an ``Answer``.

Everything that decides the *content* of a reply lives here (reasoning, text or refusal,
images, audio, annotations, tool calls, finish reason, cache figures), independent of HTTP and
of SSE framing.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
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
class Audio:
    """Spoken audio the assistant returns (as a model asked for ``modalities: ["text",
    "audio"]`` does).

    Non-streamed it is ``message.audio`` ``{"id", "data", "transcript", "expires_at",
    "format"}``; streamed, ``delta.audio`` pieces: the id with the first transcript token,
    one piece per further transcript token, then ``data`` in pieces of ``piece_size``
    characters, then ``{"id", "expires_at"}`` (and ``format``).

    Attributes:
        data: the audio, base64-encoded.
        transcript: what the audio says.
        id: the audio's id; None picks ``"audio_" + 24 random hex digits`` per answer.
        format: sent as ``format`` when given (OpenAI leaves it out: the request names it).
        piece_size: characters of ``data`` per streamed piece.
    """

    data: str
    transcript: str = ""
    id: str | None = None
    format: str | None = None
    piece_size: int = 1024

    def __post_init__(self) -> None:
        for name in ("data", "transcript"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"Audio.{name} must be a str, got {getattr(self, name)!r}")
        for name in ("id", "format"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"Audio.{name} must be None or a non-empty str, got {value!r}")
        if not isinstance(self.piece_size, int) or self.piece_size < 1:
            raise ValueError(f"Audio.piece_size must be a positive int, got {self.piece_size!r}")


@dataclass(frozen=True)
class Reply:
    """One assistant answer as a test scripts it.

    Streamed in this order: ``reasoning``, then ``text`` (or ``refusal``), then
    ``annotations``, then ``tool_calls``.

    Attributes:
        text: the answer's content.
        tool_calls: function calls made after the text, in order.
        reasoning: the model's thinking, streamed before the text as ``delta.reasoning_content``
            (or ``delta.reasoning``, see ``WireStyle.reasoning_field``) pieces. None: whatever
            the server's ``reasoning`` setting gives (nothing by default); ``""``: no thinking
            even on a server with ``reasoning`` set.
        refusal: a refusal instead of an answer: streamed as ``delta.refusal`` pieces with
            ``content: null``, non-streamed as ``message.refusal`` with ``content: null``;
            excludes ``text``, ``tool_calls`` and ``annotations``.
        annotations: ``message.annotations`` items, e.g. ``{"type": "url_citation",
            "url_citation": {"url", "title", "start_index", "end_index"}}``; streamed together
            in one ``delta.annotations`` chunk after the text.
        cached_tokens: prompt tokens reported as read from the prompt cache (capped at the
            prompt's size); see ``WireStyle.usage_details``.
        cache_write_tokens: prompt tokens reported as written to the prompt cache (Anthropic's
            ``cache_creation_input_tokens``, capped at the uncached rest of the prompt).
        images: generated images, each a URL or a data URL (``data:image/png;base64,...``):
            ``message.images`` items ``{"type": "image_url", "image_url": {"url"}}``, streamed
            one per delta after the text, as OpenRouter sends them.
        audio: spoken audio (see ``Audio``), streamed after the images.
    """

    text: str = ""
    tool_calls: Sequence[ToolCall] = ()
    reasoning: str | None = None
    refusal: str | None = None
    annotations: Sequence[Mapping[str, Any]] = ()
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    images: Sequence[str] = ()
    audio: Audio | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError(f"Reply.text must be a str, got {self.text!r}")
        images = tuple(self.images) if not isinstance(self.images, str) else (self.images,)
        for image in images:
            if not isinstance(image, str) or not image:
                raise TypeError(f"Reply.images must hold URLs (non-empty str), got {image!r}")
        object.__setattr__(self, "images", images)
        if self.audio is not None and not isinstance(self.audio, Audio):
            raise TypeError(f"Reply.audio must be an Audio or None, got {self.audio!r}")
        calls = tuple(self.tool_calls)
        for call in calls:
            if not isinstance(call, ToolCall):
                raise TypeError(f"Reply.tool_calls must hold ToolCall objects, got {call!r}")
        # A tuple keeps the frozen Reply immutable even when it was given a list.
        object.__setattr__(self, "tool_calls", calls)
        if self.reasoning is not None and not isinstance(self.reasoning, str):
            raise TypeError(f"Reply.reasoning must be a str or None, got {self.reasoning!r}")
        annotations = tuple(self.annotations)
        for item in annotations:
            if not isinstance(item, Mapping):
                raise TypeError(f"Reply.annotations must hold dicts, got {item!r}")
            json.dumps(item)  # not JSON-serializable: TypeError here, not in a server thread
        # Copies, so a caller mutating its dicts later cannot change what is sent.
        object.__setattr__(self, "annotations", tuple(copy.deepcopy(dict(a)) for a in annotations))
        if self.refusal is not None:
            if not isinstance(self.refusal, str) or not self.refusal:
                raise ValueError(f"Reply.refusal must be a non-empty str, got {self.refusal!r}")
            if self.text or calls or annotations or images or self.audio:
                raise ValueError(
                    "a Reply with a refusal has no text, tool_calls, annotations, images or audio"
                )
        for name in ("cached_tokens", "cache_write_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Reply.{name} must be a non-negative int, got {value!r}")


ReplyFn = Callable[[dict[str, Any]], str | Reply]
"""A reply callable: gets the parsed JSON request body, returns the assistant text or a Reply."""

ReasoningFn = Callable[[dict[str, Any]], str]
"""A reasoning callable: gets the parsed JSON request body, returns the thinking text."""


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
class SentAudio:
    """An ``Audio`` as this answer sends it: its id chosen, its expiry set."""

    audio: Audio
    id: str
    expires_at: int

    def message_form(self) -> dict[str, Any]:
        """``message.audio`` of a non-streaming answer."""
        form: dict[str, Any] = {
            "id": self.id,
            "data": self.audio.data,
            "transcript": self.audio.transcript,
            "expires_at": self.expires_at,
        }
        if self.audio.format is not None:
            form["format"] = self.audio.format
        return form

    def deltas(self) -> list[dict[str, Any]]:
        """The ``delta.audio`` pieces of a streamed answer, in order."""
        audio = self.audio
        pieces: list[dict[str, Any]] = [
            {"transcript": token} for token in tokenize(audio.transcript)
        ] or [{}]
        pieces[0] = {"id": self.id, **pieces[0]}
        size = audio.piece_size
        pieces += [{"data": audio.data[i : i + size]} for i in range(0, len(audio.data), size)]
        last: dict[str, Any] = {"id": self.id, "expires_at": self.expires_at}
        if audio.format is not None:
            last["format"] = audio.format
        return [*pieces, last]


@dataclass(frozen=True)
class Answer:
    """One assistant answer, after ``stop`` and ``max_tokens`` were applied.

    ``text == "".join(tokens)``, likewise ``reasoning`` and ``refusal`` with their tokens;
    ``finish_reason`` is ``"stop"``, ``"length"`` or ``"tool_calls"`` (exactly when
    ``tool_calls`` is not empty). ``top_logprobs`` is None unless the request asked for log
    probabilities, else how many alternatives each token lists.
    """

    text: str
    tokens: tuple[str, ...]
    finish_reason: str
    tool_calls: tuple[SentToolCall, ...] = ()
    reasoning_tokens: tuple[str, ...] = ()
    refusal_tokens: tuple[str, ...] = ()
    annotations: tuple[dict[str, Any], ...] = ()
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    top_logprobs: int | None = None
    images: tuple[str, ...] = ()
    audio: SentAudio | None = None

    @property
    def reasoning(self) -> str:
        """The thinking text sent; ``""`` when there is none."""
        return "".join(self.reasoning_tokens)

    @property
    def refusal(self) -> str | None:
        """The refusal text sent, or None when the answer is not a refusal."""
        return "".join(self.refusal_tokens) if self.refusal_tokens else None


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


def default_reasoning(body: dict[str, Any]) -> str:
    """The thinking text of ``LocalLunarServer(reasoning=True)``.

    ``"The tool results are in; time to report them."`` when the last message is a ``tool``
    message, else ``"The user wrote: “<text of the last user message>”. Time to answer."``.
    """
    messages: list[dict[str, Any]] = body["messages"]
    if messages[-1].get("role") == "tool":
        return "The tool results are in; time to report them."
    text = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    return f"The user wrote: “{text}”. Time to answer."


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


def make_answer(body: dict[str, Any], reply: Reply, top_logprobs: int | None = None) -> Answer:
    """Build the answer to ``body`` from the scripted ``reply``.

    ``stop``: the text is cut before the earliest occurrence of any stop string (finish "stop").
    ``max_tokens``: then at most that many text tokens are kept; if tokens were dropped the
    finish reason is "length". Either cut ends the answer inside its text, before the
    annotations and tool calls, so those are dropped then. Otherwise the tool calls are all
    sent, whole (``max_tokens`` does not limit them), with finish reason "tool_calls". Images
    and audio are sent whole too, unless a cut dropped them.
    Reasoning and a refusal are never cut. ``top_logprobs`` is passed on to the answer.
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
    whole = not cuts and finish_reason == "stop"
    calls: tuple[SentToolCall, ...] = ()
    audio = None
    if whole and reply.audio is not None:
        audio_id = reply.audio.id or "audio_" + secrets.token_hex(12)
        audio = SentAudio(reply.audio, audio_id, int(time.time()) + 3600)
    if whole and reply.tool_calls:
        calls = tuple(_send(call) for call in reply.tool_calls)
        finish_reason = "tool_calls"
    return Answer(
        text="".join(tokens),
        tokens=tuple(tokens),
        finish_reason=finish_reason,
        tool_calls=calls,
        reasoning_tokens=tuple(tokenize(reply.reasoning or "")),
        refusal_tokens=tuple(tokenize(reply.refusal or "")),
        annotations=tuple(dict(a) for a in reply.annotations) if whole else (),
        cached_tokens=reply.cached_tokens,
        cache_write_tokens=reply.cache_write_tokens,
        top_logprobs=top_logprobs,
        images=tuple(reply.images) if whole else (),
        audio=audio,
    )
