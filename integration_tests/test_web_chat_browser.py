"""The web chat example end to end: a real headless Chromium drives the page, which streams from
the Starlette app, which streams from a local Lunar server over TCP playing a reasoning model:
its thinking streams into the page's "Thinking" panel, then the answer below it.

Uses Debian's ``chromium`` through Playwright (no browser download). Without either the tests
skip, except under CI (``CI`` set), where they must run.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest

from langchain_lunar import ChatLunar
from langchain_lunar.testing import LocalLunarServer
from tests.helpers import load_example

ROOT = Path(__file__).resolve().parent.parent
APP_PATH = ROOT / "examples" / "web_chat" / "app.py"
SCREENSHOT = ROOT / "docs" / "web_chat.png"
CHROMIUM = "/usr/bin/chromium"
# --disable-background-networking and friends: on a closed network Chromium's own background
# connections fail, and without these flags that also broke the page's connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPLY = (
    "Streaming makes a chat feel alive: instead of waiting for the whole answer, you watch it "
    "appear word by word, the way a person types. Each token travels from the model through "
    "LangChain's callbacks, becomes a Server-Sent Event, and lands in the page a moment later. "
    "If the answer is not what you wanted, press Stop and the request upstream is closed at "
    "once, so no more tokens are generated or paid for."
)
THINKING = (
    "The user asks why streaming matters. Start with how it feels, then how a token travels, "
    "then Stop."
)
TOKEN_DELAY = 0.05
# One call for a consistent picture of the page while it streams.
SNAPSHOT_JS = """() => ({
    status: document.querySelector('#status').textContent,
    output: document.querySelector('#output').textContent,
    thinking: document.querySelector('#thinking-text').textContent,
    hidden: document.querySelector('#thinking').hidden,
    open: document.querySelector('#thinking').open,
    label: document.querySelector('#thinking-label').textContent,
})"""


def _missing(reason: str) -> NoReturn:
    """Skip when a browser dependency is missing, but fail under CI, which must run this."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this test must run)")
    pytest.skip(reason)


def _load_app_module() -> ModuleType:
    """Import examples/web_chat/app.py by path (examples/ is not a package)."""
    return load_example(APP_PATH, "web_chat_app")


@pytest.fixture(scope="module")
def lunar() -> Iterator[LocalLunarServer]:
    with LocalLunarServer(reply=REPLY, reasoning=THINKING, token_delay=TOKEN_DELAY) as server:
        yield server


@pytest.fixture(scope="module")
def app_module() -> ModuleType:
    try:
        return _load_app_module()
    except ImportError as error:  # uvicorn, starlette
        _missing(f'{error.name or error} is not installed (pip install -e ".[examples]")')


@pytest.fixture(scope="module")
def app_url(lunar: LocalLunarServer, app_module: ModuleType) -> Iterator[str]:
    """The web chat app served by uvicorn in a background thread on a free port."""
    import uvicorn

    app = app_module.create_app(
        ChatLunar(model="gpt-4o-mini", api_key="sk-local", base_url=lunar.base_url)
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound here and handed over: no race for the port
    port = sock.getsockname()[1]
    # Signal handlers can only be installed from the main thread; uvicorn skips them in others.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser_context() -> Iterator[Any]:
    """Headless Debian Chromium with a fresh profile, driven by Playwright."""
    if shutil.which(CHROMIUM) is None:
        _missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1000, "height": 700},
        )
        yield context
        context.close()


@pytest.fixture
def page(browser_context: Any, app_url: str) -> Iterator[Any]:
    page = browser_context.new_page()
    page.set_default_timeout(10_000)
    page.goto(app_url)
    yield page
    page.close()


def _send(page: Any, prompt: str) -> None:
    page.fill("#prompt", prompt)
    page.click("#send")


