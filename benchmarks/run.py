"""Client CPU benchmark of ChatLunar against ChatOpenAI, lunar-sdk's ChatLunar and a raw httpx
floor.

    python benchmarks/run.py [--size tiny|full] [--rounds N] [--figures a,h] [--plot PNG]
                             [--json PATH]

A server process streams pre-rendered OpenAI-format SSE bodies (``_server.py``); each client
family measures itself in a worker process of its own (``_worker.py``), and this script asks
the workers for one measurement at a time, interleaving the families round by round so that
drift of the machine falls on all of them alike. It prints one table per figure and a summary
of the targets, writes every number with ``--json``, and exits 1 if any client returned a
wrong text or an error (slow numbers never fail it: timing is reported, not tested).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from _clients import LABELS
from _report import (
    Column,
    Row,
    Target,
    add_ratios,
    format_summary,
    format_table,
    loglog_slope,
    ratio,
    summarize,
)
from _server import BenchServer

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODES = ("sync", "async")
ALL_FAMILIES = ("floor", "lunar", "lunar_resilient", "openai", "vendor")
# Every figure by its letter in the report and its key in the JSON, in the order they run
# (g. is benchmarks/fleet.py's, a script of its own).
FIGURES = {
    "a": "per_chunk",
    "b": "concurrent",
    "c": "ttft",
    "d": "aggregation",
    "f": "paced",
    "h": "events",
    "e": "import",
}
# The families that figure h. measures: those with a LangChain `stream_events(version="v3")`
# that the target names.
EVENTS_FAMILIES = ("lunar", "lunar_resilient", "openai")
Case = tuple[str, dict[str, Any]]  # a client family and the command its worker runs


@dataclass(frozen=True)
class Size:
    """How big each figure's workload is."""

    per_chunk: int  # chunks in the one stream of figure a
    concurrent_streams: int
    concurrent_chunks: int
    ttft_chunks: int
    ttft_pause_ms: int  # the server's pause after the first chunk, as a model's next token
    ttft_repeats: int  # requests per round; the round's sample is their median
    aggregation: tuple[int, ...]
    import_samples: int
    paced_chunks: int  # chunks in the one stream of figure f
    paced_every_ms: int  # the server's interval between them


SIZES = {
    "tiny": Size(500, 5, 100, 50, 5, 3, (200, 400, 800), 1, 20, 1),
    "full": Size(20_000, 100, 1_000, 100, 10, 20, (10_000, 20_000, 40_000, 80_000), 7, 1_000, 1),
}


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds the report alone."""
    print(message, file=sys.stderr, flush=True)


def _client_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in list(env):
        # A proxy would put another process between client and server; tracing would add
        # LangSmith's work to the client's CPU. Neither is what is measured.
        upper = name.upper()
        if upper.endswith("_PROXY") or upper.startswith(("LANGSMITH_", "LANGCHAIN_")):
            del env[name]
    # An installed package has its bytecode compiled (pip does it); without this, a checkout
    # run with PYTHONDONTWRITEBYTECODE set would compile every changed module at each import.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _pin(pid: int, cpu: int | None) -> None:
    # On a 2-core machine the server and the measured client each get a core of their own,
    # so neither preempts the other and the client's caches stay warm.
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {cpu})


class WorkerProcess:
    """A ``_worker.py`` process for one client family, spoken to in JSON lines."""

    def __init__(self, family: str, base_url: str, cpu: int | None) -> None:
        self.family = family
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "_worker.py"), family, base_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=_client_env(),
        )
        _pin(self.process.pid, cpu)

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.family} worker exited (see its stderr above)")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ready(self) -> str | None:
        """Wait until the client is built; the reason it could not be, or None."""
        answer = self._read()
        return None if answer["ready"] else str(answer["error"])

    def ask(self, **command: Any) -> dict[str, Any]:
        """Run one measurement and return its answer."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()  # the worker exits on EOF
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def start_workers(
    families: Sequence[str], base_url: str, cpu: int | None
) -> Iterator[tuple[dict[str, WorkerProcess], dict[str, str]]]:
    """Start one worker per family (they import in parallel); yield the ready ones and the
    reasons the others were skipped."""
    started = [WorkerProcess(family, base_url, cpu) for family in families]
    ready: dict[str, WorkerProcess] = {}
    skipped: dict[str, str] = {}
    try:
        for worker in started:
            reason = worker.ready()
            if reason is None:
                ready[worker.family] = worker
            else:
                skipped[worker.family] = reason
        yield ready, skipped
    finally:
        for worker in started:
            worker.close()


