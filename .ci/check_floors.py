"""Fail when .ci/floors.txt and the floors in pyproject.toml's dependencies differ.

Every runtime dependency, and every dependency of the extras in ``TESTED_EXTRAS``, must declare
a floor (``>=X``) and floors.txt must pin exactly that ``X`` (``name==X``), with no other lines,
so that the floors CI tests are the declared ones.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest brings tomli on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# Extras whose floors the floors venv installs too (the `unit` extra pulls them in).
TESTED_EXTRAS = ("redis",)


def declared() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"])
    for extra in TESTED_EXTRAS:
        deps += project["optional-dependencies"][extra]
    floors: dict[str, str] = {}
    for dep in deps:
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", dep)
        floor = re.search(r">=\s*([^,;\s]+)", dep)
        if name is None or floor is None:
            sys.exit(f"pyproject.toml: {dep!r} declares no floor (>=X)")
        floors[normalize(name.group(1))] = floor.group(1)
    return floors


def pinned() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / ".ci" / "floors.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*(\S+)", line)
        if match is None:
            sys.exit(f".ci/floors.txt: {line!r} is not name==version")
        pins[normalize(match.group(1))] = match.group(2)
    return pins


def main() -> None:
    want, have = declared(), pinned()
    problems = [
        f"{name}: pyproject.toml says {'>=' + want[name] if name in want else 'nothing'}, "
        f".ci/floors.txt says {'==' + have[name] if name in have else 'nothing'}"
        for name in sorted(want.keys() | have.keys())
        if want.get(name) != have.get(name)
    ]
    if problems:
        sys.exit("Floors differ:\n  " + "\n  ".join(problems))
    print("Floors agree:", ", ".join(f"{n}=={v}" for n, v in sorted(want.items())))


if __name__ == "__main__":
    main()
