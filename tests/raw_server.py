"""A raw socket HTTP server for hostile-server tests: it sends exactly the bytes a test gives.

Nothing here parses or builds HTTP for the answer: a test writes the status line, the headers
and the body byte for byte (a reason phrase that quotes the key, a header the client must not
trust, an event after ``[DONE]``), with pauses between the pieces, and may leave the connection
open afterwards. Each request takes the next answer in order; the last one repeats. The server
records every request it read (head and body) and when each client went away.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

GIVE_UP = 10.0  # a connection left open ends on its own after this, so no test can hang


@dataclass
class Answer:
    """One answer: ``pieces`` in order, then ``hold`` seconds of silence with the connection
    open (0: close at once; the client may still close first)."""

    pieces: Sequence[bytes | float | None]
    hold: float = 0.0


@dataclass
class Request:
    """A request as it came: the head's lines and the body."""

    head: list[bytes]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)

    def header(self, name: str) -> str | None:
        prefix = name.lower().encode() + b":"
        for line in self.head[1:]:
            if line.lower().startswith(prefix):
                return line[len(prefix) :].strip().decode("latin-1")
        return None


def http(
    status: bytes,
    headers: Sequence[bytes] = (),
    body: bytes = b"",
    *,
    length: bool = True,
) -> bytes:
    """A response's bytes: ``HTTP/1.1 {status}``, the headers, and the body, with a
    ``content-length`` unless ``length`` is false (then the body runs until the close)."""
    lines = [b"HTTP/1.1 " + status, *headers]
    if length:
        lines.append(b"content-length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class RawServer:
    """Serves ``answers`` on 127.0.0.1 at a free port, one thread per connection."""

    def __init__(self, answers: Sequence[Answer]) -> None:
        if not answers:
            raise ValueError("give at least one answer")
        self._answers = list(answers)
        self._next = 0
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self.disconnects: list[float] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._closed = False
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _take(self) -> Answer:
        with self._lock:
            answer = self._answers[min(self._next, len(self._answers) - 1)]
            self._next += 1
            return answer

    def _serve(self, connection: socket.socket) -> None:
        buffer = b""
        with connection:
            try:
                while True:
                    request, buffer = _read_request(connection, buffer)
                    if request is None:
                        return
                    with self._lock:
                        self.requests.append(request)
                    if not self._answer(connection, self._take()):
                        return
            except OSError:
                pass
            finally:
                with self._lock:
                    self.disconnects.append(time.monotonic())

    def _answer(self, connection: socket.socket, answer: Answer) -> bool:
        """Send one answer; whether the connection may carry another request."""
        for piece in answer.pieces:
            if piece is None:
                return False
            if isinstance(piece, float | int):
                if _client_left(connection, float(piece)):
                    return False
            else:
                connection.sendall(piece)
        if answer.hold:
            _client_left(connection, min(answer.hold, GIVE_UP))
            return False
        return True

    def close(self) -> None:
        self._closed = True
        self._listener.close()


def _client_left(connection: socket.socket, seconds: float) -> bool:
    """Wait ``seconds``; True as soon as the client closes its side."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        readable, _, _ = select.select([connection], [], [], left)
        if readable:
            try:
                if not connection.recv(65536, socket.MSG_PEEK):
                    return True
            except OSError:
                return True
            time.sleep(min(left, 0.01))  # a pipelined request: not ours to read here
    return False


def _read_request(connection: socket.socket, buffer: bytes) -> tuple[Request | None, bytes]:
    while b"\r\n\r\n" not in buffer:
        data = connection.recv(65536)
        if not data:
            return None, b""
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        data = connection.recv(65536)
        if not data:
            return None, b""
        rest += data
    return Request(lines, rest[:length]), rest[length:]


class RawServers:
    """What the ``raw_server`` fixture gives: ``start(*answers)`` serves them; every server
    started is closed after the test."""

    def __init__(self) -> None:
        self._servers: list[RawServer] = []

    def start(self, *answers: Answer) -> RawServer:
        self._servers.append(RawServer(answers))
        return self._servers[-1]

    def close(self) -> None:
        for server in self._servers:
            server.close()
