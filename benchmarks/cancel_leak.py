"""Cancelled streams and the connection pool: does a stream stopped at a random point leave a
connection behind?

    python benchmarks/cancel_leak.py [--client lunar|httpx] [--httpx2] [--streams 1000]
        [--concurrency 1] [--modes cancel,wait_for,aclose] [--seed 0] [--json PATH]

A ``LocalLunarServer`` in a child process (so that its sockets are not counted here) streams
300 tokens 2 ms apart. This process opens ``--streams`` streams, ``--concurrency`` at a time,
and stops each at a random point, in one of these ways, in turn:

- ``cancel``: ``task.cancel()`` on the task reading the stream, after a random delay;
- ``wait_for``: ``asyncio.wait_for()`` around the reading, with a random timeout;
- ``aclose``: the stream's async generator closed (``aclose()``) after a random number of
  chunks;
- ``cancel_twice`` (only with ``--modes``): ``task.cancel()``, then again a moment later,
  while the first cancellation is still being handled (as a server cancelling a request
  whose client left, then timing it out, does).

The delays are drawn so that the stops land everywhere: a quarter in the first millisecond
(taking a connection from the pool, connecting, sending the request, waiting for the headers),
the rest while the body streams (1-40 ms). After each stop the script lets the loop run for a
millisecond and counts the pool's connections that are neither idle nor closed: a rise is
charged to that stop. At the end it waits, collects garbage, waits again and counts once more:
a connection still ACTIVE (or CONNECTING) then, with no request in the pool, is a leak.

``--client lunar`` streams with ``ChatLunar.astream()`` (the shared client of
``langchain_lunar._clients``); ``--client httpx`` with a bare ``httpx.AsyncClient.stream()``,
the floor. ``--httpx2`` makes ``import httpx`` and ``import httpcore`` resolve to Pydantic's
fork (``httpx2.alias_httpx()``), so that the same code runs on it.

Prints one JSON object: the versions, the counts per way of stopping, the pool's connections
by state and the open file descriptors before and after.
"""

from __future__ import annotations

import argparse
import sys

# Before anything imports httpx: the alias must come first.
if __name__ == "__main__" and "--httpx2" in sys.argv:
    import httpx2

    httpx2.alias_httpx()

import asyncio
import collections
import contextlib
import gc
import json
import os
import random
import subprocess
import time
from collections.abc import AsyncIterator
from importlib import metadata
from typing import Any

import httpx

TOKENS = 300
TOKEN_DELAY = 0.002
PROMPT = " ".join(f"w{i}" for i in range(TOKENS - 2))  # the echo adds "You said:"
ALL_MODES = ("cancel", "wait_for", "aclose", "cancel_twice")
# States of a connection in the pool that hold it without a request on it being possible.
BUSY = ("ACTIVE", "CONNECTING", "NEW")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def connection_state(connection: Any) -> str:
    """The state word of an httpcore connection's ``info()``: IDLE, ACTIVE, CONNECTING..."""
    info: str = connection.info()
    for state in ("CONNECTION FAILED", "CONNECTING", "ACTIVE", "IDLE", "CLOSED", "NEW"):
        if state in info:
            return state
    return info


def census(client: httpx.AsyncClient) -> dict[str, Any]:
    """The pool's connections by state, and the requests it holds."""
    pool: Any = client._transport._pool  # type: ignore[attr-defined]
    states = collections.Counter(connection_state(c) for c in pool.connections)
    return {"connections": dict(sorted(states.items())), "requests": len(pool._requests)}


def busy(client: httpx.AsyncClient) -> int:
    return sum(census(client)["connections"].get(state, 0) for state in BUSY)


class Streams:
    """Opens one stream of ~300 chunks, as an async iterator, with the chosen client."""

    def __init__(self, kind: str, base_url: str) -> None:
        self.kind = kind
        self.base_url = base_url
        if kind == "lunar":
            from langchain_lunar import ChatLunar

            self.llm = ChatLunar(
                model="m", base_url=base_url, api_key="sk-local", max_retries=0, timeout=10
            )
        else:
            self.http = httpx.AsyncClient(timeout=10)

    def client(self) -> httpx.AsyncClient:
        """The pool being watched (the running loop's, for ChatLunar)."""
        if self.kind == "lunar":
            return self.llm._async_client()
        return self.http

    def open(self) -> AsyncIterator[Any]:
        if self.kind == "lunar":
            return self.llm.astream(PROMPT)
        return self._bare()

    async def _bare(self) -> AsyncIterator[bytes]:
        body = {
            "model": "m",
            "stream": True,
            "messages": [{"role": "user", "content": PROMPT}],
        }
        url = self.base_url + "/chat/completions"
        async with self.http.stream("POST", url, json=body) as response:
            async for data in response.aiter_bytes():
                yield data

    async def read_all(self) -> int:
        n = 0
        async for _ in self.open():
            n += 1
        return n

    async def aclose(self) -> None:
        if self.kind == "lunar":
            await self.llm.aclose()
        else:
            await self.http.aclose()


