"""``first_chunk_timeout`` and ``stream_chunk_timeout``: the longest waits for the first data
event of a stream (its response headers included), and for each next one.

The two differ because a reasoning model thinks in silence before its first token, for minutes
on a long prompt, while a model that has begun answering sends tokens every few seconds. (Some
servers send the response headers at once, others only with the first event: either way they
are part of the first wait.)

Gateways send SSE comments (``: ping``) while a model is silent, and each one resets httpx's read
timeout, so only data events say that the model is alive. The transports keep a deadline of
their own, a ``DataDeadline``, which only a data event moves: it starts at the request's start
plus ``first_chunk_timeout``, and each data event sets it to ``stream_chunk_timeout`` ahead:

- after each network read, the transport compares the assembler's count of data events with the
  last one it saw: one clock read per read, nothing per token; a read that brought only comments
  (or part of an event) fails the stream once the deadline has passed;
- a read that blocks can only be ended from outside: a watchdog (one thread shared by every sync
  stream; one timer on the event loop per async stream) shuts the connection's socket down at the
  deadline. That wakes the blocked read at once, which then fails as a closed connection and is
  reported as the stall, and it tells the server the client has gone. The watchdog is not told
  when the deadline moves: it wakes at the old one, sees the new one and sleeps again, so it
  wakes about once per ``stream_chunk_timeout`` of a stream that is flowing. A data event can
  also bring the deadline closer (the first deadline may be further off than one gap's), so
  the watchdog looks again within one ``stream_chunk_timeout`` at the latest;
- the response headers come before there is a response to watch: only the read timeout can end
  that wait, so a stream's request is sent with its read timeout at most
  ``first_chunk_timeout``. The body's reads wait for the first event and then for each next
  one, so once the headers are in, the read timeout of the body is the larger of the two
  bounds (httpcore reads the request's ``timeout`` extension as the body begins, and before
  each network read of HTTP/2); the watchdog and the check after each read end the shorter
  waits;
- the time the caller spends with the chunks, between two reads, is not a wait: the deadline is
  held at ``NEVER`` while the chunks of a read are handed out;
- closing the response releases the watch before the response's own close runs, because that
  close gives the connection back to the pool, where another request may take it at once: a
  watchdog waking late must never cut a connection that serves someone else. (httpx closes a
  response by itself when its body ends, before the transport's loop sees the end.)

Only an HTTP/1 connection with a socket is shut down (an HTTP/2 connection carries other requests
too); otherwise the read timeout and the check after each read are what end a stall: a read that
brings only comments past the deadline ends it at once, while a stream gone wholly silent after
its first event ends when the body's read timeout (the larger bound) runs out.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import os
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from time import monotonic
from typing import Any

import httpx

logger = logging.getLogger("langchain_lunar")

NEVER = math.inf
"""The deadline while the caller holds the chunks of a read, or where no bound applies."""


class DataDeadline:
    """The time by which the next data event of one stream must arrive.

    The transport writes ``deadline``; a watchdog reads it and cuts the connection once it has
    passed (see the module docstring). ``timeout`` is the bound between events (``NEVER``: no
    bound); the first deadline is ``first_deadline`` when given, else ``timeout`` from now.
    """

    __slots__ = ("_sock", "deadline", "fired", "timeout")

    def __init__(self, timeout: float, sock: Any, first_deadline: float | None = None) -> None:
        self.timeout = timeout
        self.deadline = monotonic() + timeout if first_deadline is None else first_deadline
        self.fired = False
        self._sock = sock  # None: nothing to cut, or released

    @property
    def can_cut(self) -> bool:
        """Whether a watchdog will cut the connection at the deadline (until released)."""
        return self._sock is not None

    def expired(self) -> bool:
        """Whether the stream has waited too long: the reason a read just failed, if so."""
        return self.fired or monotonic() >= self.deadline

    def release(self) -> None:
        """The stream is over: its connection is never cut from now on (it may be reused)."""
        self._sock = None

    def _check(self, now: float) -> float | None:
        """Cut the connection if the deadline has passed; else the time to check again.

        None when there is nothing more to watch (cut, released, or no bound left).
        """
        sock = self._sock
        if sock is None:
            return None
        deadline = self.deadline
        if now < deadline:
            # NEVER while the caller holds the chunks; and a data event may bring the deadline
            # closer than it is now (the first can be further off than one gap's).
            return self._look_again(min(deadline, now + self.timeout))
        self.fired = True
        self._sock = None
        _shut_down(sock)
        return None

    def _first_check(self) -> float | None:
        """When the watchdog first looks at this deadline; None: never (nothing to bound)."""
        return self._look_again(min(self.deadline, monotonic() + self.timeout))

    def _look_again(self, when: float) -> float | None:
        """``when``, the time to look at the deadline next, or None (the watch ends) when that
        is never: no bound applies from now on (the first event came, or the caller holds the
        chunks, and there is no bound between events)."""
        if when == NEVER:
            self._sock = None  # out of the watchdog's heap from now on, as after a cut
            return None
        return when


class _Watchdog:
    """One daemon thread that checks the deadlines of every sync stream, earliest first."""

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
            # After a fork the thread is gone and the lock may be held by it: start afresh.
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Condition(threading.Lock())
        self._due: list[tuple[float, int, DataDeadline]] = []
        self._order = itertools.count()  # ties in the heap never compare deadlines
        self._released = 0  # entries of released streams, left in the heap until due
        self._thread: threading.Thread | None = None

    def watch(self, guard: DataDeadline) -> None:
        with self._lock:
            first = guard._first_check()
            if first is None:
                return
            heapq.heappush(self._due, (first, next(self._order), guard))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="langchain-lunar-stream-watchdog", daemon=True
                )
                self._thread.start()
            elif self._due[0][2] is guard:
                self._lock.notify()  # earlier than what the thread sleeps until

    def release(self, guard: DataDeadline) -> None:
        # Under the lock: once this returns, the thread cannot be cutting the connection, which
        # may then go back to the pool and serve another request.
        with self._lock:
            if guard._sock is None:
                return  # cut already, and out of the heap
            guard._sock = None
            self._released += 1
            due = self._due
            if self._released > 64 and 2 * self._released > len(due):
                # Most streams end long before their deadline: drop their entries now and then,
                # so the heap holds about the streams that are open.
                due[:] = [entry for entry in due if entry[2]._sock is not None]
                heapq.heapify(due)
                self._released = 0

    def _run(self) -> None:
        due = self._due
        with self._lock:
            while True:
                if not due:
                    self._lock.wait()
                    continue
                when, _, guard = due[0]
                now = monotonic()
                if when > now:
                    self._lock.wait(when - now)
                    continue
                heapq.heappop(due)
                if guard._sock is None:
                    self._released -= 1
                    continue
                try:
                    again = guard._check(now)
                except Exception:  # never let one stream end the watch over all the others
                    logger.exception("The stream watchdog failed to check a deadline")
                    again = None
                if again is not None:
                    heapq.heappush(due, (again, next(self._order), guard))


_WATCHDOG: _Watchdog | None = None
_WATCHDOG_LOCK = threading.Lock()


class _SyncDeadline(DataDeadline):
    __slots__ = ()

    def release(self) -> None:
        assert _WATCHDOG is not None
        _WATCHDOG.release(self)


class _AsyncDeadline(DataDeadline):
    __slots__ = ("_loop", "_timer")

    def __init__(self, timeout: float, sock: Any, first_deadline: float | None = None) -> None:
        super().__init__(timeout, sock, first_deadline)
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._set_timer(self._first_check())

    def _set_timer(self, when: float | None) -> None:
        if when is not None:
            self._timer = self._loop.call_later(when - monotonic(), self._on_timer)

    def _on_timer(self) -> None:
        self._set_timer(self._check(monotonic()))

    def release(self) -> None:
        self._sock = None
        if self._timer is not None:
            self._timer.cancel()


class _ReleasingStream(httpx.SyncByteStream):
    """A sync response stream whose closing first releases the watch on its connection."""

    def __init__(self, stream: httpx.SyncByteStream, guard: DataDeadline) -> None:
        self._stream = stream
        self._guard = guard

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._stream)

    def close(self) -> None:
        self._guard.release()
        self._stream.close()


class _AsyncReleasingStream(httpx.AsyncByteStream):
    """Async twin of ``_ReleasingStream``."""

    def __init__(self, stream: httpx.AsyncByteStream, guard: DataDeadline) -> None:
        self._stream = stream
        self._guard = guard

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        self._guard.release()
        await self._stream.aclose()


def watch_sync(
    response: httpx.Response, timeout: float, first_deadline: float | None = None
) -> DataDeadline:
    """The deadline of a sync stream that has just begun, watched when it can be enforced.

    ``timeout``: the bound between data events (``NEVER``: none); ``first_deadline``: when the
    first must have come (default: ``timeout`` from now). The watch ends at ``release()``, or
    when ``response`` is closed, whichever comes first.
    """
    global _WATCHDOG
    sock = _socket_of(response)
    if sock is None or not isinstance(response.stream, httpx.SyncByteStream):
        return DataDeadline(timeout, None, first_deadline)
    guard = _SyncDeadline(timeout, sock, first_deadline)
    response.stream = _ReleasingStream(response.stream, guard)
    if _WATCHDOG is None:
        with _WATCHDOG_LOCK:
            if _WATCHDOG is None:
                _WATCHDOG = _Watchdog()
    _WATCHDOG.watch(guard)
    return guard


def watch_async(
    response: httpx.Response, timeout: float, first_deadline: float | None = None
) -> DataDeadline:
    """The deadline of an async stream that has just begun, on the running event loop.

    The arguments are ``watch_sync``'s. The watch ends at ``release()``, or when ``response``
    is closed, whichever comes first.
    """
    sock = _socket_of(response)
    if sock is None or not _in_asyncio() or not isinstance(response.stream, httpx.AsyncByteStream):
        return DataDeadline(timeout, None, first_deadline)
    guard = _AsyncDeadline(timeout, sock, first_deadline)
    response.stream = _AsyncReleasingStream(response.stream, guard)
    return guard


def _in_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # trio, through anyio
        return False
    return True


def stream_timeout(timeout: httpx.Timeout, first_timeout: float | None) -> httpx.Timeout:
    """``timeout`` with its read timeout at most ``first_timeout``: the timeout of a stream's
    request, whose response headers are part of the wait for the first data event."""
    if first_timeout is None or (timeout.read is not None and timeout.read <= first_timeout):
        return timeout
    return httpx.Timeout(
        connect=timeout.connect, read=first_timeout, write=timeout.write, pool=timeout.pool
    )


def first_deadline(started: float, first_timeout: float | None) -> float:
    """When the first data event of a stream sent at ``started`` must have come."""
    return NEVER if first_timeout is None else started + first_timeout


def widen_body_timeout(
    response: httpx.Response,
    read_timeout: float | None,
    first_timeout: float | None,
    chunk_timeout: float | None,
) -> None:
    """Before the body of ``response`` is read: let its reads wait as long as the longer of
    ``first_timeout`` and ``chunk_timeout`` (never longer than ``read_timeout``, the user's).

    The request went out with its read timeout at most ``first_timeout`` (``stream_timeout``),
    which must not cut a gap between events that ``chunk_timeout`` allows. httpcore reads the
    request's ``timeout`` extension as the body begins (HTTP/1.1) and before each network read
    (HTTP/2): an entry set now takes effect. A transport that reads it earlier keeps the first.
    """
    if first_timeout is None or chunk_timeout is None or chunk_timeout <= first_timeout:
        return  # the read timeout is already the larger bound, or the user's
    if read_timeout is not None and read_timeout <= first_timeout:
        return  # the user's own read timeout, shorter than both
    extensions = response.request.extensions
    timeouts = extensions.get("timeout")
    if isinstance(timeouts, dict):
        wider = chunk_timeout if read_timeout is None else min(read_timeout, chunk_timeout)
        extensions["timeout"] = {**timeouts, "read": wider}


def _socket_of(response: httpx.Response) -> Any:
    """The socket of the response's connection, when shutting it down ends this stream alone."""
    if not response.http_version.startswith("HTTP/1"):
        return None
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    try:
        return stream.get_extra_info("socket")
    except Exception:  # a transport of the user's may not know the name
        return None


def _shut_down(sock: Any) -> None:
    try:
        if isinstance(sock, socket.socket):
            # socket.socket's own shutdown, not SSLSocket's: that one also drops the TLS state
            # that the blocked reader is still using.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        else:
            sock.shutdown(socket.SHUT_RDWR)  # asyncio's TransportSocket
    except (OSError, AttributeError) as error:
        # Already closed by the peer, or a socket-like object without shutdown: the read timeout
        # and the check after each read still end the stall.
        logger.debug("Could not shut down a stalled stream's socket: %r", error)
