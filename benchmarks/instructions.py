"""Instruction counts (valgrind's callgrind), repeatable where wall clock is not on a shared VM.

    python benchmarks/instructions.py import [--python PY] [--tree DIR ...]
    python benchmarks/instructions.py events [--python PY] [--tree DIR ...]

``import``: the instructions that ``from langchain_lunar import ChatLunar`` adds over ``from
langchain_core.language_models import BaseChatModel``, in fresh interpreters with bytecode
cached. Run it with the ``--python`` of a virtualenv that holds only the runtime dependencies to
see what users pay (where rich, click and pygments are installed, httpx imports its CLI too).

``events``: the instructions per streamed text event of ``StreamAssembler`` (SSE decoding, JSON,
checks, the fast chunk), the chunks kept as ``stream()`` keeps them: a run of 10,000 events minus
an empty run. ``ChatLunar`` is imported first, so the collector scans a user's heap.

``--tree DIR`` measures the package in DIR (a checkout, e.g. ``git worktree add /tmp/old REV``)
instead of the installed one; give several to compare commits. Needs ``valgrind``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

BASELINE = "from langchain_core.language_models import BaseChatModel"
IMPORT = BASELINE + "; from langchain_lunar import ChatLunar"
EVENTS = """
import json, sys
import langchain_lunar.chat_models
from langchain_lunar._streaming import StreamAssembler
n = int(sys.argv[1])
event = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
         "model": "gpt-4o-mini", "system_fingerprint": "fp_1",
         "choices": [{"index": 0, "delta": {"content": "{}"}, "logprobs": None,
                      "finish_reason": None}]}
body = "".join("data: " + json.dumps(event).replace("{}", f"t{i} ") + "\\n\\n" for i in range(n))
kept = list(StreamAssembler("gpt-4o-mini").feed(body.encode()))
assert len(kept) == n
"""
EVENT_COUNT = 10_000


def instructions(python: str, code: str, tree: str | None, *args: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONHASHSEED"] = "0"
    if tree:
        env["PYTHONPATH"] = tree
    # `python -c` puts its working directory first on sys.path: run in the tree measured (or
    # outside any checkout), else a checkout in the working directory would be measured instead.
    cwd = tree or tempfile.gettempdir()
    subprocess.run([python, "-c", code, *args], env=env, cwd=cwd, check=True)  # caches bytecode
    valgrind = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    run = subprocess.run(
        [*valgrind, python, "-c", code, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", run.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{run.stderr}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["import", "events"])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--tree", action="append", default=[])
    args = parser.parse_args()
    for tree in [str(os.path.abspath(t)) for t in args.tree] or [None]:
        label = tree or "installed"
        if args.what == "import":
            added = instructions(args.python, IMPORT, tree) - instructions(
                args.python, BASELINE, tree
            )
            print(f"{label}: import adds {added / 1e6:.1f} M instructions over BaseChatModel")
        else:
            full = instructions(args.python, EVENTS, tree, str(EVENT_COUNT))
            empty = instructions(args.python, EVENTS, tree, "0")
            print(f"{label}: {(full - empty) / EVENT_COUNT:,.0f} instructions per event")


if __name__ == "__main__":
    main()
