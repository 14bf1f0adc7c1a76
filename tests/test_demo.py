"""Tests of the streaming demo, ``python -m langchain_lunar``, against the local server."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from langchain_lunar._demo import (
    DIM,
    OFFLINE_STORY,
    OFFLINE_THINKING,
    RESET,
    configured_chat_model,
    main,
)
from langchain_lunar.chat_models import DEFAULT_BASE_URL
from langchain_lunar.testing import Fault, LocalLunarServer

ENV_SERVER_STORY = "A story from the server that LUNAR_BASE_URL names."

REPORT_LINES = (
    re.compile(r"^Time to first token: +\d+ ms \(thinking\)$", re.M),
    re.compile(r"^First answer token: +\d+ ms$", re.M),
    re.compile(r"^Tokens/s: +\d+\.\d \(output tokens from usage\)$", re.M),
    re.compile(r"^Served model: +gpt-4o-mini$", re.M),
    re.compile(
        r"^Usage: +\d+ input \+ \d+ output = \d+ tokens \(\d+ of the output thinking\)$", re.M
    ),
    re.compile(r"^Cost: +\$\d+\.\d{6}$", re.M),
)


def test_offline_run_streams_the_thinking_then_the_story_then_the_report(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--offline", "--token-delay", "0"]) == 0

    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0].startswith("Using a local Lunar-compatible server at http://")
    # Not a terminal (captured): the thinking is labelled, not dimmed, and apart from the story.
    assert lines[1:5] == ["", f"Thinking: {OFFLINE_THINKING}", "", OFFLINE_STORY]
    assert "\x1b" not in out
    position = out.index(OFFLINE_STORY) + len(OFFLINE_STORY)
    for line in REPORT_LINES:
        match = line.search(out, position)
        assert match is not None, f"{line.pattern!r} not found after the story in:\n{out}"
        position = match.end()


def _run_on_a_terminal(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run ``python -m langchain_lunar args`` with stdout on a pseudo-terminal."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "langchain_lunar", *args],
        stdout=slave,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    os.close(slave)
    output = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the demo has exited and the terminal is closed
            break
        if not data:
            break
        output += data
    os.close(master)
    # The terminal turns each "\n" into "\r\n".
    return process.wait(timeout=30), output.decode().replace("\r\n", "\n")


def _offline_env(**extra: str) -> dict[str, str]:
    unset = ("LUNAR_API_KEY", "LUNAR_BASE_URL", "NO_COLOR")
    return {**{k: v for k, v in os.environ.items() if k not in unset}, **extra}


def test_on_a_terminal_the_thinking_is_dimmed_and_the_story_is_not() -> None:
    code, out = _run_on_a_terminal("--offline", "--token-delay", "0", env=_offline_env())

    assert code == 0
    assert f"\n\n{DIM}Thinking: {OFFLINE_THINKING}{RESET}\n\n{OFFLINE_STORY}\n" in out
    assert out.count("\x1b") == 2  # nothing else is coloured


def test_no_color_keeps_a_terminal_plain() -> None:
    code, out = _run_on_a_terminal(
        "--offline", "--token-delay", "0", env=_offline_env(NO_COLOR="1")
    )

    assert code == 0
    assert f"\n\nThinking: {OFFLINE_THINKING}\n\n{OFFLINE_STORY}\n" in out
    assert "\x1b" not in out


def test_a_stream_broken_while_thinking_leaves_the_terminal_undimmed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LUNAR_API_KEY", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    with LocalLunarServer(reply="Never reached.", reasoning="One two three four five") as server:
        server.script(Fault.disconnect(after=3))  # three pieces of thinking, then gone
        monkeypatch.setenv("LUNAR_BASE_URL", server.base_url)

        assert main([]) == 1

    out, err = capsys.readouterr()
    assert out.endswith(f"\n\n{DIM}Thinking: One two three{RESET}\n")
    assert "Never reached" not in out
    assert err.startswith("error: ")


def test_without_base_url_or_key_it_uses_its_own_local_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LUNAR_API_KEY", raising=False)
    monkeypatch.delenv("LUNAR_BASE_URL", raising=False)

    assert main(["--token-delay", "0", "--model", "demo-model"]) == 0

    out = capsys.readouterr().out
    assert out.startswith("Using a local Lunar-compatible server at http://127.0.0.1:")
    assert "(neither LUNAR_BASE_URL nor LUNAR_API_KEY is set)" in out.splitlines()[0]
    assert OFFLINE_STORY in out
    assert re.search(r"^Served model: +demo-model$", out, re.M)


def test_lunar_base_url_without_a_key_streams_from_that_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LUNAR_API_KEY", raising=False)
    with LocalLunarServer(reply=ENV_SERVER_STORY) as server:
        base_url = server.base_url
        monkeypatch.setenv("LUNAR_BASE_URL", base_url)

        assert main(["--model", "demo-model"]) == 0

        requests = server.requests
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[0] == (
        f"Using {base_url} (from LUNAR_BASE_URL, no API key) with model demo-model."
    )
    assert ENV_SERVER_STORY in out
    assert OFFLINE_STORY not in out
    # A model that does not think: no thinking, and the first token is the story's.
    assert "Thinking" not in out
    assert out.splitlines()[2] == ENV_SERVER_STORY
    assert re.search(r"^Time to first token: +\d+ ms$", out, re.M)
    assert "First answer token" not in out
    assert re.search(r"^Usage: +\d+ input \+ \d+ output = \d+ tokens$", out, re.M)
    assert [(r.method, r.path, r.model) for r in requests] == [
        ("POST", "/v1/chat/completions", "demo-model")
    ]
    assert "authorization" not in requests[0].headers
    assert "x-api-key" not in requests[0].headers


def test_lunar_base_url_with_a_key_sends_the_key_but_never_prints_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "sk-demo-secret-5151"
    monkeypatch.setenv("LUNAR_API_KEY", key)
    # The server answers 401 without the key, so a story proves the key was sent.
    with LocalLunarServer(reply=ENV_SERVER_STORY, api_key=key) as server:
        base_url = server.base_url
        monkeypatch.setenv("LUNAR_BASE_URL", base_url)

        assert main([]) == 0

    out, err = capsys.readouterr()
    assert out.splitlines()[0] == (
        f"Using {base_url} (from LUNAR_BASE_URL) with model gpt-4o-mini."
    )
    assert ENV_SERVER_STORY in out
    assert key not in out + err


def test_python_dash_m_uses_lunar_base_url_without_a_key() -> None:
    env = {k: v for k, v in os.environ.items() if k != "LUNAR_API_KEY"}
    with LocalLunarServer(reply=ENV_SERVER_STORY) as server:
        base_url = server.base_url
        env["LUNAR_BASE_URL"] = base_url
        result = subprocess.run(
            [sys.executable, "-m", "langchain_lunar"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        request_count = len(server.requests)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Using {base_url} (from LUNAR_BASE_URL, no API key)")
    assert ENV_SERVER_STORY in result.stdout
    assert request_count == 1


def test_lunar_base_url_at_lunar_itself_still_needs_the_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LUNAR_API_KEY", raising=False)
    monkeypatch.setenv("LUNAR_BASE_URL", DEFAULT_BASE_URL)

    assert main([]) == 1

    out, err = capsys.readouterr()
    assert out == ""  # refused before any request, as ChatLunar refuses
    assert err.startswith("error: ValidationError: Value error, No Lunar API key")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("base_url", "key", "expected_base_url"),
    [
        ("", "", None),
        ("", "sk-x", DEFAULT_BASE_URL),  # an empty LUNAR_BASE_URL counts as unset
        (None, "sk-x", DEFAULT_BASE_URL),
        ("http://127.0.0.1:8080/v1/", None, "http://127.0.0.1:8080/v1"),
        ("http://127.0.0.1:8080/v1", "", "http://127.0.0.1:8080/v1"),
        (None, None, None),
    ],
)
def test_the_configured_server_follows_chat_lunar(
    monkeypatch: pytest.MonkeyPatch,
    base_url: str | None,
    key: str | None,
    expected_base_url: str | None,
) -> None:
    for name, value in (("LUNAR_BASE_URL", base_url), ("LUNAR_API_KEY", key)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)

    llm = configured_chat_model("m")

    assert (llm.base_url if llm is not None else None) == expected_base_url


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
    assert f"Thinking: {OFFLINE_THINKING}\n\n{OFFLINE_STORY}\n" in result.stdout
    assert "\x1b" not in result.stdout  # a pipe is not a terminal
    assert "Cost:" in result.stdout


def test_unreachable_server_exits_1_with_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "sk-demo-secret-4242"
    monkeypatch.setenv("LUNAR_API_KEY", key)
    monkeypatch.setenv("LUNAR_BASE_URL", "http://127.0.0.1:9/v1")  # discard port: refused

    assert main([]) == 1

    out, err = capsys.readouterr()
    assert out.startswith("Using http://127.0.0.1:9/v1 (from LUNAR_BASE_URL) with model")
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
    env = {k: v for k, v in os.environ.items() if k not in ("LUNAR_API_KEY", "LUNAR_BASE_URL")}
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
