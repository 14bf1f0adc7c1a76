"""The CI guard: instructions per streamed token of a user's whole path, against budgets.

    python benchmarks/guard.py                    # measure, compare, exit 1 when off budget
    python benchmarks/guard.py --report-only      # measure and print; never fails
    python benchmarks/guard.py --tree /tmp/old    # the package in another checkout
    python benchmarks/guard.py --events 5000      # a quicker look (the budgets are for 20,000)

Each figure is ``ChatLunar.stream()`` or ``.astream()`` over ``EVENTS`` text events, read through
httpx (a ``MockTransport`` handing out the body in 16 KiB pieces, so every run reads the same
bytes in the same pieces), with the garbage collector on and every chunk kept as langchain-core's
``stream()`` keeps them until the end, then merged, as ``stream()`` does; or
``stream_events(version="v3")`` / ``astream_events(version="v3")`` over the same body, its text
read through the stream's ``.text`` deltas (the whole v3 path: ChatLunar's protocol events, or
langchain-core's compat bridge over its chunks where the hooks are absent, plus core's
``ChatModelStream`` dispatch and replay buffer). It counts the
instructions of that call with valgrind's callgrind, which is repeatable where wall clock is not
on a shared VM, in a fresh interpreter with a fixed hash seed: the run of ``EVENTS`` events minus
the run of none, divided by ``EVENTS``. So each figure includes the collections that the kept
chunks cause, which is where a regression hid before (benchmarks/README.md).

A figure fails the guard when it is more than ``TOLERANCE`` above its budget, and also when it
is more than ``TOLERANCE`` below it: a budget left loose would let a later regression hide in
the slack. The budgets hold for one pinned environment (``guard-requirements.txt`` on the
Python named there); ``.ci/run`` builds it. Change a budget only together with a line in
benchmarks/README.md that says why (``tests/test_guard_budgets.py`` checks that the README
names every budget).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUDGETS = HERE / "budgets.json"
PINS = HERE / "guard-requirements.txt"
EVENTS = 20_000
TOLERANCE = 0.03

# Run in the measured interpreter: argv is (mode, events).
PROGRAM = r"""
import asyncio, gc, json, sys, warnings
import httpx
from langchain_lunar import ChatLunar

mode, events = sys.argv[1], int(sys.argv[2])
PIECE = 16 * 1024

def body(n):
    head = '{"id":"chatcmpl-guard","object":"chat.completion.chunk","created":1,"model":"m",'
    out = [head + '"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
           '"finish_reason":null}]}']
    out += [head + '"choices":[{"index":0,"delta":{"content":"t%d "},"finish_reason":null}]}' % i
            for i in range(n)]
    out.append(head + '"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}')
    out.append(head + '"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":%d,'
               '"total_tokens":%d}}' % (n, n + 9))
    out.append("[DONE]")
    data = "".join("data: " + e + "\n\n" for e in out).encode()
    return [data[i:i + PIECE] for i in range(0, len(data), PIECE)]

bodies = {n: body(n) for n in (200, events)}

def handler(request):
    n = int(json.loads(request.content)["model"].removeprefix("guard-"))
    return httpx.Response(200, headers={"content-type": "text/event-stream"},
                          stream=Pieces(bodies[n]))

class Pieces(httpx.SyncByteStream, httpx.AsyncByteStream):
    def __init__(self, pieces):
        self.pieces = pieces
    def __iter__(self):
        yield from self.pieces
    async def __aiter__(self):
        for piece in self.pieces:
            yield piece

transport = httpx.MockTransport(handler)
llm = ChatLunar(model="m", base_url="http://guard.invalid/v1", api_key="sk-guard", max_retries=0,
                http_client=httpx.Client(transport=transport),
                http_async_client=httpx.AsyncClient(transport=transport))

def run_sync(n):
    return "".join([chunk.content for chunk in llm.stream("Count.", model=f"guard-{n}")])

async def run_async(n):
    return "".join([chunk.content async for chunk in llm.astream("Count.", model=f"guard-{n}")])

def events_sync(n):
    return "".join(llm.stream_events("Count.", version="v3", model=f"guard-{n}").text)

async def events_async(n):
    stream = await llm.astream_events("Count.", version="v3", model=f"guard-{n}")
    return "".join([delta async for delta in stream.text])

# v3 is beta in langchain-core, which warns at every call (once per call: not per event).
warnings.filterwarnings("ignore", message=r"The method `BaseChatModel\._a?chat_model_stream_v3")
CALLS = {"stream": run_sync, "astream": lambda n: asyncio.run(run_async(n)),
         "stream_events": events_sync, "astream_events": lambda n: asyncio.run(events_async(n))}

def call(n):
    return CALLS[mode](n)

assert call(200) == "".join("t%d " % i for i in range(200))  # warm: caches, lazy imports
gc.collect()
if events:
    assert call(events) == "".join("t%d " % i for i in range(events))
