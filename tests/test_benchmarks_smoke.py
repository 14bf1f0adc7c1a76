"""The benchmark suite runs end to end at its tiny size.

Timing is never asserted (CI machines are not benchmarking machines): only that the suite
exits cleanly, prints its summary, writes every figure, and that every client returned
exactly the text the server sent, without errors.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
FIGURES = {"per_chunk", "concurrent", "ttft", "aggregation", "import", "paced", "events"}
HAVE_OPENAI = importlib.util.find_spec("langchain_openai") is not None
HAVE_VENDOR = importlib.util.find_spec("lunar") is not None  # lunar-sdk


def run_tiny(tmp_path: Path, *extra: str) -> tuple[str, dict[str, Any]]:
    """Run the tiny suite; return its printed report and its JSON."""
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(RUN), "--size", "tiny", "--rounds", "1", "--json", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Summary of targets" in done.stdout
    return done.stdout, json.loads(out.read_text())


def assert_every_text_exact(results: dict[str, Any], figures: set[str] = FIGURES) -> None:
    assert set(results["figures"]) == figures
    assert results["checks"] == {"exact": True, "problems": []}
    for name, figure in results["figures"].items():
        assert figure["rows"], name
        for row in figure["rows"]:
            assert row["exact"] is True, (name, row["label"])
            assert row["errors"] == 0, (name, row["label"])
    for row in results["figures"].get("concurrent", {}).get("rows", []):
        assert row["exact_streams"] == row["streams"] > 0


def assert_the_v3_figure_has_the_langchain_families(results: dict[str, Any]) -> None:
    events = results["figures"]["events"]
    clients = {row["client"] for row in events["rows"]}
    expected = {"lunar", "lunar_resilient"} | ({"openai"} if HAVE_OPENAI else set())
    assert clients == expected
    assert {row["mode"] for row in events["rows"]} == {"sync", "async"}
    assert "floor" in events["left_out"]  # said under the table, with the reason


def test_tiny_suite_runs_and_every_text_is_exact(tmp_path: Path) -> None:
    stdout, results = run_tiny(tmp_path)

    assert_every_text_exact(results)
    assert_the_v3_figure_has_the_langchain_families(results)
    assert "h. Client CPU per chunk of stream_events" in stdout
    clients = set(results["meta"]["clients"])
    assert {"floor", "lunar", "lunar_resilient"} <= clients
    assert {t["status"] for t in results["targets"]} <= {"MET", "NOT MET", "SKIPPED"}
    if HAVE_OPENAI:
        assert "openai" in clients
    else:
        assert "ChatOpenAI skipped" in stdout
    if HAVE_VENDOR:
        assert "vendor" in clients
        for figure in ("per_chunk", "concurrent", "ttft"):
            assert any(row["client"] == "vendor" for row in results["figures"][figure]["rows"])
    else:
        assert "lunar-sdk ChatLunar skipped" in stdout


@pytest.mark.skipif(
    not (HAVE_OPENAI or HAVE_VENDOR), reason="the test above already ran without either"
)
def test_tiny_suite_runs_without_chatopenai_and_lunar_sdk(tmp_path: Path) -> None:
    stdout, results = run_tiny(tmp_path, "--skip-openai", "--skip-vendor")

    assert "ChatOpenAI skipped" in stdout
    assert "lunar-sdk ChatLunar skipped" in stdout
    assert not {"openai", "vendor"} & set(results["meta"]["clients"])
    assert_every_text_exact(results)


def test_figures_selects_the_v3_figure_alone(tmp_path: Path) -> None:
    stdout, results = run_tiny(tmp_path, "--figures", "h", "--skip-vendor")

    assert_every_text_exact(results, {"events"})
    assert_the_v3_figure_has_the_langchain_families(results)
    assert results["meta"]["figures"] == ["events"]
    names = {t["name"] for t in results["targets"]}
    assert all("v3" in name for name in names), names  # the targets of that figure only
    assert len(names) == 2
    assert "a. Client CPU per chunk," not in stdout


def test_figures_refuses_an_unknown_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(RUN), "--figures", "a,z"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "--figures: unknown ['z']" in done.stderr


def test_paced_streams_arrive_one_event_per_read() -> None:
    # Figure f. is only what it says if every event reaches the client on its own.
    sys.path.insert(0, str(RUN.parent))
    try:
        from _server import BenchServer, expected_text, model_name
    finally:
        sys.path.remove(str(RUN.parent))
    with BenchServer() as server, httpx.Client() as client:
        body = {
            "model": model_name(20, every_ms=1),
            "messages": [],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        url = f"{server.base_url}/chat/completions"
        with client.stream("POST", url, json=body) as response:
            reads = list(response.iter_raw())
    events = b"".join(reads).split(b"\n\n")[:-1]
    assert len(events) == 23  # 20 tokens, the finish, the usage, [DONE]
    # Each event is written on its own; a busy machine may still merge a few in one read
    # (the client was not scheduled for a millisecond), but a server that batched them would
    # give one or two reads.
    assert len(reads) >= len(events) // 2
    text = "".join(
        json.loads(e[6:])["choices"][0]["delta"].get("content", "")
        for e in events
        if e != b"data: [DONE]" and json.loads(e[6:])["choices"]
    )
    assert text == expected_text(20)


@pytest.mark.parametrize("options", [None, {"include_usage": False}, {"include_usage": True}])
def test_the_usage_chunk_only_when_the_request_asks_for_it(options: Any) -> None:
    # As OpenAI's API does; lunar-sdk's ChatLunar does not ask, and fails on `"choices": []`.
    sys.path.insert(0, str(RUN.parent))
    try:
        from _server import BenchServer, expected_text, model_name
    finally:
        sys.path.remove(str(RUN.parent))
    body: dict[str, Any] = {"model": model_name(5), "messages": [], "stream": True}
    if options is not None:
        body["stream_options"] = options
    with BenchServer() as server:
        response = httpx.post(f"{server.base_url}/chat/completions", json=body)
    lines = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    usage = [chunk for chunk in chunks if "usage" in chunk]
    if options == {"include_usage": True}:
        assert usage == [chunks[-1]]  # the last chunk before [DONE]
        assert usage[0]["choices"] == []
    else:
        assert usage == []
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == expected_text(5)


def test_the_fleet_figure_runs_and_the_shared_store_spares_the_cooling_model(
    tmp_path: Path, redis_server: Any
) -> None:
    # redis_server: only to skip (or, in CI, fail) where redis-server is not installed.
    out = tmp_path / "fleet.json"
    fleet = RUN.parent / "fleet.py"
    done = subprocess.run(
        [sys.executable, str(fleet), "--workers", "2", "--calls", "2", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {row["store"]: row for row in json.loads(out.read_text())}
    assert rows["none"]["requests_to_cooling_model"] == 4  # every call is refused first
    assert rows["per process"]["requests_to_cooling_model"] == 2  # once per worker
    assert rows["Redis"]["requests_to_cooling_model"] == 0
