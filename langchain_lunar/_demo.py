"""``python -m langchain_lunar``: stream a short story through an LCEL chain and report on it.

The server is the one ``ChatLunar`` itself would use: ``LUNAR_BASE_URL`` when set, with or
without ``LUNAR_API_KEY`` (a keyless llama.cpp, Ollama or vLLM server works); else Lunar when
``LUNAR_API_KEY`` is set. With neither, or with ``--offline``, it is a ``LocalLunarServer``
started here, playing a reasoning model, so the demo runs on a fresh machine with no account
and no network.

A reasoning model's thinking is printed as it streams, before the story, after ``Thinking:``
and, on a terminal, dimmed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.prompts import ChatPromptTemplate
from pydantic import SecretStr, ValidationError

from langchain_lunar._exceptions import LunarError
from langchain_lunar._messages import reasoning_of
from langchain_lunar.chat_models import DEFAULT_BASE_URL, ChatLunar
from langchain_lunar.testing._server import LocalLunarServer

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_PROMPT = "Tell me a short story about the Moon."
DEFAULT_TOKEN_DELAY = 0.025
SYSTEM_PROMPT = "You are a storyteller. Answer with one short story of about 80 words."

OFFLINE_STORY = (
    "Every night the Moon rose over the fishing village of Lira and listened to the sea. "
    "One winter a girl named Nadia climbed the old lighthouse and asked why it always "
    'followed her home. The Moon laughed, silver and soft: "I do not follow you. I keep the '
    'same promise to everyone who looks up." Nadia waved goodnight, and from then on she '
    "never walked home alone, because she understood at last that a promise kept quietly "
    "is still a promise."
)
"""The local server's reply: the story the offline demo streams."""

OFFLINE_THINKING = (
    "A short story about the Moon, then, about 80 words. A fishing village, a girl who asks "
    "the Moon why it follows her home, and an ending about a promise kept quietly."
)
"""The local server's thinking before the story: it plays a reasoning model."""

THINKING_LABEL = "Thinking: "
DIM = "\x1b[2m"
RESET = "\x1b[0m"


