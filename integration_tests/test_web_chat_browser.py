"""The web chat example end to end: a real headless Chromium drives the page, which streams from
the Starlette app, which streams from a local Lunar server over TCP.

Uses Debian's ``chromium`` through Playwright (no browser download). Without either the tests
skip, except under CI (``CI`` set), where they must run.
"""

from __future__ import annotations

import importlib.util
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
TOKEN_DELAY = 0.05


def _missing(reason: str) -> NoReturn:
    """Skip when a browser dependency is missing, but fail under CI, which must run this."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this test must run)")
    pytest.skip(reason)


def _load_app_module() -> ModuleType:
    """Import examples/web_chat/app.py by path (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("web_chat_app", APP_PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lunar() -> Iterator[LocalLunarServer]:
    with LocalLunarServer(reply=REPLY, token_delay=TOKEN_DELAY) as server:
        yield server


@pytest.fixture(scope="module")
def app_url(lunar: LocalLunarServer) -> Iterator[str]:
    """The web chat app served by uvicorn in a background thread on a free port."""
    try:
        import uvicorn
    except ImportError:
        _missing('uvicorn is not installed (pip install -e ".[examples]")')
    app = _load_app_module().create_app(
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


def test_answer_grows_in_place_then_shows_usage(page: Any) -> None:
    _send(page, "Why does streaming matter?")
    # Sample the answer while it streams: ~60 tokens 50 ms apart, sampled every 10 ms or so.
    lengths: list[int] = []
    deadline = time.monotonic() + 15
    while page.text_content("#status") != "done":
        assert time.monotonic() < deadline, (
            f"no end of stream; status {page.text_content('#status')!r}"
        )
        lengths.append(len(page.text_content("#output") or ""))
        time.sleep(0.01)
    final = page.text_content("#output")
    assert final == REPLY
    partial = {n for n in lengths if 0 < n < len(REPLY)}
    assert len(partial) >= 3, f"the answer did not grow in place; lengths seen: {sorted(partial)}"

    usage = page.text_content("#usage") or ""
    assert re.fullmatch(
        r"Served by gpt-4o-mini · \d+ tokens \(\d+ in, \d+ out\) · \$\d+\.\d+", usage
    ), usage

    page.mouse.move(0, 0)  # no hover highlight on the Send button in the picture
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)


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
