"""The speed guard's budgets change only together with a line in benchmarks/README.md."""

from __future__ import annotations

import json
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_the_readme_says_why_each_budget_is_what_it_is() -> None:
    budgets = json.loads((BENCHMARKS / "budgets.json").read_text())["instructions_per_event"]
    readme = (BENCHMARKS / "README.md").read_text()
    assert set(budgets) == {"stream", "astream", "stream_events", "astream_events"}
    for mode, budget in budgets.items():
        line = f"`{mode}` budget: {budget:,} instructions per event"
        assert line in readme, f"benchmarks/README.md has no line {line!r} saying why"


def test_the_guard_pins_a_python_and_every_package_exactly() -> None:
    lines = (BENCHMARKS / "guard-requirements.txt").read_text().splitlines()
    assert any(line.startswith("# python==3.") for line in lines)
    pins = [line for line in lines if line and not line.startswith("#")]
    assert pins
    assert all("==" in line for line in pins)
    names = {line.split("==")[0].lower().replace("_", "-") for line in pins}
    assert {"langchain-core", "httpx", "pydantic", "orjson", "tenacity"} <= names
