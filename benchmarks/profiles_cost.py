"""What the model profiles cost in instructions (valgrind's callgrind): import, first model built.

    python benchmarks/profiles_cost.py [--python PY] --tree OLD_CHECKOUT --tree .

For each tree: the instructions ``from langchain_lunar import ChatLunar`` adds over
``BaseChatModel``'s import (benchmarks/instructions.py's figure), what the first
``ChatLunar(model=...)`` then costs (it reads the profile data, langchain_lunar/_profiles_data.py,
and looks the id up), and what each later one costs (200 more, averaged). Fresh interpreters,
bytecode cached. Run it with the ``--python`` of a virtualenv holding only the runtime
dependencies, as users have.
"""

from __future__ import annotations

import argparse
import os
import sys

from instructions import BASELINE, IMPORT, instructions

FIRST = IMPORT + "; ChatLunar(model='openai/gpt-4o-mini', api_key='k')"
LATER = 200
SECOND = (
    FIRST
    + f"; [ChatLunar(model='anthropic/claude-sonnet-4.5', api_key='k') for _ in range({LATER})]"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--tree", action="append", default=[], required=True)
    args = parser.parse_args()
    for tree in [os.path.abspath(t) for t in args.tree]:
        counts = [
            instructions(args.python, code, tree) for code in (BASELINE, IMPORT, FIRST, SECOND)
        ]
        base, imported, first, second = counts
        print(
            f"{tree}: import adds {(imported - base) / 1e6:.1f} M over BaseChatModel; "
            f"first model built {(first - imported) / 1e6:.2f} M; "
            f"each later one {(second - first) / LATER / 1e3:.0f} k"
        )


if __name__ == "__main__":
    main()