class Bench:
    """Runs interleaved rounds on the workers and keeps track of wrong texts and errors."""

    def __init__(self, workers: dict[str, WorkerProcess], rounds: int) -> None:
        self.workers = workers
        self.rounds = rounds
        self.problems: list[str] = []

    def interleave(self, figure: str, cases: list[Case]) -> list[list[dict[str, Any]]]:
        """Every case once per round, in an order that rotates by one each round; returns each
        case's answers over the rounds."""
        answers: list[list[dict[str, Any]]] = [[] for _ in cases]
        for round_ in range(self.rounds):
            log(f"  {figure}: round {round_ + 1}/{self.rounds}")
            shift = round_ % len(cases)
            for index in [*range(shift, len(cases)), *range(shift)]:
                family, command = cases[index]
                answers[index].append(self.ask(figure, family, command))
        return answers

    def ask(self, figure: str, family: str, command: dict[str, Any]) -> dict[str, Any]:
        """One measurement, checked: its error or wrong text is recorded as a problem."""
        answer = self.workers[family].ask(**command)
        where = f"{figure}, {LABELS[family]} {json.dumps(command)}"
        if answer["error"]:
            self.problems.append(f"{where}: {answer['error']}")
        elif answer.get("errors"):
            self.problems.append(f"{where}: {answer['errors']} failed ({answer['first_error']})")
        elif not answer["exact"]:
            self.problems.append(f"{where}: the text was not the one the server sent")
        return answer


def _row(family: str, mode: str, samples: list[float], answers: list[dict[str, Any]]) -> Row:
    return {
        "label": f"{LABELS[family]} {mode}".strip(),
        "client": family,
        "mode": mode,
        **summarize(samples),
        "exact": all(a["exact"] for a in answers),
        "errors": sum(a.get("errors", 0) + (1 if a["error"] else 0) for a in answers),
        # Wall seconds of each round's measured call, for the record (CPU is the figure).
        "wall_s": [a["wall_s"] for a in answers if "wall_s" in a],
    }


def _ok(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in answers if not a["error"]]


def figure_per_chunk(bench: Bench, chunks: int, every_ms: int = 0) -> dict[str, Any]:
    """a. Client CPU per chunk of one long stream, sync and async, its events arriving as fast
    as the client reads them; or f. (``every_ms``) one event every ``every_ms`` milliseconds."""
    figure = "paced" if every_ms else "per-chunk"
    cases: list[Case] = [
        (family, {"op": "stream", "mode": mode, "chunks": chunks, "every_ms": every_ms})
        for mode in MODES
        for family in bench.workers
    ]
    rows = []
    for (family, command), answers in zip(cases, bench.interleave(figure, cases), strict=True):
        samples = [a["cpu_s"] / chunks * 1e6 for a in _ok(answers)]
        rows.append(_row(family, command["mode"], samples, answers))
    add_ratios(rows)
    for row in rows:
        floor = _find(rows, "floor", row["mode"])
        row["added_us"] = (
            row["median"] - floor["median"]
            if floor and None not in (row["median"], floor["median"])
            else None
        )
    return {"unit": "us/chunk", "chunks": chunks, "every_ms": every_ms, "rows": rows}


def figure_concurrent(bench: Bench, size: Size) -> dict[str, Any]:
    """b. Client CPU per chunk of many concurrent ``astream`` calls."""
    streams, chunks = size.concurrent_streams, size.concurrent_chunks
    cases: list[Case] = [
        (family, {"op": "concurrent", "streams": streams, "chunks": chunks})
        for family in bench.workers
    ]
    rows = []
    for (family, _), answers in zip(cases, bench.interleave("concurrent", cases), strict=True):
        samples = [a["cpu_s"] / (streams * chunks) * 1e6 for a in _ok(answers)]
        row = _row(family, "async", samples, answers)
        row["exact_streams"] = sum(a.get("exact_streams", 0) for a in answers)
        row["streams"] = streams * len(answers)
        rows.append(row)
    add_ratios(rows)
    return {"unit": "us/chunk", "streams": streams, "chunks": chunks, "rows": rows}


