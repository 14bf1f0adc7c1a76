"""Figure g: a fleet during a model's cooldown, with and without a shared cooldown store.

``python benchmarks/fleet.py [--workers 4] [--calls 20] [--json PATH]``

The local Lunar server makes ``model-a`` answer every request with 429 and ``Retry-After: 60``
(``server.cool``), as a provider's rate limit does. One call has already met it. Then
``--workers`` worker processes (spawned, as gunicorn or Celery workers are) each make
``--calls`` streaming calls of ``model-a`` with ``fallbacks=["model-b"]`` and
``max_retry_wait=5``, one after another. For each kind of cooldown store the figure reports the
requests the cooling model received from the fleet and the median time to the first token:

- ``none`` (``cooldowns=None``): every call asks the cooling model first and is refused;
- ``per process`` (the default): each worker is refused once, then skips the model;
- ``Redis``: the store is shared, so no worker asks the cooling model at all.

It needs Debian's ``redis-server`` and the ``redis`` package (``pip install -e ".[redis]"``). On
loopback a refused request costs about a millisecond; across a real network it costs a round
trip to the provider, so the time column understates what a fleet saves.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from typing import Any

COOLING, FALLBACK = "model-a", "model-b"
STORES = ("none", "per process", "Redis")


def _worker(base_url: str, redis_url: str, store: str, calls: int, start: Any, out: Any) -> None:
    from langchain_lunar import ChatLunar, RedisCooldowns

    cooldowns: Any = {"none": None, "Redis": RedisCooldowns(url=redis_url)}.get(store, "default")
    fields: dict[str, Any] = {} if cooldowns == "default" else {"cooldowns": cooldowns}
    llm = ChatLunar(
        model=COOLING,
        fallbacks=[FALLBACK],
        base_url=base_url,
        api_key="fleet-key",
        max_retry_wait=5,
        **fields,
    )
    start.wait()
    first_tokens = []
    for _ in range(calls):
        began = time.perf_counter()
        for chunk in llm.stream("hi"):
            if chunk.content:
                first_tokens.append(time.perf_counter() - began)
                break
    out.put(first_tokens)


def measure(store: str, workers: int, calls: int) -> dict[str, Any]:
    """One fleet run with ``store``; the cooling model's requests and the TTFTs."""
    from langchain_lunar import ChatLunar, RedisCooldowns
    from langchain_lunar.testing import LocalLunarServer, RedisServer

    with RedisServer() as redis, LocalLunarServer(reply="ok, from the fallback") as server:
        server.cool(COOLING, 60)
        # The call that met the cooldown first, before the fleet (in any store).
        ChatLunar(
            model=COOLING,
            fallbacks=[FALLBACK],
            base_url=server.base_url,
            api_key="fleet-key",
            max_retry_wait=5,
            cooldowns=RedisCooldowns(url=redis.url),
        ).invoke("hi")
        before = _requests_to(server, COOLING)
        context = multiprocessing.get_context("spawn")
        start, out = context.Event(), context.Queue()
        processes = [
            context.Process(
                target=_worker, args=(server.base_url, redis.url, store, calls, start, out)
            )
            for _ in range(workers)
        ]
        for process in processes:
            process.start()
        time.sleep(0.5)  # let the spawned interpreters import before the clock matters
        start.set()
        first_tokens = [t for _ in processes for t in out.get(timeout=120)]
        for process in processes:
            process.join(timeout=30)
        return {
            "store": store,
            "requests_to_cooling_model": _requests_to(server, COOLING) - before,
            "calls": workers * calls,
            "median_ttft_ms": round(statistics.median(first_tokens) * 1000, 2),
        }


def _requests_to(server: Any, model: str) -> int:
    return sum(1 for request in server.requests if request.model == model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--calls", type=int, default=20, help="calls per worker")
    parser.add_argument("--json", metavar="PATH", help="write the rows here")
    args = parser.parse_args(argv)
    rows = [measure(store, args.workers, args.calls) for store in STORES]
    print(f"{'cooldown store':<14} {'requests to the cooling model':>30} {'median TTFT':>12}")
    for row in rows:
        share = f"{row['requests_to_cooling_model']} of {row['calls']} calls"
        print(f"{row['store']:<14} {share:>30} {row['median_ttft_ms']:>9.2f} ms")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(rows, file, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
