"""``python -m langchain_lunar.testing``: run a ``LocalLunarServer`` in the foreground.

Prints the server's base_url, then serves until Ctrl-C (SIGINT) or SIGTERM, and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
from collections.abc import Iterator
from types import FrameType

from langchain_lunar.testing._limits import RateLimit
from langchain_lunar.testing._server import LocalLunarServer

# Ctrl-C, and what kill, docker and systemd send.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _wake_only(signum: int, frame: FrameType | None) -> None:
    """A Python-level handler that does nothing: the wakeup byte is the whole message."""


@contextlib.contextmanager
def _stop_signals() -> Iterator[socket.socket]:
    """Make SIGINT and SIGTERM only write their number to the returned socket's peer.

    Not KeyboardInterrupt: it is raised wherever the main thread happens to be, e.g. inside
    the print() of the URL, and then escapes with a traceback. Not an Event set by the
    handler: Event.set() deadlocks if the handler runs while the main thread holds the
    Event's lock. The wakeup byte is written by the C-level handler, whichever thread the OS
    delivers the signal to. Installing a handler also undoes a SIG_IGN inherited from a
    shell that starts background jobs with SIGINT ignored, under which Ctrl-C did nothing.
    """
    reader, writer = socket.socketpair()
    with reader, writer:
        writer.setblocking(False)  # set_wakeup_fd requires it; a full buffer just drops bytes
        # The wakeup fd first: a signal caught between the two steps must not be lost.
        old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        previous = {sig: signal.signal(sig, _wake_only) for sig in _STOP_SIGNALS}
        try:
            yield reader
        finally:
            for sig, handler in previous.items():
                if handler is not None:  # None: set outside Python, cannot be put back
                    signal.signal(sig, handler)
            signal.set_wakeup_fd(old_fd)


def _wait_for_stop_signal(wakeup: socket.socket) -> None:
    # Other Python-handled signals write their numbers too; only ours stop the server.
    while wakeup.recv(1)[0] not in _STOP_SIGNALS:
        pass


def _rate_limit(text: str) -> RateLimit:
    """``RPS[:BURST]`` as a ``RateLimit``; a usage error naming the problem if it is not one."""
    rps, colon, burst = text.partition(":")
    try:
        return RateLimit(float(rps), int(burst) if colon else None)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected RPS[:BURST], got {text!r}: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, serve until SIGINT or SIGTERM, return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m langchain_lunar.testing",
        description="Run a local Lunar-compatible chat-completions server (echo replies).",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    parser.add_argument(
        "--token-delay", type=float, default=0.0, help="seconds before each streamed token"
    )
    parser.add_argument("--api-key", default=None, help="require this key (Bearer or x-api-key)")
    parser.add_argument(
        "--rate-limit",
        type=_rate_limit,
        default=None,
        metavar="RPS[:BURST]",
        help="a token bucket per API key: RPS requests a second, bursts of BURST "
        "(default: one second's worth); beyond it, 429 with Retry-After",
    )
    args = parser.parse_args(argv)

    server = LocalLunarServer(
        api_key=args.api_key,
        token_delay=args.token_delay,
        rate_limit=args.rate_limit,
        port=args.port,
    )
    # Handlers before the URL is printed, and kept until the server has stopped, so no
    # Ctrl-C can interrupt printing or stopping.
    with _stop_signals() as wakeup, server:
        print(server.base_url, flush=True)
        _wait_for_stop_signal(wakeup)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