def test_thinking_then_the_answer_grows_in_place_then_usage(page: Any) -> None:
    assert page.is_hidden("#thinking")  # no panel before a model thinks
    _send(page, "Why does streaming matter?")
    # Sample the page while it streams: ~18 thinking then ~60 answer tokens 50 ms apart,
    # sampled every 10 ms or so.
    snapshots: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while not snapshots or snapshots[-1]["status"] != "done":
        assert time.monotonic() < deadline, f"no end of stream; last seen {snapshots[-1]!r}"
        snapshots.append(page.evaluate(SNAPSHOT_JS))
        time.sleep(0.01)
    final = snapshots[-1]
    assert final["output"] == REPLY
    assert final["thinking"] == THINKING
    assert THINKING not in (page.text_content("#output") or "")

    # While the model thinks, the panel is open and its text grows; the answer area is empty.
    thinking = [s for s in snapshots if not s["hidden"] and not s["output"]]
    growing = {len(s["thinking"]) for s in thinking if 0 < len(s["thinking"]) < len(THINKING)}
    assert len(growing) >= 3, f"the thinking did not grow in place; lengths seen: {growing}"
    assert all(s["open"] and s["label"] == "Thinking…" for s in thinking), thinking
    assert all(THINKING.startswith(s["thinking"]) for s in snapshots)
    # Once the answer starts, the thinking is whole and folded away above it.
    answering = [s for s in snapshots if s["output"]]
    assert answering
    assert all(
        s["thinking"] == THINKING and not s["open"] and not s["hidden"] for s in answering
    ), answering[0]
    assert all(REPLY.startswith(s["output"]) for s in answering)
    partial = {len(s["output"]) for s in answering if len(s["output"]) < len(REPLY)}
    assert len(partial) >= 3, f"the answer did not grow in place; lengths seen: {sorted(partial)}"
    assert re.fullmatch(r"Thought for \d+\.\d s", final["label"]), final["label"]

    usage = page.text_content("#usage") or ""
    assert re.fullmatch(
        r"Served by gpt-4o-mini · \d+ tokens \(\d+ in, \d+ out, \d+ of them thinking\)"
        r" · \$\d+\.\d+",
        usage,
    ), usage

    page.click("#thinking-label")  # the reader can unfold the thinking again
    assert page.evaluate("document.querySelector('#thinking').open")
    assert page.is_visible("#thinking-text")
    page.mouse.move(0, 0)  # no hover highlight in the picture
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_a_new_question_starts_without_the_last_thinking(page: Any) -> None:
    _send(page, "First question")
    page.wait_for_function("document.querySelector('#status').textContent === 'done'")
    _send(page, "Second question")
    # The first snapshot after sending: the old thinking and answer are gone.
    first = page.evaluate(SNAPSHOT_JS)
    assert first["status"] == "streaming…"
    assert len(first["thinking"]) < len(THINKING)
    assert first["output"] == ""
    page.wait_for_function("document.querySelector('#status').textContent === 'done'")
    assert page.evaluate(SNAPSHOT_JS)["thinking"] == THINKING


def test_stop_while_thinking_keeps_the_thinking_and_closes_the_upstream_request(
    page: Any, lunar: LocalLunarServer
) -> None:
    disconnects_before = lunar.disconnects
    _send(page, "Think about this.")
    page.wait_for_function("document.querySelector('#thinking-text').textContent.length > 10")
    page.click("#stop")

    page.wait_for_function("document.querySelector('#status').textContent === 'stopped'")
    stopped = page.evaluate(SNAPSHOT_JS)
    assert 10 < len(stopped["thinking"]) < len(THINKING)
    assert stopped["open"]  # left as far as it got, for the reader
    assert stopped["label"] == "Thinking (interrupted)"
    assert stopped["output"] == ""
    time.sleep(5 * TOKEN_DELAY)  # long enough for several more tokens, had the stream gone on
    assert page.evaluate(SNAPSHOT_JS) == stopped
    assert lunar.wait_for_disconnects(disconnects_before + 1, timeout=5)


def test_offline_the_app_plays_a_reasoning_model(
    app_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LUNAR_API_KEY", raising=False)
    with app_module.chat_model() as model:
        thinking = ""
        for chunk in model.stream("Why is the Moon grey?"):
            if chunk.text:  # the answer has started: the thinking is whole
                break
            thinking += chunk.additional_kwargs.get("reasoning_content", "")
    assert thinking == app_module.OFFLINE_THINKING
    assert chunk.text == app_module.OFFLINE_REPLY.split()[0]


def test_stop_halts_the_page_and_closes_the_upstream_request(
    page: Any, lunar: LocalLunarServer
) -> None:
    disconnects_before = lunar.disconnects
    _send(page, "Tell me something long.")
    page.wait_for_function("document.querySelector('#output').textContent.length > 20")
    page.click("#stop")

    page.wait_for_function("document.querySelector('#status').textContent === 'stopped'")
    stopped_at = page.text_content("#output") or ""
    assert 0 < len(stopped_at) < len(REPLY)
    time.sleep(5 * TOKEN_DELAY)  # long enough for several more tokens, had the stream gone on
    assert page.text_content("#output") == stopped_at
    assert page.text_content("#usage") == ""
    # The app cancelled its chain, which closed its own request to the Lunar server.
    assert lunar.wait_for_disconnects(disconnects_before + 1, timeout=5)
