"""``LocalLunarServer``: a real HTTP server speaking the Lunar chat-completions protocol on
127.0.0.1, in background threads (one per connection, keep-alive supported)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import math
import secrets
import select
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

from langchain_lunar.testing._faults import Fault
from langchain_lunar.testing._limits import (
    Buckets,
    RateLimit,
    Refusal,
    RetryAfterForm,
    as_rate_limit,
    check_retry_after,
    request_key,
)
from langchain_lunar.testing._protocol import (
    DEFAULT_PRICE,
    error_body,
    wants_logprobs,
    wants_usage_chunk,
)
from langchain_lunar.testing._reply import (
    Answer,
    ReasoningFn,
    Reply,
    ReplyFn,
    count_prompt_tokens,
    default_reasoning,
    echo_reply,
    make_answer,
)
from langchain_lunar.testing._script import Script
from langchain_lunar.testing._sse import WireStyle, encode_comment, encode_event
from langchain_lunar.testing._stream import (
    ChunkFactory,
    Meter,
    answer_pieces,
    completion,
    run_stream,
)
from langchain_lunar.testing._validate import validate_request

CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")

PLAIN_STYLE = WireStyle()
"""The default ``WireStyle``: the plain form of the protocol doc."""

# How long stop() waits for connection threads to notice their sockets were shut down.
_STOP_JOIN_BUDGET = 0.5
# How often an idle stream (a keep-alive stall) looks for the client having left.
_IDLE_POLL = 0.05


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it (every request, including rejected ones).

    Attributes:
        method: HTTP method, e.g. ``"POST"``.
        path: request target as sent, including any query string.
        headers: header names lower-cased; repeated headers joined with ``", "``.
        body: the parsed JSON body if it is a JSON object, else None.
        model: ``body["model"]`` if it is a string, else None.
        time: ``time.monotonic()`` when the request arrived.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    model: str | None
    time: float


@dataclass(frozen=True)
class _Config:
    reply: str | Reply | ReplyFn | None
    reasoning: bool | str | ReasoningFn
    api_key: str | None
    token_delay: float
    style: WireStyle
    prices: Mapping[str, tuple[float, float]]
    served_model: str | None
    rate_limit: RateLimit | None


class _State:
    """Everything the connection threads share with ``LocalLunarServer``, behind one lock."""

    def __init__(self, config: _Config) -> None:
        self.config = config
        self.script = Script()
        self.stopping = threading.Event()
        self._cond = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self.connections = 0
        self.disconnects = 0
        self._sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._buckets = None if config.rate_limit is None else Buckets(config.rate_limit)
        self.rate_limited = 0
        self._admitted: dict[str | None, int] = {}
        # model -> (monotonic end of its cooldown, how its 429s say when to retry)
        self._cooling: dict[str, tuple[float, RetryAfterForm | None]] = {}
        self._cooling_refusals: dict[str, int] = {}

    def gate(self, key: str | None, model: str, arrival: float) -> Refusal | None:
        """Apply the rate limit to ``key``, then ``model``'s cooldown, as of ``arrival``: None
        if the request may go on, else why and for how long it is refused.

        One lock for both, so concurrent requests can never overdraw a bucket. A request
        refused for a cooling model has passed the rate limit, so it took a token (as a
        gateway's limit counts requests its upstream then refuses).
        """
        with self._cond:
            if self._buckets is not None:
                wait = self._buckets.take(key, arrival)
                if wait is not None:
                    self.rate_limited += 1
                    limit = self._buckets.limit
                    message = (
                        f"Rate limit reached for requests: {limit.requests_per_second:g} per "
                        f"second, burst {limit.size}. Please try again in {wait:.3f}s."
                    )
                    return Refusal(message, wait, limit.retry_after)
            self._admitted[key] = self._admitted.get(key, 0) + 1
            end, form = self._cooling.get(model, (-math.inf, None))
            if arrival < end:
                self._cooling_refusals[model] = self._cooling_refusals.get(model, 0) + 1
                remaining = end - arrival
                message = (
                    f"Rate limit reached for model {model!r}: it is cooling down. "
                    f"Please try again in {remaining:.3f}s."
                )
                return Refusal(message, remaining, form)
            return None

    def cool(self, model: str, seconds: float, form: RetryAfterForm | None) -> None:
        with self._cond:
            self._cooling[model] = (time.monotonic() + seconds, form)

    def admitted(self) -> dict[str | None, int]:
        with self._cond:
            return dict(self._admitted)

    def cooling_refusals(self) -> dict[str, int]:
        with self._cond:
            return dict(self._cooling_refusals)

    def record(self, request: RecordedRequest) -> None:
        with self._cond:
            self._requests.append(request)

    def requests(self) -> list[RecordedRequest]:
        with self._cond:
            return list(self._requests)

    def opened(self, sock: socket.socket) -> bool:
        """Register a new connection; False if the server is already stopping."""
        with self._cond:
            self.connections += 1
            if self.stopping.is_set():
                return False
            self._sockets.add(sock)
            self._threads.add(threading.current_thread())
            return True

    def closed(self, sock: socket.socket) -> None:
        with self._cond:
            self._sockets.discard(sock)
            self._threads.discard(threading.current_thread())

    def count_disconnect(self) -> None:
        with self._cond:
            self.disconnects += 1
            self._cond.notify_all()

    def wait_for_disconnects(self, n: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.disconnects >= n, timeout)

    def live(self) -> tuple[list[socket.socket], list[threading.Thread]]:
        with self._cond:
            return list(self._sockets), list(self._threads)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # stop() must not wait for connection threads blocked in a keep-alive read.
    block_on_close = False
    request_queue_size = 64

    def __init__(self, port: int, state: _State) -> None:
        self.state = state
        super().__init__(("127.0.0.1", port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can take
        # seconds on hosts without DNS; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Connection errors are normal (client gone, server stopping); print real bugs only.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _BadRequestBody(Exception):
    pass


def _wait(stopping: threading.Event, seconds: float) -> bool:
    """Sleep ``seconds``: False as soon as the server is stopping."""
    if seconds > 0:
        return not stopping.wait(seconds)
    return not stopping.is_set()


def _idle(sock: socket.socket, stopping: threading.Event, seconds: float) -> bool:
    """Sleep ``seconds`` (may be ``inf``): False as soon as the server is stopping; raises
    ``ConnectionResetError`` as soon as the client has closed the connection.

    Writes alone would notice a closed connection only at the second write after the close,
    which is one or two keep-alive intervals late, so the socket is watched for its EOF.
    """
    deadline = time.monotonic() + seconds
    while not stopping.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        readable, _, _ = select.select([sock], [], [], min(remaining, _IDLE_POLL))
        if readable:
            try:
                peeked = sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                continue
            if not peeked:
                raise ConnectionResetError("the client closed the connection")
            # The client sent bytes (a pipelined request?): the socket stays readable, so
            # polling it would spin; sleep out the rest watching only the server.
            rest = deadline - time.monotonic()
            return not stopping.wait(None if rest == math.inf else max(0.0, rest))
    return False


class _ChunkedSink:
    """An ``EventSink`` writing each event as one HTTP/1.1 chunk, sent at once."""

    def __init__(
        self,
        wfile: io.BufferedIOBase,
        sock: socket.socket,
        style: WireStyle,
        stopping: threading.Event,
    ) -> None:
        self._wfile = wfile
        self._sock = sock
        self._style = style
        self._stopping = stopping
        self._events = 0

    def _chunk(self, data: bytes) -> None:
        self._wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self._wfile.flush()

    def event(self, payload: dict[str, Any] | str) -> None:
        self._events += 1
        self._chunk(encode_event(self._style, payload, self._events))

    def raw(self, text: str) -> None:
        self._chunk(text.encode("utf-8"))

    def comment(self, text: str) -> None:
        self._chunk(encode_comment(self._style, text))

    def wait(self, seconds: float) -> bool:
        return _wait(self._stopping, seconds)

    def idle(self, seconds: float) -> bool:
        return _idle(self._sock, self._stopping, seconds)

    def end(self) -> None:
        self._wfile.write(b"0\r\n\r\n")
        self._wfile.flush()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalLunar/0.1"
    sys_version = ""
    # Each answer goes out in several small writes; with Nagle's algorithm the last one waits
    # for the client's delayed ACK, about 40 ms per keep-alive answer.
    disable_nagle_algorithm = True

    @property
    def _state(self) -> _State:
        return cast(_HTTPServer, self.server).state

    # --- connection lifecycle -------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        if not self._state.opened(self.connection):
            self.drop()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the peer or stop() already tore the socket down
        finally:
            self._state.closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log lines of ``BaseHTTPRequestHandler``."""

    # --- routing --------------------------------------------------------------------------

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def _handle(self) -> None:
        try:
            self._respond()
        except OSError:
            # Client went away or stop() shut the socket: nothing left to answer.
            self.close_connection = True

    def _respond(self) -> None:
        arrival = time.monotonic()
        state = self._state
        try:
            raw = self._read_body()
        except _BadRequestBody as exc:
            self.close_connection = True  # framing is broken; cannot find the next request
            self.send_json(400, error_body(400, str(exc)))
            return
        parsed: Any = None
        try:
            parsed = json.loads(raw)
            is_json = True
        except ValueError:  # includes an empty body and invalid UTF-8
            is_json = False
        body = parsed if isinstance(parsed, dict) else None
        headers = self._header_dict()
        state.record(
            RecordedRequest(
                method=self.command,
                path=self.path,
                headers=dict(headers),  # the user's copy; gate() reads the original
                body=copy.deepcopy(body),
                model=body.get("model") if body and isinstance(body.get("model"), str) else None,
                time=arrival,
            )
        )

        route = urlsplit(self.path).path
        if self.command != "POST" or route not in CHAT_PATHS:
            self.send_json(404, error_body(404, f"No route for {self.command} {route}"))
            return
        if not self._authorized():
            self.send_json(401, error_body(401))
            return
        if not is_json:
            self.send_json(400, error_body(400, "request body is empty or not valid JSON"))
            return
        problem = validate_request(parsed)
        if problem is not None:
            self.send_json(400, error_body(400, problem))
            return
        assert body is not None  # validate_request guarantees a dict
        refusal = state.gate(request_key(headers), body["model"], arrival)
        if refusal is not None:
            extra, payload = refusal.response()
            self.send_json(429, payload, extra)
            return
        self._chat(body, arrival)

    def _authorized(self) -> bool:
        key = self._state.config.api_key
        if key is None:
            return True
        if self.headers.get("x-api-key") == key:
            return True
        # The auth scheme name is case-insensitive (RFC 9110); the key itself is not.
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token.strip() == key

    # --- the chat-completions endpoint ----------------------------------------------------

    def _chat(self, body: dict[str, Any], arrival: float) -> None:
        state = self._state
        config = state.config
        fault = state.script.take(body["model"])
        streaming = body.get("stream") is True
        if fault.before_reply(self, streaming):
            return

        step = "reply"
        try:
            reply = self._reply(body, fault)
            step = "reasoning"
            reply = self._with_reasoning(body, reply)
        except Exception as exc:  # a user's callable failed: tell the client which and why
            message = f"{step} callable raised {type(exc).__name__}: {exc}"
            self.send_json(500, error_body(500, message))
            return
        answer = make_answer(body, reply, wants_logprobs(body))
        delay = fault.token_delay(config.token_delay)
        model = config.served_model or body["model"]
        price = config.prices.get(body["model"], DEFAULT_PRICE)
        meter = Meter(
            arrival,
            count_prompt_tokens(body),
            price,
            cached_tokens=answer.cached_tokens,
            cache_write_tokens=answer.cache_write_tokens,
            details=config.style.usage_details,
        )
        completion_id = "chatcmpl-" + secrets.token_hex(12)
        created = int(time.time())

        if streaming:
            logprobs = answer.top_logprobs is not None
            chunks = ChunkFactory(completion_id, created, model, config.style, logprobs)
            self._stream(body, answer, chunks, meter, fault, delay)
            return

        # Stream-only faults do their closest non-streaming equivalent (see Fault's docstring).
        if fault.instead_of_completion(self):
            return
        # A non-streaming answer is timed and counted as if it were streamed: it arrives when
        # its last delta would have been sent.
        deltas = len(answer_pieces(answer, config.style))
        if self.wait(delay * deltas):
            self.send_json(
                200, completion(completion_id, created, model, answer, meter, config.style)
            )
        else:
            self.drop()

    def _with_reasoning(self, body: dict[str, Any], reply: Reply) -> Reply:
        """``reply`` with the server's ``reasoning`` filled in, unless it has its own."""
        if reply.reasoning is not None:
            return reply
        reasoning = self._state.config.reasoning
        if reasoning is False:
            return reply
        if reasoning is True:
            text = default_reasoning(body)
        elif isinstance(reasoning, str):
            text = reasoning
        else:
            text = reasoning(copy.deepcopy(body))
            if not isinstance(text, str):
                raise TypeError(f"expected a str from reasoning, got {type(text).__name__}")
        return dataclasses.replace(reply, reasoning=text)

    def _reply(self, body: dict[str, Any], fault: Fault) -> Reply:
        scripted = fault.scripted_reply()
        if scripted is not None:
            return scripted
        reply = self._state.config.reply
        if reply is None:
            return Reply(echo_reply(body))
        if isinstance(reply, str):
            return Reply(reply)
        if isinstance(reply, Reply):
            return reply
        result = reply(copy.deepcopy(body))
        if isinstance(result, str):
            return Reply(result)
        if not isinstance(result, Reply):
            raise TypeError(f"expected a str or a Reply, got {type(result).__name__}")
        return result

    def _stream(
        self,
        body: dict[str, Any],
        answer: Answer,
        chunks: ChunkFactory,
        meter: Meter,
        fault: Fault,
        delay: float,
    ) -> None:
        state = self._state
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sink = _ChunkedSink(self.wfile, self.connection, state.config.style, state.stopping)
        try:
            clean = run_stream(
                sink,
                chunks,
                meter,
                answer,
                style=state.config.style,
                fault=fault,
                token_delay=delay,
                include_usage=wants_usage_chunk(body),
            )
            if clean:
                sink.end()
            else:
                self.drop()
        except OSError:
            # BrokenPipe / ConnectionReset: the client closed the stream before its end.
            self.close_connection = True
            if not state.stopping.is_set():
                state.count_disconnect()

    # --- the ``Exchange`` a fault acts on: answering, dropping, waiting --------------------

    def send_json(
        self, status: int, payload: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_bytes(status, _json_bytes(payload), "application/json", headers)

    def send_bytes(
        self, status: int, data: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        extra = dict(headers or {})
        given = {name.lower() for name in extra}
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        if "content-type" not in given:
            self.send_header("Content-Type", content_type)
        if "content-length" not in given:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def send_endless(self, status: int, start: bytes, block: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        stopping = self._state.stopping
        try:
            data = start
            while not stopping.is_set():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                data = block
        except OSError:  # the client left, as it should
            if not stopping.is_set():
                self._state.count_disconnect()
        self.drop()

    def drop(self) -> None:
        """Close the connection now, sending nothing more (not even a terminating chunk)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def wait(self, seconds: float) -> bool:
        return _wait(self._state.stopping, seconds)

    def idle(self, seconds: float) -> bool:
        return _idle(self.connection, self._state.stopping, seconds)

    # --- reading requests -----------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._read_chunked()
        length = self.headers.get("content-length")
        if length is None:
            return b""
        try:
            size = int(length)
        except ValueError:
            raise _BadRequestBody("invalid Content-Length header") from None
        if size < 0:
            raise _BadRequestBody("invalid Content-Length header")
        return self.rfile.read(size)

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            line = self.rfile.readline(65537)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequestBody("invalid chunked request body") from None
            if size == 0:
                # Skip optional trailers up to the blank line.
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline(65537)  # the CRLF after each chunk

    def _header_dict(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return headers


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


class LocalLunarServer:
    """A real Lunar-compatible HTTP server on ``127.0.0.1`` for offline tests and demos.

    Serves ``POST /v1/chat/completions`` (and ``POST /chat/completions``), streaming and not,
    from background daemon threads. Use it as a context manager, or call ``start()``/``stop()``.

    Args:
        reply: the answer to each request: a fixed str (text) or ``Reply`` (text and tool
            calls), a callable given the parsed JSON request body returning either, or None
            for the echo: ``"You said: <last user message text>"``, or, when the last message
            is a tool message, ``"Tool results: <tool contents after the last assistant
            message, joined by '; '>"``.
        reasoning: play a reasoning model: every answer whose ``Reply.reasoning`` is None
            (plain-text replies, the echo) thinks first, streamed before its text. False (the
            default): no thinking; True: a short deterministic text about the request (see
            ``default_reasoning``: ``"The user wrote: “<last user text>”. Time to
            answer."``); a str: that text; a callable: called with the parsed JSON request body.
        api_key: when set, a request must send ``Authorization: Bearer <key>`` or
            ``x-api-key: <key>``, else it gets a 401. None: no auth.
        token_delay: seconds before each streamed delta (reasoning or text token, tool-call
            chunk...). A non-streaming reply is sent after ``token_delay`` times their number,
            as if generated at the same speed.
        style: how the SSE stream is written; see ``WireStyle``.
        prices: USD per 1M tokens ``(input, output)`` by requested model; any other model is
            priced at ``DEFAULT_PRICE`` = (0.15, 0.60).
        served_model: the ``model`` reported in responses; default: the requested model.
        rate_limit: a ``RateLimit`` (a token bucket per API key), or ``(requests_per_second,
            burst)`` for ``RateLimit(requests_per_second, burst)``; None (default): no limit.
            The key is the request's ``x-api-key``, else its ``Authorization: Bearer`` token;
            requests with neither share one bucket. Checked when a chat-completions request
            has passed routing, auth and validation, before any scripted step is taken or any
            reply is sent; a refused request gets a 429 (``{"error": {"message": "Rate limit
            reached ...", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}``) with
            the retry hint of ``RateLimit.retry_after``, takes no step and is counted in
            ``rate_limited``.
        port: TCP port; 0 (default) picks a free one.
    """

    def __init__(
        self,
        reply: str | Reply | ReplyFn | None = None,
        *,
        reasoning: bool | str | ReasoningFn = False,
        api_key: str | None = None,
        token_delay: float = 0.0,
        style: WireStyle = PLAIN_STYLE,
        prices: Mapping[str, tuple[float, float]] | None = None,
        served_model: str | None = None,
        rate_limit: RateLimit | tuple[float, int] | None = None,
        port: int = 0,
    ) -> None:
        if token_delay < 0:
            raise ValueError(f"token_delay must be >= 0, got {token_delay!r}")
        if reply is not None and not isinstance(reply, (str, Reply)) and not callable(reply):
            raise TypeError(f"reply must be a str, a Reply, a callable or None, got {reply!r}")
        if not isinstance(reasoning, (bool, str)) and not callable(reasoning):
            raise TypeError(f"reasoning must be a bool, a str or a callable, got {reasoning!r}")
        self._config = _Config(
            reply=reply,
            reasoning=reasoning,
            api_key=api_key,
            token_delay=token_delay,
            style=style,
            prices=dict(prices or {}),
            served_model=served_model,
            rate_limit=as_rate_limit(rate_limit),
        )
        self._port = port
        self._state = _State(self._config)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> LocalLunarServer:
        """Bind and start serving in a background thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("LocalLunarServer is already started")
        self._state.stopping.clear()
        self._httpd = _HTTPServer(self._port, self._state)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"LocalLunarServer:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every open connection, in-flight streams included.

        Returns within about half a second; safe to call twice. Scripted steps, recorded
        requests and counters are kept.
        """
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._state.stopping.set()  # wakes token delays and stalls
        httpd.shutdown()
        httpd.server_close()
        sockets, threads = self._state.live()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # unblocks keep-alive reads, fails writes
        deadline = time.monotonic() + _STOP_JOIN_BUDGET
        for t in [thread, *threads]:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        self._httpd = None
        self._thread = None

    def __enter__(self) -> LocalLunarServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- addresses and observations -------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port (only while started)."""
        if self._httpd is None:
            raise RuntimeError("LocalLunarServer is not started")
        return self._httpd.server_port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, the ``base_url`` to give a client."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, in arrival order."""
        return self._state.requests()

    @property
    def connections(self) -> int:
        """How many TCP connections the server has accepted."""
        return self._state.connections

    @property
    def disconnects(self) -> int:
        """How many streaming responses the client closed before the server finished them."""
        return self._state.disconnects

    @property
    def rate_limited(self) -> int:
        """How many 429s the rate limit sent (not counting those of ``cool()``)."""
        return self._state.rate_limited

    @property
    def admitted_by_key(self) -> dict[str | None, int]:
        """A copy of how many chat-completions requests passed the rate limit (all that passed
        routing, auth and validation when there is none), by key; None: requests without one.
        Requests then refused by ``cool()`` are included: they took a token."""
        return self._state.admitted()

    @property
    def cooling_refusals(self) -> dict[str, int]:
        """A copy of how many 429s ``cool()`` caused, by requested model."""
        return self._state.cooling_refusals()

    # --- control --------------------------------------------------------------------------

    def script(self, *steps: Fault | Reply | str, model: str | None = None) -> None:
        """Queue ``steps``, consumed one per chat-completions request, in order.

        A step is a ``Fault``, or a str or ``Reply`` (short for ``Fault.reply(step)``, a
        one-off answer). With ``model``, only requests for that (requested) model consume
        them, and before any unfiltered steps. Only requests that pass routing, auth and
        validation consume a step; requests finding no step get the normal reply.
        """
        self._state.script.add(steps, model)

    def cool(
        self, model: str, seconds: float, *, retry_after: RetryAfterForm | None = "seconds"
    ) -> None:
        """Refuse every request for ``model`` (the requested one) for the next ``seconds``, as
        an upstream provider that is rate limiting: a 429 like the rate limit's (``"Rate limit
        reached for model ..."``), whose retry hint is the time left, in the ``retry_after``
        form (see ``RateLimit``; by default ``Retry-After`` in whole seconds, rounded up).

        Checked right after the rate limit, so a refused request took its key's token; it
        takes no scripted step and is counted in ``cooling_refusals``. Calling again replaces
        the period; ``seconds=0`` ends it.
        """
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty str, got {model!r}")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise ValueError(f"seconds must be a number, got {seconds!r}")
        if not 0 <= seconds < math.inf:
            raise ValueError(f"seconds must be finite and >= 0, got {seconds!r}")
        self._state.cool(model, seconds, check_retry_after(retry_after))

    def wait_for_disconnects(self, n: int, timeout: float = 5.0) -> bool:
        """Block until ``disconnects >= n`` or ``timeout`` seconds pass; returns whether it was
        reached."""
        return self._state.wait_for_disconnects(n, timeout)
