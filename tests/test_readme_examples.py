"""Every Python example in README.md runs as written, against the local server.

pytest-examples writes each ```python block to a file of its own and runs it as ``__main__``,
as a reader who pastes it into a file would: a top-level ``await`` is the SyntaxError it is
there, and a name the block does not define is a NameError. ``ChatLunar`` finds the local
server through ``LUNAR_BASE_URL`` and ``LUNAR_API_KEY``, as it would find Lunar; examples that
share a budget through Redis get a real ``redis-server`` in ``REDIS_URL``. An example whose
imports are not installed (langchain and starlette come with the ``examples`` extra, which the
floors' venv leaves out) is skipped, saying which.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from langchain_lunar.testing import LocalLunarServer

from .helpers import load_example

if importlib.util.find_spec("pytest_examples") is None and not os.environ.get("CI"):
    # CI installs it with the unit extra (every venv of .ci/run), so there it must run.
    pytest.skip('needs pytest-examples (pip install -e ".[unit]")', allow_module_level=True)

from pytest_examples import CodeExample, EvalExample, find_examples

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EXAMPLES = list(find_examples(README))
KEY = "sk-readme-local"


def _agent_brain(source: str) -> ModuleType:
    """The example whose scripted model a README agent example talks to:
    examples/langgraph_events.py for the one that streams protocol events,
    examples/reasoning_agent.py for the others."""
    name = "langgraph_events" if "stream_events(" in source else "reasoning_agent"
    return load_example(ROOT / "examples" / f"{name}.py", f"{name}_for_readme")


def _missing_imports(source: str) -> list[str]:
    """The top-level packages that ``source`` imports and that are not installed."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return sorted(name for name in names if importlib.util.find_spec(name) is None)


def _run(
    example: CodeExample, eval_example: EvalExample, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """Run ``example`` as ``__main__``; a failure names the README line it comes from."""
    # pytest-examples runs the block as __main__ and leaves it in sys.modules.
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    # Its traceback rewriting builds frames that Python 3.11's traceback module cannot read
    # (a StopIteration, and an INTERNALERROR of the whole run): keep the real traceback.
    monkeypatch.setattr("pytest_examples.run_code.create_example_traceback", lambda *args: None)
    try:
        return eval_example.run(example)
    except Exception as error:
        pytest.fail(f"README.md line {_readme_line(error, example)}: {error!r}")


def _readme_line(error: BaseException, example: CodeExample) -> int:
    """The README line where ``error`` was raised in ``example`` (its innermost frame there)."""
    if isinstance(error, SyntaxError) and error.lineno:
        return example.start_line + error.lineno
    line = example.start_line
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename.endswith(f"{example.module_name}.py"):
            line = example.start_line + traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def test_every_python_block_is_an_example() -> None:
    fences = re.findall(r"^ *```(\S*)", README.read_text("utf-8"), flags=re.MULTILINE)
    openings = fences[::2]  # every other fence opens a block
    assert len(EXAMPLES) == openings.count("python") > 0
    assert [kind for kind in openings if kind.startswith("py")] == ["python"] * len(EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_readme_example_runs_as_written(
    example: CodeExample,
    eval_example: EvalExample,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    missing = _missing_imports(example.source)
    if missing:
        pytest.skip(f'needs {", ".join(missing)} (pip install -e ".[examples]")')
    # The agent example meets a model that reasons and calls its tool; the others, a reasoning
    # model that echoes.
    settings = (
        {"reply": _agent_brain(example.source).scripted_brain}
        if "create_agent" in example.source
        else {}
    )
    with LocalLunarServer(reasoning=True, api_key=KEY, **settings) as server:
        monkeypatch.setenv("LUNAR_BASE_URL", server.base_url)
        monkeypatch.setenv("LUNAR_API_KEY", KEY)
        if "REDIS_URL" in example.source:
            monkeypatch.setenv("REDIS_URL", request.getfixturevalue("redis_server").url)
        names = _run(example, eval_example, monkeypatch)
        if "app" in names:  # the web app: ask it, as a browser would
            from starlette.testclient import TestClient

            with TestClient(names["app"]) as client:
                answer = client.post("/chat", json={"question": "Hi"})
            assert answer.status_code == 200
            assert answer.text == "You said: Hi"
        if "create_agent" in example.source:
            assert len(server.requests) == 2  # the tool call, then the answer
            state = names["state"]
            if "response_format" in example.source:
                assert state["structured_response"].take_a_coat is True
            else:
                assert "light snow, -3 °C" in state["messages"][-1].text