def figure_ttft(bench: Bench, size: Size) -> dict[str, Any]:
    """c. Wall time to the first token, and what each client adds over the floor."""
    command = {
        "op": "first_token",
        "chunks": size.ttft_chunks,
        "pause_ms": size.ttft_pause_ms,
        "repeats": size.ttft_repeats,
    }
    cases: list[Case] = [
        (family, {**command, "mode": mode}) for mode in MODES for family in bench.workers
    ]
    answers_of = {
        (family, case["mode"]): answers
        for (family, case), answers in zip(cases, bench.interleave("ttft", cases), strict=True)
    }
    rows = []
    for (family, mode), answers in answers_of.items():
        row = _row(family, mode, [a["ttft_s"] * 1e3 for a in _ok(answers)], answers)
        # Paired with the floor's answer of the same round, so drift between rounds cancels.
        floor = answers_of.get(("floor", mode), [])
        added = [
            (a["ttft_s"] - f["ttft_s"]) * 1e3
            for a, f in zip(answers, floor, strict=False)
            if not a["error"] and not f["error"]
        ]
        row["added_ms"] = statistics.median(added) if added else None
        row["added_samples_ms"] = added
        row["requests_ms"] = [[t * 1e3 for t in a["all_s"]] for a in _ok(answers)]
        rows.append(row)
    add_ratios(rows)
    return {"unit": "ms", **command, "rows": rows}


def figure_aggregation(bench: Bench, size: Size) -> dict[str, Any]:
    """d. CPU and peak memory of ``invoke(..., stream=True)`` as the answer grows."""
    families: list[str] = [f for f in ("floor", "lunar", "openai") if f in bench.workers]
    left_out: dict[str, str] = {}
    if "vendor" in bench.workers:
        # lunar-sdk 0.2.0's invoke(..., stream=True) raises TypeError (it passes `stream` to
        # create() twice; _clients.VendorClient): tried once, untimed, and the family is in
        # the figure only if it works, else left out with its error (not counted a problem).
        answer = bench.workers["vendor"].ask(op="aggregate", chunks=size.aggregation[0])
        if answer["error"]:
            left_out["vendor"] = f"invoke(..., stream=True) failed: {answer['error']}"
        else:
            families.append("vendor")
    cases: list[Case] = [
        (family, {"op": "aggregate", "chunks": chunks})
        for chunks in size.aggregation
        for family in families
    ]
    rows = []
    for (family, command), answers in zip(
        cases, bench.interleave("aggregation", cases), strict=True
    ):
        chunks = command["chunks"]
        row = _row(family, "", [a["cpu_s"] for a in _ok(answers)], answers)
        row.update(label=f"{LABELS[family]} @ {chunks:,}", mode=f"{chunks}", size=chunks)
        rows.append(row)
    log("  aggregation: peak memory (tracemalloc, once per client and size)")
    for row in rows:
        answer = bench.ask(
            "aggregation memory", row["client"], {"op": "memory", "chunks": row["size"]}
        )
        row["peak_bytes"] = answer.get("peak_bytes")
        row["peak_mb"] = answer["peak_bytes"] / 1e6 if answer.get("peak_bytes") else None
        row["exact"] = row["exact"] and answer["exact"]
        row["errors"] += 1 if answer["error"] else 0
    add_ratios(rows)
    slopes = {
        family: loglog_slope(size.aggregation, [r["median"] for r in rows if r["client"] == family])
        for family in families
    }
    largest = {r["client"]: r for r in rows if r["size"] == size.aggregation[-1]}
    lunar_peak = largest.get("lunar", {}).get("peak_bytes")
    return {
        "unit": "s",
        "sizes": list(size.aggregation),
        "rows": rows,
        "slopes": slopes,
        "left_out": left_out,
        "lunar_vs_openai_largest": largest["lunar"]["vs_openai"] if "lunar" in largest else None,
        "memory_lunar_vs_openai_largest": ratio(
            lunar_peak, largest.get("openai", {}).get("peak_bytes")
        ),
        "memory_lunar_vs_floor_largest": ratio(
            lunar_peak, largest.get("floor", {}).get("peak_bytes")
        ),
    }


