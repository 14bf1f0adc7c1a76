"""``RedisServer``: a real ``redis-server`` process on a free port of 127.0.0.1, for tests of a
fleet that shares its Lunar budget through Redis.

It runs Debian's (or any) ``redis-server`` binary found on PATH, with no persistence, and is
stopped by its PID. ``kill()`` ends it abruptly, as a crash would; ``start()`` again brings it
back on the same port, empty.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from types import TracebackType


class RedisServer:
    """A ``redis-server`` child process on ``127.0.0.1``.

    Args:
        port: TCP port; 0 (the default) picks a free one.
        binary: the server executable; default: ``redis-server`` from PATH.
    """

    def __init__(self, port: int = 0, *, binary: str | None = None) -> None:
        found = binary or shutil.which("redis-server")
        if found is None:
            raise FileNotFoundError(
                "redis-server is not installed (Debian: apt-get install redis-server)"
            )
        self._binary = found
        self.port = port or _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it accepts connections; returns self."""
        if self._process is not None:
            raise RuntimeError("RedisServer is already started")
        self._process = subprocess.Popen(
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"redis-server exited at start (port {self.port} taken?)")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"redis-server did not answer on port {self.port} in {timeout} s")

    def stop(self) -> None:
        """Stop the server (SIGTERM to its PID, then SIGKILL if needed); safe to call twice."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()

    def kill(self) -> None:
        """End the server at once (SIGKILL), as a crash would."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