"""


def _environment(tree: str | None) -> tuple[dict[str, str], str]:
    """The environment and working directory of a measured interpreter."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONHASHSEED"] = "0"
    if tree:
        env["PYTHONPATH"] = tree
    # `python -c` puts its working directory first on sys.path: run in the tree measured, or
    # where no checkout is, so that the package comes from the tree or the installation.
    return env, tree or tempfile.gettempdir()


def measured_package(python: str, tree: str | None) -> str:
    """Where the package that the measured interpreter imports lives."""
    env, cwd = _environment(tree)
    where = subprocess.run(
        [python, "-c", WHERE], env=env, cwd=cwd, capture_output=True, text=True, check=True
    )
    return str(Path(where.stdout.strip()).parent)


def measure(python: str, mode: str, events: int, tree: str | None) -> int:
    """The instructions callgrind counts for ``PROGRAM`` in a fresh ``python``."""
    env, cwd = _environment(tree)
    argv = [python, "-c", PROGRAM, mode, str(events)]
    subprocess.run(argv, env=env, cwd=cwd, check=True)  # writes the bytecode caches first
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    found = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode or found is None:
        raise SystemExit(f"callgrind failed ({run.returncode}):\n{run.stderr[-3000:]}")
    return int(found.group(1))


# Run in the measured interpreter: prints its Python version and the installed distributions.
INVENTORY = r"""
import json, platform
from importlib import metadata
names = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in metadata.distributions()}
print(json.dumps({"python": platform.python_version(), "packages": names}))
"""
WHERE = "import langchain_lunar; print(langchain_lunar.__file__)"


def pinned_differences(python: str) -> list[str]:
    """How the environment of ``python`` differs from ``guard-requirements.txt``: [] if not."""
    inventory = json.loads(
        subprocess.run([python, "-c", INVENTORY], capture_output=True, text=True, check=True).stdout
    )
    wanted: dict[str, str] = {}
    for line in PINS.read_text().splitlines():
        line = line.removeprefix("# ").strip()
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            wanted[name.lower().replace("_", "-")] = version
    found = {"python": inventory["python"], **inventory["packages"]}
    found.pop("langchain-lunar", None)  # the package measured, from the checkout
    found.pop("pip", None)
    found.pop("setuptools", None)
    names = sorted(set(wanted) | set(found))
    return [
        f"{name}: {found.get(name, 'missing')} (pinned: {wanted.get(name, 'not at all')})"
        for name in names
        if found.get(name) != wanted.get(name)
    ]


def per_event(args: argparse.Namespace, mode: str) -> float:
    """Instructions per text event of ``mode`` (``stream``, ``astream``, ``stream_events`` or
    ``astream_events``)."""
    full = measure(args.python, mode, args.events, args.tree)
    return (full - measure(args.python, mode, 0, args.tree)) / args.events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--tree", help="measure the package in this checkout instead")
    parser.add_argument("--report-only", action="store_true", help="print; never fail")
    parser.add_argument("--events", type=int, default=EVENTS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--require-pinned",
        action="store_true",
        help="exit 2 unless --python runs the pinned environment (CI)",
    )
    args = parser.parse_args(argv)
    # Absolute, since the measured interpreters run elsewhere; a venv's python is a link that
    # must not be resolved, or the venv would be left.
    args.python = os.path.abspath(args.python)
    if args.tree:
        args.tree = os.path.abspath(args.tree)
    print(f"Measuring {measured_package(args.python, args.tree)} with {args.python}", flush=True)
    differences = pinned_differences(args.python)
    if differences:
        print("Not the pinned environment (benchmarks/guard-requirements.txt):")
        print("\n".join(f"  {difference}" for difference in differences))
        if args.require_pinned:
            return 2
        print("The budgets hold for that environment only: these figures are for information.")
        args.report_only = True
    if args.events != EVENTS:
        print(f"{args.events:,} events instead of {EVENTS:,}: for information only.")
        args.report_only = True
    budgets: dict[str, int] = json.loads(BUDGETS.read_text())["instructions_per_event"]
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:  # counts ignore the load
        figures = dict(
            zip(budgets, pool.map(lambda mode: per_event(args, mode), budgets), strict=True)
        )
    failed = []
    for mode, budget in budgets.items():
        figure = figures[mode]
        change = figure / budget - 1
        verdict = "ok" if abs(change) <= TOLERANCE else ("OVER" if change > 0 else "UNDER")
        print(
            f"{mode:14s} {figure:10,.0f} instructions per event; budget {budget:,} "
            f"({change:+.1%}, tolerance ±{TOLERANCE:.0%}): {verdict}",
            flush=True,
        )
        if verdict != "ok":
            failed.append(mode)
    if failed and not args.report_only:
        print(
            "The whole-path cost moved beyond its budget. If the change is meant, set the new "
            "figure in benchmarks/budgets.json with a line in benchmarks/README.md saying why."
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
