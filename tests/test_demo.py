"""Tests of the streaming demo, ``python -m langchain_lunar``, against the local server."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from langchain_lunar._demo import OFFLINE_STORY, main

REPORT_LINES = (
    re.compile(r"^Time to first token: +\d+ ms$", re.M),
    re.compile(r"^Tokens/s: +\d+\.\d \(output tokens from usage\)$", re.M),
    re.compile(r"^Served model: +gpt-4o-mini$", re.M),
    re.compile(r"^Usage: +\d+ input \+ \d+ output = \d+ tokens$", re.M),
    re.compile(r"^Cost: +\$\d+\.\d{6}$", re.M),
)


def test_offline_run_streams_the_story_then_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--offline", "--token-delay", "0"]) == 0

    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[0].startswith("Using a local Lunar-compatible server at http://")
    story_end = out.index(OFFLINE_STORY) + len(OFFLINE_STORY)
    position = story_end
    for line in REPORT_LINES:
        match = line.search(out, position)
        assert match is not None, f"{line.pattern!r} not found after the story in:\n{out}"
        position = match.end()


def test_without_a_key_it_uses_the_local_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LUNAR_API_KEY", raising=False)

    assert main(["--token-delay", "0", "--model", "demo-model"]) == 0

    out = capsys.readouterr().out
    assert out.startswith("Using a local Lunar-compatible server")
    assert "(LUNAR_API_KEY is not set)" in out.splitlines()[0]
    assert OFFLINE_STORY in out
    assert re.search(r"^Served model: +demo-model$", out, re.M)


def test_python_dash_m_runs_offline() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("LUNAR_API_KEY", "LUNAR_BASE_URL")}

    result = subprocess.run(
        [sys.executable, "-m", "langchain_lunar", "--offline", "--token-delay", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 0, result.stderr
    assert OFFLINE_STORY in result.stdout
    assert "Cost:" in result.stdout


def test_unreachable_server_exits_1_with_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "sk-demo-secret-4242"
    monkeypatch.setenv("LUNAR_API_KEY", key)
    monkeypatch.setenv("LUNAR_BASE_URL", "http://127.0.0.1:9/v1")  # discard port: refused

    assert main([]) == 1

    out, err = capsys.readouterr()
    assert out.startswith("Using Lunar at http://127.0.0.1:9/v1")
    assert err.startswith("error: ")
    assert err.endswith("\n")
    assert err.count("\n") == 1
    assert key not in out + err


def test_negative_token_delay_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--offline", "--token-delay", "-1"])

    assert exit_info.value.code == 2
    assert "--token-delay" in capsys.readouterr().err


def test_a_reader_that_goes_away_ends_the_demo_quietly() -> None:
    env = {k: v for k, v in os.environ.items() if k != "LUNAR_API_KEY"}
    process = subprocess.Popen(
        [sys.executable, "-m", "langchain_lunar", "--offline", "--token-delay", "0.01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.readline()  # like `| head -1`: read the first line, then go away
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=30) == 1
    assert "Traceback" not in stderr
