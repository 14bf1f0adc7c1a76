"""The benchmark's SSE server: pre-rendered OpenAI-format streams, in a process of its own.

The benchmark measures the CPU the *client* spends per streamed chunk, so the server must cost
the client process nothing: it runs as a separate process (``python _server.py``), answers
every request with a body rendered once per size and cached, and writes it in two large writes
(the first chunk alone, then everything else), so it needs almost no CPU while a client reads.

The request's ``model`` says what to send: ``bench-<n>`` streams ``n`` content chunks whose
texts are ``t0 ``, ``t1 ``, ... (all distinct, so a client's output can be checked exactly with
``expected_text(n)``); ``bench-<n>-p<ms>`` pauses ``ms`` milliseconds after the first chunk,
as a real model does before its second token, so that the first chunk reaches the client on
its own and the time to the first token is not inflated by parsing a buffer full of later ones.
``bench-<n>-e<ms>`` instead writes every event on its own, ``ms`` milliseconds apart, as a
model generating tokens does: each event then reaches the client in a read of its own, and the
client pays for one wake-up per token. Only streaming requests are supported. As in OpenAI's
API, the usage chunk (``"choices": []``) is sent only to a request that asks for it with
``"stream_options": {"include_usage": true}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any

CHAT_PATH = "/v1/chat/completions"
_MODEL_RE = re.compile(r"bench-(\d+)(?:-p(\d+)|-e(\d+))?")
_CHUNK_PREFIX = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1732000000,'
    b'"model":"bench-model","choices":'
)
_PROMPT_TOKENS = 9


def model_name(chunks: int, pause_ms: int = 0, every_ms: int = 0) -> str:
    """The model name that makes the server stream ``chunks`` content chunks: at once, or
    pausing ``pause_ms`` after the first, or one event every ``every_ms``."""
    if pause_ms:
        return f"bench-{chunks}-p{pause_ms}"
    return f"bench-{chunks}-e{every_ms}" if every_ms else f"bench-{chunks}"


def token(i: int) -> str:
    """The text of content chunk ``i``."""
    return f"t{i} "


def expected_text(chunks: int) -> str:
    """The full text a correct client assembles from a ``chunks``-chunk stream."""
    return "".join(token(i) for i in range(chunks))


def _event(choices: str, usage: str = "") -> bytes:
    return _CHUNK_PREFIX + choices.encode() + usage.encode() + b"}\n\n"


@cache
def render_body(chunks: int, usage: bool = True) -> tuple[bytes, bytes]:
    """The SSE body of a ``chunks``-chunk stream, split after its first event.

    The events are those of OpenAI's API: content chunks, one chunk with the finish reason,
    then (``usage``, when the request has ``stream_options.include_usage``) one usage chunk
    with ``"choices": []``, then ``[DONE]``.
    """
    events = [
        _event(
            '[{"index":0,"delta":{"content":' + json.dumps(token(i)) + '},"finish_reason":null}]'
        )
        for i in range(chunks)
    ]
    events.append(_event('[{"index":0,"delta":{},"finish_reason":"stop"}]'))
    if usage:
        counts = {
            "prompt_tokens": _PROMPT_TOKENS,
            "completion_tokens": chunks,
            "total_tokens": _PROMPT_TOKENS + chunks,
        }
        events.append(_event("[]", ',"usage":' + json.dumps(counts, separators=(",", ":"))))
    events.append(b"data: [DONE]\n\n")
    return events[0], b"".join(events[1:])


def _head(status: str, content_type: str, length: int) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n"
        "Connection: keep-alive\r\n\r\n"
    ).encode()


def _error(status: str, message: str) -> bytes:
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error"}}).encode()
    return _head(status, "application/json", len(body)) + body


async def _respond(request_line: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
    parts = request_line.split()
    if len(parts) < 2 or parts[0] != b"POST" or parts[1].decode() != CHAT_PATH:
        writer.write(_error("404 Not Found", f"only POST {CHAT_PATH} is served"))
        return
    try:
        request = json.loads(body)
        match = _MODEL_RE.fullmatch(request["model"])
    except (ValueError, KeyError, TypeError):
        match = None
        request = {}
    if match is None:
        writer.write(_error("404 Not Found", "model must be bench-<n>[-p<ms>|-e<ms>]"))
        return
    if not request.get("stream"):
        writer.write(_error("400 Bad Request", "the benchmark server only streams"))
        return
    first, rest = render_body(int(match[1]), _wants_usage(request))
    writer.write(_head("200 OK", "text/event-stream", len(first) + len(rest)) + first)
    if match[3]:
        await _write_paced(writer, rest, int(match[3]) / 1000)
        return
    # Sent at once, so the client can measure its time to the first token.
    await writer.drain()
    if match[2]:
        await asyncio.sleep(int(match[2]) / 1000)
    writer.write(rest)
    await writer.drain()


def _wants_usage(request: dict[str, Any]) -> bool:
    # OpenAI's rule: the usage chunk only for `"stream_options": {"include_usage": true}`.
    options = request.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


async def _write_paced(writer: asyncio.StreamWriter, events: bytes, every_s: float) -> None:
    for event in events.split(b"\n\n")[:-1]:
        await writer.drain()
        await asyncio.sleep(every_s)
        writer.write(event + b"\n\n")
    await writer.drain()


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer requests on one keep-alive connection until the client closes it."""
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            request_line, *header_lines = head.split(b"\r\n")
            length = 0
            for line in header_lines:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            await _respond(request_line, body, writer)
    except ConnectionError:
        return  # a client that stops reading early (or dies) is not the server's problem
    finally:
        writer.close()


async def _main(sock: socket.socket) -> None:
    server = await asyncio.start_server(_serve_connection, sock=sock, backlog=1024)
    async with server:
        await server.serve_forever()


def _exit_when_parent_goes() -> None:
    # The parent holds our stdin; EOF means it stopped (or died), so no server is left behind.
    sys.stdin.read()
    os._exit(0)


def main() -> None:
    """Listen on a free port of 127.0.0.1, print it, serve until stdin closes.

    Arguments, if any, are stream sizes to render before listening, so that no measured
    request waits for a body to be rendered.
    """
    for size in sys.argv[1:]:
        for usage in (True, False):  # positional, as _respond calls it: the cache's key
            render_body(int(size), usage)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    print(sock.getsockname()[1], flush=True)
    threading.Thread(target=_exit_when_parent_goes, daemon=True).start()
    asyncio.run(_main(sock))


class BenchServer:
    """Runs the server in a child process; ``base_url`` is its OpenAI-style API root."""

    def __init__(self, sizes: tuple[int, ...] = ()) -> None:
        self._sizes = sizes
        self._process: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> BenchServer:
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *map(str, self._sizes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        port = self._process.stdout.readline().strip()
        if not port.isdigit():
            self.__exit__(None, None, None)
            raise RuntimeError("the benchmark server did not start")
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    @property
    def pid(self) -> int:
        """The server process's id."""
        assert self._process is not None
        return self._process.pid

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()  # the server exits on EOF
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
