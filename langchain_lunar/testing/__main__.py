"""``python -m langchain_lunar.testing``: run a ``LocalLunarServer`` in the foreground.

Prints the server's base_url, then serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import time

from langchain_lunar.testing._server import LocalLunarServer


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, serve until interrupted, return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m langchain_lunar.testing",
        description="Run a local Lunar-compatible chat-completions server (echo replies).",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    parser.add_argument(
        "--token-delay", type=float, default=0.0, help="seconds before each streamed token"
    )
    parser.add_argument("--api-key", default=None, help="require this key (Bearer or x-api-key)")
    args = parser.parse_args(argv)

    server = LocalLunarServer(api_key=args.api_key, token_delay=args.token_delay, port=args.port)
    with server:
        print(server.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(1)  # short sleeps stay interruptible by Ctrl-C everywhere
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
