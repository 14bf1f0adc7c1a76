"""Very large events, endless lines and gzip bombs, read as a user reads them (issue 19).

    python benchmarks/big_events.py [--tree DIR ...] [--case NAME ...] [--endless-seconds S]
        [--async] [--max-event-bytes N]

Each case runs in a fresh interpreter (so its peak memory is its own): a server process on
127.0.0.1 sends exact bytes over TCP, and the client calls ``ChatLunar.stream()`` (or
``invoke()``; with ``--async``, ``astream()`` and ``ainvoke()``) through httpx, as a user does.
Printed per case: the wall time until the call returned or raised, the client's CPU time, the
growth of its peak resident memory, and what the call ended with.

Cases:
- ``event8`` / ``event32``: one valid delta whose content is 8 / 32 MiB (an image model's base64
  image behind a gateway), then a finish chunk and ``[DONE]``;
- ``garbage40``: a 40 MiB line without a line end, then the connection closes;
- ``endless``: a line that never ends (the server stops after ``--endless-seconds``, 30 by
  default, so that a client with no bound still returns);
- ``gz500``, ``gzinvoke``, ``gzblank``, ``gzdata``: about 100 KiB of gzip that expands to 100 MiB,
  as a 500 error body, as an ``invoke`` answer, and as an event stream of blank lines or of
  ``data: {}`` events.

``--max-event-bytes N`` sets ChatLunar's bound (default: its own) for a tree that has it.
``--tree DIR`` runs the package in DIR (e.g. ``git archive REV | tar -x -C DIR``) instead of the
one this script's checkout holds; give several to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

MIB = 1 << 20
CASES = ("event8", "event32", "garbage40", "endless", "gz500", "gzinvoke", "gzblank", "gzdata")
_CHUNK = (
    '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
    '"choices":[{"index":0,"delta":%s,"finish_reason":%s}]}'
)


def _gzip(text: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return packer.compress(text) + packer.flush()


def _head(status: bytes, content_type: bytes, *extra: bytes) -> bytes:
    lines = [b"HTTP/1.1 " + status, b"content-type: " + content_type, b"connection: close"]
    return b"\r\n".join([*lines, *extra]) + b"\r\n\r\n"


def _answer(case: str) -> bytes:
    """The whole answer of ``case`` (but ``endless``, which never ends)."""
    sse = b"text/event-stream"
    if case.startswith("event"):
        size = int(case[5:]) * MIB
        delta = json.dumps({"role": "assistant", "content": "A" * size})
        body = (
            b"data: " + (_CHUNK % (delta, "null")).encode() + b"\n\n"
            b"data: " + (_CHUNK % ("{}", '"stop"')).encode() + b"\n\n"
            b"data: [DONE]\n\n"
        )
        return _head(b"200 OK", sse) + body
    if case == "garbage40":
        return _head(b"200 OK", sse) + b"x" * (40 * MIB)
    gzipped = b"content-encoding: gzip"
    if case == "gz500":
        bomb = _gzip(b'{"error": {"message": "' + b" " * (100 * MIB) + b'"}}')
        return _head(b"500 Internal Server Error", b"application/json", gzipped) + bomb
    if case == "gzinvoke":
        bomb = _gzip(b'{"id": "c1", "choices": []' + b" " * (100 * MIB) + b"}")
        return _head(b"200 OK", b"application/json", gzipped) + bomb
    if case == "gzblank":
        return _head(b"200 OK", sse, gzipped) + _gzip(b"\n" * (100 * MIB))
    if case == "gzdata":
        return _head(b"200 OK", sse, gzipped) + _gzip(b"data: {}\n\n" * (10 * MIB))
    raise ValueError(case)


def _serve(case: str, endless_seconds: float, port_pipe: object) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    answer = _answer(case) if case != "endless" else b""
    port_pipe.send(listener.getsockname()[1])  # type: ignore[attr-defined]
    while True:
        connection, _ = listener.accept()
        request = b""
        while b"\r\n\r\n" not in request:
            request += connection.recv(65536)
        head, _, body = request.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(body) < length:  # read it all: a close with unread bytes would reset
            body += connection.recv(65536)
        try:
            if case != "endless":
                connection.sendall(answer)
            else:
                connection.sendall(_head(b"200 OK", b"text/event-stream"))
                block = b"x" * MIB
                stop = time.monotonic() + endless_seconds
                while time.monotonic() < stop:
                    connection.sendall(block)
        except OSError:
            pass  # the client left
        connection.close()


def _call(llm: Any, case: str, use_async: bool) -> str:
    """Call ``llm`` as the case asks; what it returned."""
    if case in ("gz500", "gzinvoke"):
        if use_async:
            asyncio.run(llm.ainvoke("hi"))
        else:
            llm.invoke("hi")
        return "returned"

    async def astream() -> int:
        return sum([len(chunk.content) async for chunk in llm.astream("hi")])

    size = asyncio.run(astream()) if use_async else sum(len(c.content) for c in llm.stream("hi"))
    return f"returned {size} characters"


def _child(case: str, endless_seconds: float, use_async: bool, bound: int | None) -> None:
    from langchain_lunar import ChatLunar

    receiver, sender = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.get_context("fork").Process(
        target=_serve, args=(case, endless_seconds, sender), daemon=True
    )
    server.start()
    port = receiver.recv()
    settings: dict[str, Any] = {} if bound is None else {"max_event_bytes": bound}
    url = f"http://127.0.0.1:{port}/v1"
    llm = ChatLunar(model="m", api_key="sk-bench", base_url=url, max_retries=0, **settings)
    before_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    start = time.perf_counter()
    try:
        outcome = _call(llm, case, use_async)
    except Exception as error:
        body = getattr(error, "body", None)
        kept = f", error.body {len(str(body))} chars" if body is not None else ""
        outcome = f"{type(error).__name__}: {str(error)[:150]}{kept}"
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    after_rss = usage.ru_maxrss
    print(
        json.dumps(
            {
                "case": case,
                "way": "async" if use_async else "sync",
                "wall_s": round(wall, 2),
                "cpu_s": round(usage.ru_utime + usage.ru_stime - cpu, 2),
                "peak_rss_growth_mib": round((after_rss - before_rss) / 1024, 1),
                "outcome": outcome,
            }
        )
    )
    server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", action="append", default=[])
    parser.add_argument("--case", action="append", choices=CASES, default=[])
    parser.add_argument("--endless-seconds", type=float, default=30.0)
    parser.add_argument("--async", dest="use_async", action="store_true")
    parser.add_argument("--max-event-bytes", type=int)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.endless_seconds, args.use_async, args.max_event_bytes)
        return
    here = str(Path(__file__).resolve().parent.parent)
    for tree in [os.path.abspath(t) for t in args.tree] or [here]:
        print(f"# {tree}", flush=True)
        for case in args.case or CASES:
            command = [sys.executable, __file__, "--child", case]
            command += ["--endless-seconds", str(args.endless_seconds)]
            command += ["--async"] if args.use_async else []
            if args.max_event_bytes is not None:
                command += ["--max-event-bytes", str(args.max_event_bytes)]
            env = {**os.environ, "PYTHONPATH": tree}
            subprocess.run(command, env=env, cwd=tree, check=True)


if __name__ == "__main__":
    main()