@dataclass
class StreamStats:
    """What the report needs, gathered while the answer streams.

    Tokens are thinking and answer tokens alike: ``first_token`` is the first of either,
    ``first_answer_token`` the first of the story, and ``chunks`` counts both.
    """

    started: float
    first_token: float | None = None
    first_answer_token: float | None = None
    first_was_thinking: bool = False
    last_token: float | None = None
    chunks: int = 0
    usage: UsageMetadata | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def main(argv: list[str] | None = None) -> int:
    """Run the demo with command-line arguments ``argv``; return the exit code."""
    args = parse_args(argv)
    try:
        with _chat_model(args) as (llm, server_line):
            print(server_line)
            print(flush=True)
            stats = stream_story(llm, args.prompt)
        print_report(stats)
    except (LunarError, ValidationError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130  # Ctrl-C while reading the story: stop quietly, no traceback
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly. Pointing stdout at devnull keeps the
        # interpreter's final flush from raising again, as Python's signal docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = argparse.ArgumentParser(
        prog="python -m langchain_lunar",
        description=(
            "Stream a short story from Lunar token by token (a reasoning model's thinking "
            "first, dimmed on a terminal), then report time to first token, speed, usage and "
            "cost. It asks the server at LUNAR_BASE_URL when that is set (a key "
            "is optional there), else Lunar when LUNAR_API_KEY is set, else a local "
            "Lunar-compatible server."
        ),
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model id (default: {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--prompt", default=DEFAULT_PROMPT, help=f"the question (default: {DEFAULT_PROMPT!r})"
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="use the local server even when LUNAR_BASE_URL or LUNAR_API_KEY is set",
    )
    parser.add_argument(
        "--token-delay",
        type=_seconds,
        default=DEFAULT_TOKEN_DELAY,
        metavar="SECONDS",
        help=f"local server only: delay before each token (default: {DEFAULT_TOKEN_DELAY})",
    )
    return parser.parse_args(argv)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


@contextlib.contextmanager
def _chat_model(args: argparse.Namespace) -> Iterator[tuple[ChatLunar, str]]:
    """A ``ChatLunar`` for the server the demo uses, and the line that names that server.

    A local server, when used, lives as long as the context.
    """
    llm = None if args.offline else configured_chat_model(args.model)
    if llm is not None:
        yield llm, _server_line(llm)
        return
    reason = "--offline" if args.offline else "neither LUNAR_BASE_URL nor LUNAR_API_KEY is set"
    with LocalLunarServer(
        reply=OFFLINE_STORY, reasoning=OFFLINE_THINKING, token_delay=args.token_delay
    ) as server:
        # An explicit dummy key, so a real LUNAR_API_KEY (with --offline) is never sent.
        llm = ChatLunar(model=args.model, api_key=SecretStr("local-demo"), base_url=server.base_url)
        yield llm, f"Using a local Lunar-compatible server at {llm.base_url} ({reason})."


def configured_chat_model(model: str) -> ChatLunar | None:
    """``ChatLunar(model=model)`` as the environment configures it; None when it names no server.

    ChatLunar itself reads ``LUNAR_BASE_URL`` and ``LUNAR_API_KEY`` and decides whether a key is
    needed (only for Lunar's own URL), so a bad URL or a missing key is its ``ValidationError``.
    An empty variable counts as unset, as after a shell's ``export LUNAR_BASE_URL=``.
    """
    base_url_set = bool(os.environ.get("LUNAR_BASE_URL"))
    if not base_url_set and not os.environ.get("LUNAR_API_KEY"):
        return None
    if base_url_set:
        return ChatLunar(model=model)
    # ChatLunar would reject an empty LUNAR_BASE_URL as a URL; here it means "use Lunar".
    return ChatLunar(model=model, base_url=DEFAULT_BASE_URL)


def _server_line(llm: ChatLunar) -> str:
    """Which configured server answers, and where its address came from; never the key."""
    if llm.base_url == DEFAULT_BASE_URL:
        return f"Using Lunar at {llm.base_url} with model {llm.model}."
    key_note = "" if llm.api_key and llm.api_key.get_secret_value() else ", no API key"
    return f"Using {llm.base_url} (from LUNAR_BASE_URL{key_note}) with model {llm.model}."


def stream_story(llm: ChatLunar, question: str) -> StreamStats:
    """Stream the chain's answer to ``question`` to stdout as it arrives; return its stats.

    Thinking, if the model sends any, comes first after ``Thinking:``, dimmed when stdout is
    a terminal; a blank line parts it from the story.
    """
    prompt = ChatPromptTemplate.from_messages([("system", SYSTEM_PROMPT), ("human", "{question}")])
    chain = prompt | llm
    stats = StreamStats(started=time.perf_counter())
    printer = _Printer(dim=_wants_dim())
    try:
        for chunk in chain.stream({"question": question}):
            thinking = reasoning_of(chunk)
            _record(stats, chunk, thinking)
            if thinking:
                printer.thinking(thinking)
            if chunk.text:
                printer.answer(chunk.text)
    finally:
        printer.end()  # also when the stream broke mid-way: no line left open, nor dimmed
    return stats


def _wants_dim() -> bool:
    """ANSI dim only for a terminal, and not when ``NO_COLOR`` asks for none (no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


class _Printer:
    """Writes thinking and story pieces to stdout as they come, each kind set apart."""

    def __init__(self, *, dim: bool) -> None:
        self._dim = dim
        self._kind: str | None = None  # what the last piece was: "thinking", "answer" or None

    def thinking(self, piece: str) -> None:
        if self._kind != "thinking":
            self._close()
            self._write((DIM if self._dim else "") + THINKING_LABEL)
            self._kind = "thinking"
        self._write(piece)

    def answer(self, piece: str) -> None:
        if self._kind == "thinking":
            self._close()
        self._kind = "answer"
        self._write(piece)

    def end(self) -> None:
        """End the last line; after thinking, also end the dim."""
        if self._kind == "thinking" and self._dim:
            self._write(RESET)
        if self._kind is not None:
            self._write("\n")
        self._kind = None

    def _close(self) -> None:
        """Part what came before from the next kind of text with a blank line."""
        if self._kind is not None:
            self.end()
            self._write("\n")

    def _write(self, text: str) -> None:
        print(text, end="", flush=True)


def _record(stats: StreamStats, chunk: BaseMessage, thinking: str) -> None:
    """Note the arrival time of ``chunk`` and any usage and metadata it carries."""
    now = time.perf_counter()
    if thinking or chunk.text:
        stats.chunks += 1
        if stats.first_token is None:
            stats.first_token = now
            stats.first_was_thinking = bool(thinking)
        if chunk.text and stats.first_answer_token is None:
            stats.first_answer_token = now
        stats.last_token = now
    usage = getattr(chunk, "usage_metadata", None)
    if usage:
        stats.usage = usage
    stats.metadata.update(chunk.response_metadata)


def print_report(stats: StreamStats) -> None:
    """Print time to first token, speed, served model, usage and cost.

    The first token may be one of thinking (it says so); then the time to the first token of
    the answer follows. Speed spans the first to the last token of either kind, as the output
    tokens of usage count both.
    """
    print()
    print("--- report ---")
    print(f"Time to first token: {_ttft(stats)}")
    if stats.first_was_thinking:
        print(f"First answer token:  {_first_answer(stats)}")
    print(f"Tokens/s:            {_speed(stats)}")
    print(f"Served model:        {stats.metadata.get('model_name', 'not reported')}")
    print(f"Usage:               {_usage(stats.usage)}")
    print(f"Cost:                {_cost(stats.metadata.get('total_cost_usd'))}")


def _ttft(stats: StreamStats) -> str:
    if stats.first_token is None:
        return "n/a (no tokens)"
    thinking = " (thinking)" if stats.first_was_thinking else ""
    return f"{(stats.first_token - stats.started) * 1000:.0f} ms{thinking}"


def _first_answer(stats: StreamStats) -> str:
    if stats.first_answer_token is None:
        return "n/a (no answer after the thinking)"
    return f"{(stats.first_answer_token - stats.started) * 1000:.0f} ms"


def _speed(stats: StreamStats) -> str:
    if stats.first_token is None or stats.last_token is None:
        return "n/a (no tokens)"
    span = stats.last_token - stats.first_token
    if span <= 0:
        return "n/a (a single chunk)"
    if stats.usage:
        return f"{stats.usage['output_tokens'] / span:.1f} (output tokens from usage)"
    return f"{stats.chunks / span:.1f} (chunks; usage not reported)"


def _usage(usage: UsageMetadata | None) -> str:
    if not usage:
        return "not reported"
    reasoning = (usage.get("output_token_details") or {}).get("reasoning")
    of_them = f" ({reasoning} of the output thinking)" if reasoning else ""
    return (
        f"{usage['input_tokens']} input + {usage['output_tokens']} output "
        f"= {usage['total_tokens']} tokens{of_them}"
    )


def _cost(total: Any) -> str:
    if total is None:
        return "not reported"
    return f"${float(total):.6f}"


def _one_line(exc: BaseException) -> str:
    """``exc`` as one line, with the API key masked should a message ever quote it."""
    if isinstance(exc, ValidationError):  # a bad LUNAR_BASE_URL, say: pydantic's text is long
        text = "; ".join(_validation_problem(e["loc"], e["msg"]) for e in exc.errors())
    else:
        text = str(exc)
    text = " ".join(text.split()) or type(exc).__name__
    key = os.environ.get("LUNAR_API_KEY")
    if key:
        text = text.replace(key, "***")
    return f"{type(exc).__name__}: {text}"


def _validation_problem(location: tuple[int | str, ...], message: str) -> str:
    """One pydantic error; a whole-model check (the missing key) has no field to name."""
    field_name = ".".join(map(str, location))
    return f"{field_name}: {message}" if field_name else message