def figure_events(bench: Bench, chunks: int, per_chunk: dict[str, Any] | None) -> dict[str, Any]:
    """h. Client CPU per chunk of ``stream_events(version="v3")``, sync and async, over one
    long stream as in a., its text read as a UI reads it (the ``.text`` deltas); with each
    row's ratio to the same client's ``stream()``/``astream()`` in a. when a. ran."""
    families = [f for f in EVENTS_FAMILIES if f in bench.workers]
    left_out = {
        family: reason
        for family, reason in (
            ("floor", "raw httpx has no stream_events"),
            (
                "vendor",
                "not in issue 21's target (it would run through langchain-core's bridge over "
                "its _stream, as any chat model without the hooks does)",
            ),
        )
        if family in bench.workers
    }
    cases: list[Case] = [
        (family, {"op": "events", "mode": mode, "chunks": chunks})
        for mode in MODES
        for family in families
    ]
    rows = []
    answers_of = bench.interleave("events", cases) if cases else []
    for (family, command), answers in zip(cases, answers_of, strict=True):
        samples = [a["cpu_s"] / chunks * 1e6 for a in _ok(answers)]
        rows.append(_row(family, command["mode"], samples, answers))
    add_ratios(rows)
    for row in rows:
        plain = _find(per_chunk["rows"], row["client"], row["mode"]) if per_chunk else None
        row["vs_stream"] = ratio(row["median"], _get(plain, "median"))
    return {"unit": "us/chunk", "chunks": chunks, "rows": rows, "left_out": left_out}


IMPORTS = {
    # The baseline of `import langchain_lunar`'s target. Since langchain-core 1.x this package
    # imports its names lazily, so it does not load BaseChatModel, which any chat model needs:
    # the next row, the baseline of ChatLunar's target, shows what that costs.
    "core": ("langchain_core.language_models", "import langchain_core.language_models"),
    "core_chat": ("BaseChatModel", "from langchain_core.language_models import BaseChatModel"),
    # `import langchain_lunar` (which imports every public name).
    "lunar_package": ("langchain_lunar", "import langchain_lunar"),
    "lunar": ("ChatLunar", "from langchain_lunar import ChatLunar"),
    "openai": ("ChatOpenAI", "from langchain_openai import ChatOpenAI"),
}


def _import_seconds(statement: str) -> float:
    # Timed inside the fresh interpreter: its start-up is the same for every import, so only
    # the import itself is measured.
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_client_env()
    )
    return float(result.stdout)


def figure_imports(samples: int, with_openai: bool) -> dict[str, Any]:
    """e. Cold import time, each in a fresh interpreter, interleaved."""
    keys = [k for k in IMPORTS if k != "openai" or with_openai]
    for key in keys:  # once unmeasured, so that no sample pays for writing .pyc files
        _import_seconds(IMPORTS[key][1])
    times: dict[str, list[float]] = {key: [] for key in keys}
    for sample in range(samples):
        log(f"  imports: sample {sample + 1}/{samples}")
        for key in keys:
            times[key].append(_import_seconds(IMPORTS[key][1]) * 1e3)
    rows = []
    for key in keys:
        row: Row = {"label": IMPORTS[key][0], "client": key, "mode": "import"}
        row.update(summarize(times[key]), exact=True, errors=0, statement=IMPORTS[key][1])
        # Paired with the baselines' samples of the same round, so drift cancels.
        for baseline, name in (("core", "added_ms"), ("core_chat", "added_over_chat_ms")):
            added = [t - b for t, b in zip(times[key], times[baseline], strict=True)]
            row[name] = statistics.median(added)
        rows.append(row)
    add_ratios(rows)
    lunar = next(r for r in rows if r["client"] == "lunar")
    return {
        "unit": "ms",
        "rows": rows,
        "lunar_over_core_ms": lunar["added_ms"],
        "lunar_over_base_chat_model_ms": lunar["added_over_chat_ms"],
    }


def _find(rows: list[Row], client: str, mode: str | None = None) -> Row | None:
    return next(
        (r for r in rows if r["client"] == client and (mode is None or r["mode"] == mode)), None
    )


def _get(row: Row | None, key: str) -> Any:
    return None if row is None else row.get(key)


