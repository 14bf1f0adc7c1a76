"""The thread-safe queues that hand scripted steps (``Fault``s) out to requests in order."""

from __future__ import annotations

import threading
from collections import deque

from langchain_lunar.testing._faults import NO_FAULT, Fault
from langchain_lunar.testing._reply import Reply


class Script:
    """Queues of scripted steps: one shared queue, plus one per model name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._any: deque[Fault] = deque()
        self._by_model: dict[str, deque[Fault]] = {}

    def add(self, steps: tuple[Fault | Reply | str, ...], model: str | None) -> None:
        """Append ``steps`` for ``model`` (None: any model); a str or a ``Reply`` step means
        ``Fault.reply(step)``."""
        faults: list[Fault] = []
        for step in steps:
            if isinstance(step, (str, Reply)):
                faults.append(Fault.reply(step))
            elif isinstance(step, Fault):
                faults.append(step)
            else:
                raise TypeError(f"a script step must be a Fault, a Reply or a str, got {step!r}")
        with self._lock:
            queue = self._any if model is None else self._by_model.setdefault(model, deque())
            queue.extend(faults)

    def take(self, model: str) -> Fault:
        """Pop the next step for a request for ``model``: its own queue first, then the shared
        one; ``NO_FAULT`` (the normal answer) when both are empty."""
        with self._lock:
            own = self._by_model.get(model)
            if own:
                return own.popleft()
            if self._any:
                return self._any.popleft()
            return NO_FAULT
