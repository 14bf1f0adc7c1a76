"""Client CPU of ``ChatLunar.astream()`` on three transports: httpx as it comes, httpx with the
pool that reclaims what cancelled requests leave (``langchain_lunar._pool_reclaim``), and
httpx2 (Pydantic's fork, through ``httpx2.alias_httpx()``).

    python benchmarks/transport_speed.py [--rounds 5] [--chunks 20000] [--requests 300]

The server is ``_server.py`` (pre-rendered bodies, a process of its own). Each measurement runs
in a fresh worker process (``python transport_speed.py --worker VARIANT BASE_URL``), the
variants interleaved round by round. A worker warms up, then reports the CPU seconds
(``time.process_time()``) per chunk of one ``--chunks``-chunk stream and per request of
``--requests`` short streams of 5 chunks (where the reclaiming pool's per-request work would
show). Prints the median of the rounds per variant.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and sys.argv[1:3] == ["--worker", "httpx2"]:
    import httpx2

    httpx2.alias_httpx()  # before anything imports httpx

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import time
from pathlib import Path

from _server import BenchServer, model_name

VARIANTS = ("httpx", "httpx+reclaim", "httpx2")


async def measure(variant: str, base_url: str, chunks: int, requests: int) -> dict[str, float]:
    import httpx

    import langchain_lunar._pool_reclaim as reclaim
    from langchain_lunar import ChatLunar

    if variant == "httpx":
        reclaim.reclaim_orphans = lambda client: None
    long = ChatLunar(model=model_name(chunks), base_url=base_url, api_key="x", max_retries=0)
    short = ChatLunar(model=model_name(5), base_url=base_url, api_key="x", max_retries=0)
    for _ in range(3):
        async for _ in long.astream("hi"):
            pass
        async for _ in short.astream("hi"):
            pass
    pool = type(long._async_client()._transport._pool)  # type: ignore[attr-defined]
    gc.collect()
    cpu = time.process_time()
    async for _ in long.astream("hi"):
        pass
    per_chunk = (time.process_time() - cpu) / chunks
    gc.collect()
    cpu = time.process_time()
    for _ in range(requests):
        async for _ in short.astream("hi"):
            pass
    per_request = (time.process_time() - cpu) / requests
    return {
        "per_chunk_us": per_chunk * 1e6,
        "per_request_us": per_request * 1e6,
        "module": f"{httpx.__name__} {httpx.__version__}",
        "pool": f"{pool.__module__}.{pool.__qualname__}",
    }


def main() -> int:
    if sys.argv[1:2] == ["--worker"]:
        variant, base_url, chunks, requests = sys.argv[2:6]
        result = asyncio.run(measure(variant, base_url, int(chunks), int(requests)))
        print(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunks", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
    with BenchServer((args.chunks, 5)) as server:
        for _ in range(args.rounds):
            for variant in VARIANTS:
                out = subprocess.run(
                    [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        "--worker",
                        variant,
                        server.base_url,
                        str(args.chunks),
                        str(args.requests),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results[variant].append(json.loads(out.stdout.splitlines()[-1]))
    for variant, rounds in results.items():
        chunk = [r["per_chunk_us"] for r in rounds]
        request = [r["per_request_us"] for r in rounds]
        print(
            f"{variant:14} {rounds[0]['module']:14} per chunk {statistics.median(chunk):6.2f} µs "
            f"({min(chunk):.2f}-{max(chunk):.2f}); per short request "
            f"{statistics.median(request):7.1f} µs ({min(request):.1f}-{max(request):.1f}); "
            f"pool {rounds[0]['pool']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