def targets(figures: dict[str, Any]) -> list[Target]:
    """The goals of the optimization, each MET, NOT MET or SKIPPED; those of the figures
    that ran."""
    found: list[Target] = []
    # The figure is a.; f. checks the two ratios when tokens arrive one by one (its
    # limits are the earlier goals of a., which the new ones of a. did not replace).
    for figure, how, vs_openai in (("per_chunk", "", 0.15), ("paced", ", paced", 0.25)):
        for mode in MODES if figure in figures else ():
            lunar = _find(figures[figure]["rows"], "lunar", mode)
            found.append(
                Target.check(
                    f"per-chunk CPU {mode}{how}, ChatLunar/ChatOpenAI",
                    _get(lunar, "vs_openai"),
                    vs_openai,
                    "x",
                )
            )
            found.append(
                Target.check(
                    f"per-chunk CPU {mode}{how}, ChatLunar/floor", _get(lunar, "vs_floor"), 3.0, "x"
                )
            )
    if "concurrent" in figures:
        concurrent = _find(figures["concurrent"]["rows"], "lunar")
        found.append(
            Target.check(
                "concurrent astream CPU, ChatLunar/ChatOpenAI",
                _get(concurrent, "vs_openai"),
                0.15,
                "x",
            )
        )
        found.append(
            Target.check(
                "concurrent astream CPU, ChatLunar/lunar-sdk ChatLunar",
                _get(concurrent, "vs_vendor"),
                0.5,
                "x",
            )
        )
    for mode in MODES if "ttft" in figures else ():
        ttft = _find(figures["ttft"]["rows"], "lunar", mode)
        found.append(
            Target.check(f"TTFT added over floor, {mode}", _get(ttft, "added_ms"), 0.25, "ms")
        )
    if "aggregation" in figures:
        aggregation = figures["aggregation"]
        largest = f"{aggregation['sizes'][-1]:,} chunks"
        found.append(
            Target.check(
                "aggregation log-log slope, ChatLunar", aggregation["slopes"].get("lunar"), 1.1, ""
            )
        )
        found.append(
            Target.check(
                f"aggregation CPU at {largest}, ChatLunar/ChatOpenAI",
                aggregation["lunar_vs_openai_largest"],
                0.2,
                "x",
            )
        )
        found.append(
            Target.check(
                f"aggregation peak memory at {largest}, ChatLunar/floor",
                aggregation["memory_lunar_vs_floor_largest"],
                1.25,
                "x",
            )
        )
    if "import" in figures:
        found.append(
            Target.check(
                "cold import, ChatLunar over BaseChatModel",
                figures["import"]["lunar_over_base_chat_model_ms"],
                40,
                "ms",
            )
        )
    # Issue 21: the v3 protocol stream, against ChatOpenAI's own.
    for mode in MODES if "events" in figures else ():
        events = _find(figures["events"]["rows"], "lunar", mode)
        found.append(
            Target.check(
                f'stream_events(version="v3") CPU per chunk {mode}, ChatLunar/ChatOpenAI',
                _get(events, "vs_openai"),
                0.10,
                "x",
            )
        )
    per_chunk = figures["per_chunk"]["rows"] if "per_chunk" in figures else []
    for mode in MODES if per_chunk else ():
        plain = _find(per_chunk, "lunar", mode)
        resilient = _find(per_chunk, "lunar_resilient", mode)
        found.append(
            Target.check(
                f"per-chunk CPU {mode}, resilient/plain ChatLunar (within 10%)",
                ratio(_get(resilient, "median"), _get(plain, "median")),
                1.1,
                "x",
            )
        )
    return found


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def metadata_of_run(
    args: argparse.Namespace, started: str, clients: list[str], skipped: dict[str, str]
) -> dict[str, Any]:
    """Where and on what the numbers were taken: they are a snapshot of one commit."""
    dirty = _git("status", "--porcelain", "--", "langchain_lunar")
    return {
        "commit": _git("rev-parse", "HEAD"),
        "client_code_uncommitted_changes": bool(dirty) if dirty != "unknown" else None,
        "started_utc": started,
        "size": args.size,
        "rounds": args.rounds,
        "figures": args.figures,
        "workload": asdict(SIZES[args.size]),
        "clients": clients,
        "skipped": skipped,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "versions": {
            p: _version(p)
            for p in (
                "langchain-lunar",
                "langchain-core",
                "langchain-openai",
                "openai",
                "lunar-sdk",
                "httpx",
            )
        },
    }


