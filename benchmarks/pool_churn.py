"""A busy async pool: does any stream fail while connections come and go?

    python benchmarks/pool_churn.py [--streams 3000] [--concurrency 150] [--chunks 200]
        [--json PATH]

``_server.py`` in a child process serves pre-rendered streams. This process runs ``--streams``
``ChatLunar.astream()`` calls (``max_retries=0``, so nothing hides a failure), keeping
``--concurrency`` in flight: each one that ends lets the next start, so requests keep taking
connections that others have just given back. With more in flight than the pool keeps alive
(100), the pool also closes idle connections all the time.

This is the load under which one stream of 900 failed in the full benchmark run at 6bb91fd
(figure b): the watch that bounds the read after ``[DONE]`` was released only after httpx had
closed the response, which had already given the connection back to the pool; a watchdog
waking late then shut down the socket of the next request on it (the server saw a request
without its body). See "A connection given back while still watched" in ``README.md``.

Prints one JSON object: the versions, the streams run, and the failures by message.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time
from importlib import metadata

from _clients import lunar
from _server import BenchServer, model_name


async def _churn(base_url: str, streams: int, concurrency: int, chunks: int) -> dict[str, int]:
    client = lunar(base_url)
    model = model_name(chunks)
    failures: collections.Counter[str] = collections.Counter()
    slots = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with slots:
            try:
                await client.stream_async(model)
            except Exception as error:  # counted, not raised: the run goes on
                failures[f"{type(error).__name__}: {error}"[:200]] += 1

    await asyncio.gather(*[one() for _ in range(streams)])
    return dict(failures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=150)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    started = time.monotonic()
    with BenchServer((args.chunks,)) as server:
        failures = asyncio.run(_churn(server.base_url, args.streams, args.concurrency, args.chunks))
    result = {
        "versions": {name: metadata.version(name) for name in ("httpx", "httpcore", "anyio")},
        "streams": args.streams,
        "concurrency": args.concurrency,
        "chunks": args.chunks,
        "failed": sum(failures.values()),
        "failures": failures,
        "seconds": round(time.monotonic() - started, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as file:
            file.write(text + "\n")


if __name__ == "__main__":
    main()
