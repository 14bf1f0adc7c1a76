"""A measuring process for one client family: ``python _worker.py FAMILY BASE_URL``.

Each family runs in a process of its own, so no family's garbage, caches or imports change
another's timings, and the orchestrator (``run.py``) interleaves their rounds. The worker
reads one JSON command per line from stdin and answers with one JSON line on stdout. It keeps
one event loop for its whole life, as a real async application does, so connections opened
by the warm-up are reused by the measured rounds.

Client CPU is ``time.process_time()`` of this process around the measured call only; the
text is checked against the server's known tokens after the clock has stopped.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import sys
import time
import tracemalloc
import warnings
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any, TextIO, TypeVar

from _clients import FAMILIES, Client
from _server import expected_text, model_name

T = TypeVar("T")


@cache
def _expected(chunks: int) -> str:
    return expected_text(chunks)


def _failure(error: BaseException) -> dict[str, Any]:
    return {"error": f"{type(error).__name__}: {error}"[:500], "exact": False}


class Worker:
    """Runs the measurements the orchestrator asks for, with one client family."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.loop = asyncio.new_event_loop()

    def _timed(self, call: Callable[[], T]) -> tuple[T, float, float]:
        """``call()``, its result with the CPU and wall seconds it took."""
        gc.collect()  # every measurement starts from the same heap, not from earlier garbage
        wall, cpu = time.perf_counter(), time.process_time()
        result = call()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return result, cpu, wall

    def _atimed(self, call: Callable[[], Awaitable[T]]) -> tuple[T, float, float]:
        """The same for a coroutine; the clock runs inside the loop, around the await only."""

        async def measure() -> tuple[T, float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            result = await call()
            return result, time.process_time() - cpu, time.perf_counter() - wall

        gc.collect()
        return self.loop.run_until_complete(measure())

    def stream(self, mode: str, chunks: int, every_ms: int = 0) -> dict[str, Any]:
        """One stream of ``chunks`` chunks, sync or async: at once, or one every ``every_ms``."""
        model = model_name(chunks, every_ms=every_ms)
        if mode == "sync":
            text, cpu, wall = self._timed(lambda: self.client.stream_sync(model))
        else:
            text, cpu, wall = self._atimed(lambda: self.client.stream_async(model))
        return {"cpu_s": cpu, "wall_s": wall, "exact": text == _expected(chunks)}

    def events(self, mode: str, chunks: int) -> dict[str, Any]:
        """One ``stream_events(version="v3")`` of ``chunks`` chunks, sync or async, its text read
        from the ``.text`` deltas (LangChain families only)."""
        model = model_name(chunks)
        client: Any = self.client  # a LangChainClient: run.py asks no other family for events
        if mode == "sync":
            text, cpu, wall = self._timed(lambda: client.events_sync(model))
        else:
            text, cpu, wall = self._atimed(lambda: client.events_async(model))
        return {"cpu_s": cpu, "wall_s": wall, "exact": text == _expected(chunks)}

    def concurrent(self, streams: int, chunks: int) -> dict[str, Any]:
        """``streams`` concurrent ``astream`` calls of ``chunks`` chunks each."""
        model = model_name(chunks)

        async def together() -> list[str | BaseException]:
            calls = [self.client.stream_async(model) for _ in range(streams)]
            return await asyncio.gather(*calls, return_exceptions=True)

        results, cpu, wall = self._atimed(together)
        errors = [r for r in results if isinstance(r, BaseException)]
        exact = sum(1 for r in results if r == _expected(chunks))
        return {
            "cpu_s": cpu,
            "wall_s": wall,
            "errors": len(errors),
            "first_error": str(_failure(errors[0])["error"]) if errors else None,
            "exact_streams": exact,
            "exact": exact == streams,
        }

    def first_token(self, mode: str, chunks: int, pause_ms: int, repeats: int) -> dict[str, Any]:
        """Wall seconds from the call to the first non-empty content, ``repeats`` times."""
        model = model_name(chunks, pause_ms)
        latencies: list[float] = []
        exact = True
        for _ in range(repeats):
            gc.collect()
            if mode == "sync":
                latency, text = self._first_token_sync(model)
            else:
                latency, text = self.loop.run_until_complete(self._first_token_async(model))
            latencies.append(latency)
            exact = exact and text == _expected(chunks)
        return {"ttft_s": statistics.median(latencies), "all_s": latencies, "exact": exact}

    def _first_token_sync(self, model: str) -> tuple[float, str]:
        parts: list[str] = []
        start = time.perf_counter()
        latency = -1.0
        for text in self.client.texts_sync(model):
            if text and latency < 0:
                latency = time.perf_counter() - start
            parts.append(text)
        return latency, "".join(parts)

    async def _first_token_async(self, model: str) -> tuple[float, str]:
        parts: list[str] = []
        start = time.perf_counter()
        latency = -1.0
        async for text in self.client.texts_async(model):
            if text and latency < 0:
                latency = time.perf_counter() - start
            parts.append(text)
        return latency, "".join(parts)

    def aggregate(self, chunks: int) -> dict[str, Any]:
        """One answer of ``chunks`` chunks, assembled by the library."""
        model = model_name(chunks)
        text, cpu, wall = self._timed(lambda: self.client.aggregate(model))
        return {"cpu_s": cpu, "wall_s": wall, "exact": text == _expected(chunks)}

    def memory(self, chunks: int) -> dict[str, Any]:
        """Peak bytes allocated while assembling one answer (not timed: tracing is slow)."""
        model = model_name(chunks)
        gc.collect()
        tracemalloc.start()
        try:
            text = self.client.aggregate(model)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return {"peak_bytes": peak, "exact": text == _expected(chunks)}

    def warmup(self, streams: int, aggregate: bool = True, events: bool = False) -> dict[str, Any]:
        """Fill caches and connection pools (``streams`` connections) before anything is timed;
        ``aggregate=False`` leaves out ``aggregate`` (for a client that cannot, see run.py);
        ``events=True`` warms ``events`` too (its lazy imports: langchain-core's v3 stream)."""
        exact = all(
            [
                self.stream("sync", 200)["exact"],
                self.stream("async", 200)["exact"],
                self.concurrent(streams, 10)["exact"],
                self.first_token("sync", 20, 0, 2)["exact"],
                self.first_token("async", 20, 0, 2)["exact"],
                self.aggregate(200)["exact"] if aggregate else True,
                self.events("sync", 200)["exact"] if events else True,
                self.events("async", 200)["exact"] if events else True,
            ]
        )
        return {"exact": exact}

    def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        """Run one command; an exception becomes an ``error`` in the answer."""
        operation = getattr(self, command.pop("op"))
        try:
            result: dict[str, Any] = operation(**command)
        except Exception as error:
            return _failure(error)
        result.setdefault("error", None)
        return result


def main() -> None:
    family, base_url = sys.argv[1], sys.argv[2]
    # The protocol gets its own copy of stdout; anything a library prints goes to stderr.
    out: TextIO = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    # stream_events(version="v3") is beta in langchain-core and says so at every call; the
    # warning would fill stderr, so it is silenced here, in the benchmark's worker only.
    warnings.filterwarnings("ignore", message=r"The method `BaseChatModel\._a?chat_model_stream_v3")
    try:
        client = FAMILIES[family](base_url)
    except ImportError as error:
        out.write(json.dumps({"ready": False, "error": str(error)}) + "\n")
        return
    worker = Worker(client)
    out.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:  # EOF: the orchestrator is done (or gone)
        out.write(json.dumps(worker.handle(json.loads(line))) + "\n")


if __name__ == "__main__":
    main()