def _print_tables(figures: dict[str, Any], size: Size, rounds: int) -> None:
    added = Column("added_ms", "added over floor (ms)")
    tables = []
    if "per_chunk" in figures:
        tables.append(
            format_table(
                f"a. Client CPU per chunk, one {size.per_chunk:,}-chunk stream ({rounds} rounds)",
                "us/chunk",
                figures["per_chunk"]["rows"],
                [Column("added_us", "added over floor (us)")],
            )
        )
    if "concurrent" in figures:
        tables.append(
            format_table(
                f"b. Client CPU per chunk, {size.concurrent_streams} concurrent astream calls of "
                f"{size.concurrent_chunks:,} chunks ({rounds} rounds)",
                "us/chunk",
                figures["concurrent"]["rows"],
                [Column("errors", "errors"), Column("exact", "texts exact")],
            )
        )
    if "ttft" in figures:
        tables.append(
            format_table(
                f"c. Time to first token: median of {size.ttft_repeats} requests per round "
                f"({rounds} rounds; server pauses {size.ttft_pause_ms} ms after the first chunk)",
                "ms",
                figures["ttft"]["rows"],
                [added],
            )
        )
    if "aggregation" in figures:
        aggregation = figures["aggregation"]
        table = format_table(
            f"d. Aggregation, invoke(..., stream=True): client CPU ({rounds} rounds) and "
            "peak traced memory",
            "s",
            aggregation["rows"],
            [Column("peak_mb", "peak MB")],
        )
        slopes = ", ".join(
            f"{LABELS[f]} {s:.2f}" if s is not None else f"{LABELS[f]} n/a"
            for f, s in aggregation["slopes"].items()
        )
        table += f"\nlog-log slope of CPU against chunks: {slopes}"
        for family, reason in aggregation["left_out"].items():
            table += f"\n{LABELS[family]} left out: {reason}"
        tables.append(table)
    if "import" in figures:
        tables.append(
            format_table(
                f"e. Cold import in a fresh interpreter ({size.import_samples} samples)",
                "ms",
                figures["import"]["rows"],
                [
                    Column("added_ms", "over langchain_core (ms)"),
                    Column("added_over_chat_ms", "over BaseChatModel (ms)"),
                ],
            )
        )
    if "paced" in figures:
        paced = figures["paced"]
        tables.append(
            format_table(
                f"f. Client CPU per chunk, one {paced['chunks']:,}-chunk stream whose events "
                f"arrive one at a time, {paced['every_ms']} ms apart ({rounds} rounds)",
                "us/chunk",
                paced["rows"],
                [Column("added_us", "added over floor (us)")],
            )
        )
    if "events" in figures:
        events = figures["events"]
        table = format_table(
            f'h. Client CPU per chunk of stream_events(version="v3"), its .text deltas read, '
            f"one {events['chunks']:,}-chunk stream ({rounds} rounds)",
            "us/chunk",
            events["rows"],
            [Column("vs_stream", "vs its stream() in a.", "x")],
        )
        for family, reason in events["left_out"].items():
            table += f"\n{LABELS[family]} left out: {reason}"
        tables.append(table)
    print("\n\n".join(tables))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per figure")
    parser.add_argument(
        "--figures",
        default=",".join(FIGURES),
        help="the figures to run, a comma list of letters or names (default: all): "
        + ", ".join(f"{letter} {name}" for letter, name in sorted(FIGURES.items())),
    )
    parser.add_argument("--plot", metavar="PNG", help="write the two-panel plot here")
    parser.add_argument("--json", metavar="PATH", help="write every number here")
    parser.add_argument(
        "--skip-openai",
        action="store_true",
        help="leave ChatOpenAI out, as when langchain-openai is not installed",
    )
    parser.add_argument(
        "--skip-vendor",
        action="store_true",
        help="leave lunar-sdk's ChatLunar out, as when lunar-sdk is not installed",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    names = {*FIGURES.values()}
    asked = [FIGURES.get(f.strip(), f.strip()) for f in args.figures.split(",") if f.strip()]
    unknown = [f for f in asked if f not in names]
    if unknown or not asked:
        choices = ", ".join(f"{letter} {name}" for letter, name in sorted(FIGURES.items()))
        parser.error(f"--figures: unknown {unknown or 'none given'}; choose from {choices}")
    args.figures = [f for f in FIGURES.values() if f in asked]  # in the order they run
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    size = SIZES[args.size]
    began = time.perf_counter()
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    families = list(ALL_FAMILIES)
    skipped: dict[str, str] = {}
    if args.skip_openai:
        skipped["openai"] = "--skip-openai"
    elif importlib.util.find_spec("langchain_openai") is None:
        skipped["openai"] = "langchain-openai is not installed"
    if args.skip_vendor:
        skipped["vendor"] = "--skip-vendor"
    elif _version("lunar-sdk") is None:
        skipped["vendor"] = "lunar-sdk is not installed"
    families = [f for f in families if f not in skipped]

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    client_cpu, server_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    stream_sizes = (
        size.per_chunk,
        size.concurrent_chunks,
        size.ttft_chunks,
        *size.aggregation,
        size.paced_chunks,
    )

    wanted = args.figures
    figures: dict[str, Any] = {}
    with BenchServer(stream_sizes) as server:
        _pin(server.pid, server_cpu)
        log(f"server at {server.base_url}; starting clients: {', '.join(families)}")
        with start_workers(families, server.base_url, client_cpu) as (workers, failed):
            skipped.update(failed)
            bench = Bench(workers, args.rounds)
            log("warming up")
            for family in workers:
                # lunar-sdk's aggregate fails (figure_aggregation): its warm-up leaves it out.
                command = {
                    "streams": size.concurrent_streams,
                    "aggregate": family != "vendor",
                    "events": "events" in wanted and family in EVENTS_FAMILIES,
                }
                bench.ask("warm-up", family, {"op": "warmup", **command})
            if "per_chunk" in wanted:
                figures["per_chunk"] = figure_per_chunk(bench, size.per_chunk)
            if "concurrent" in wanted:
                figures["concurrent"] = figure_concurrent(bench, size)
            if "ttft" in wanted:
                figures["ttft"] = figure_ttft(bench, size)
            if "aggregation" in wanted:
                figures["aggregation"] = figure_aggregation(bench, size)
            if "paced" in wanted:
                figures["paced"] = figure_per_chunk(bench, size.paced_chunks, size.paced_every_ms)
            if "events" in wanted:
                figures["events"] = figure_events(bench, size.per_chunk, figures.get("per_chunk"))
            clients = list(workers)
    if "import" in wanted:
        figures["import"] = figure_imports(size.import_samples, "openai" in clients)

    meta = metadata_of_run(args, started, clients, skipped)
    meta["duration_s"] = round(time.perf_counter() - began, 1)
    meta["pinned_cpus"] = {"client": client_cpu, "server": server_cpu}
    found = targets(figures)
    results = {
        "meta": meta,
        "figures": figures,
        "targets": [asdict(t) for t in found],
        "checks": {"exact": not bench.problems, "problems": bench.problems},
    }

    print(
        f"langchain-lunar client benchmark: commit {meta['commit']}"
        + (
            " (+ uncommitted changes in langchain_lunar/)"
            if meta["client_code_uncommitted_changes"]
            else ""
        )
        + f", {meta['started_utc']}\n{meta['cpu']} x{meta['cpus']}, Python {meta['python']}, "
        f"size {args.size}, {args.rounds} rounds, {meta['duration_s']} s\n"
        + ", ".join(f"{p} {v or 'not installed'}" for p, v in meta["versions"].items())
        + "\n"
    )
    for family, reason in skipped.items():
        print(f"{LABELS[family]} skipped: {reason}")
    _print_tables(figures, size, args.rounds)
    print()
    print(format_summary(found, "Summary of targets (a snapshot: timings vary with the machine)"))
    if "import" in figures:
        over_core = figures["import"]["lunar_over_core_ms"]
        print(
            f"  (for reference: ChatLunar's import minus that of `import "
            f"langchain_core.language_models`, which does not load BaseChatModel: "
            f"{over_core:.1f} ms)"
        )
    if bench.problems:
        print("\nPROBLEMS (wrong texts or errors):")
        print("\n".join(f"  {p}" for p in bench.problems))
    else:
        print("\nAll texts exact, no errors.")

    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"JSON: {args.json}")
    if args.plot and not {"per_chunk", "aggregation"} <= set(figures):
        print("Plot skipped: it draws figures a. and d., which did not run")
    elif args.plot:
        try:
            from _report import plot

            plot(results, args.plot)
            print(f"Plot: {args.plot}")
        except ImportError:
            print("Plot skipped: matplotlib is not installed")
    return 1 if bench.problems else 0


if __name__ == "__main__":
    sys.exit(main())