def stop_delay(rng: random.Random) -> float:
    if rng.random() < 0.25:
        return rng.uniform(0, 0.001)
    return rng.uniform(0.001, 0.040)


async def stop_one(streams: Streams, mode: str, rng: random.Random) -> None:
    """Open one stream and stop it the ``mode`` way at a random point."""
    if mode == "aclose":
        stream = streams.open()
        for _ in range(rng.randint(1, 40)):
            await stream.__anext__()
        await stream.aclose()  # type: ignore[attr-defined]
        return
    delay = stop_delay(rng)
    if mode == "wait_for":
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(streams.read_all(), delay)
        return
    task = asyncio.ensure_future(streams.read_all())
    await asyncio.sleep(delay)
    task.cancel()
    if mode == "cancel_twice":
        # Twice: as soon as it may be unwinding, and a little later.
        await asyncio.sleep(rng.choice((0, 0, 0.0002, 0.001)))
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def settle(seconds: float) -> None:
    await asyncio.sleep(seconds)
    gc.collect()  # generators dropped in cycles: their finalizers close their responses
    await asyncio.sleep(seconds)


async def run(args: argparse.Namespace, base_url: str) -> dict[str, Any]:
    rng = random.Random(args.seed)
    streams = Streams(args.client, base_url)
    for _ in range(10):  # warm-up: imports, the pool, the server's threads
        await streams.read_all()
    client = streams.client()
    await settle(0.05)
    fds_before = open_fds()
    before = census(client)

    modes = args.modes.split(",")
    stops = collections.Counter[str]()
    raised = collections.Counter[str]()
    started = time.perf_counter()
    for first in range(0, args.streams, args.concurrency):
        batch = [
            modes[i % len(modes)] for i in range(first, min(first + args.concurrency, args.streams))
        ]
        was = busy(client)
        await asyncio.gather(*(stop_one(streams, mode, rng) for mode in batch))
        await asyncio.sleep(0.001)
        rise = busy(client) - was
        for mode in batch:
            stops[mode] += 1
        if rise > 0:  # shared among the batch's ways; exact at --concurrency 1
            for mode in batch[:rise]:
                raised[mode] += 1
    elapsed = time.perf_counter() - started

    right_after = census(client)
    await settle(0.5)
    after = census(client)
    fds_after = open_fds()
    # Can the pool still serve? (A leaked slot is only felt once the pool is full.)
    chunks = await asyncio.wait_for(streams.read_all(), 10)
    await streams.aclose()
    await settle(0.05)
    return {
        "client": args.client,
        "transport": _versions(),
        "streams": args.streams,
        "concurrency": args.concurrency,
        "seed": args.seed,
        "seconds": round(elapsed, 2),
        "stops": dict(stops),
        "rose_after_stop": dict(raised),
        "pool_before": before,
        "pool_right_after": right_after,
        "pool_after_settling": after,
        "leaked": sum(after["connections"].get(state, 0) for state in BUSY),
        "fds_before": fds_before,
        "fds_after": fds_after,
        "fds_after_close": open_fds(),
        "chunks_of_a_full_stream_afterwards": chunks,
    }


def _versions() -> dict[str, str]:
    found = {}
    for name in ("httpx", "httpcore", "httpx2", "httpcore2", "anyio"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    found["module"] = f"{httpx.__name__} {httpx.__version__}"
    return found


def start_server() -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "langchain_lunar.testing", "--token-delay", str(TOKEN_DELAY)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    return server, server.stdout.readline().strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", choices=("lunar", "httpx"), default="lunar")
    parser.add_argument("--httpx2", action="store_true", help="run on httpx2 (alias_httpx)")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--modes", default="cancel,wait_for,aclose")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also append the result to this file (JSON lines)")
    args = parser.parse_args()
    if unknown := set(args.modes.split(",")) - set(ALL_MODES):
        parser.error(f"unknown modes {sorted(unknown)}; choose from {ALL_MODES}")
    server, base_url = start_server()
    try:
        result = asyncio.run(run(args, base_url))
    finally:
        server.terminate()
        server.wait(5)
    text = json.dumps(result)
    print(text)
    if args.json:
        with open(args.json, "a") as out:
            out.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
