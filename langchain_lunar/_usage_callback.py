"""``get_lunar_callback()``: a cost meter for everything run inside a ``with`` block."""

from __future__ import annotations

import threading
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult

from langchain_lunar._responses import is_amount

# failed_attempts' error name of a model that was not asked because it cooled down.
_COOLING_DOWN = "CoolingDown"


@dataclass
class ModelUsage:
    """What one model cost. ``requests`` counts every attempt, failed ones included."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    retries: int = 0
    fallbacks: int = 0
    errors: int = 0


class LunarCallbackHandler(BaseCallbackHandler):
    """Totals tokens, USD cost, requests, retries and fallbacks per model, thread-safely.

    Cost comes from Lunar's ``total_cost_usd`` (else input plus output cost) on each answer;
    the model is the one that served. Streaming runs count once, when they end.
    """

    run_inline = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_model: dict[str, ModelUsage] = {}

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        for generations in response.generations:
            for generation in generations:
                message = getattr(generation, "message", None)
                metadata = getattr(message, "response_metadata", None) or {}
                usage = getattr(message, "usage_metadata", None) or {}
                with self._lock:
                    self._count_failures(metadata.get("failed_attempts") or ())
                    served = self._model(metadata.get("model_name") or "unknown")
                    served.requests += 1
                    served.input_tokens += usage.get("input_tokens", 0)
                    served.output_tokens += usage.get("output_tokens", 0)
                    served.total_tokens += usage.get("total_tokens", 0)
                    served.cost_usd += _cost(metadata)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        failed = getattr(error, "failed_attempts", ()) or ()
        with self._lock:
            self._count_failures(failed)
            if failed:
                self._model(failed[-1]["model"]).errors += 1

    def _count_failures(self, failed: Any) -> None:
        for attempt in failed:
            if attempt.get("error") == _COOLING_DOWN:
                continue  # skipped or waited for while it cooled down: nothing was sent
            usage = self._model(attempt["model"])
            usage.requests += 1
            if attempt.get("then") == "retry":
                usage.retries += 1
            elif attempt.get("then") == "fallback":
                usage.fallbacks += 1

    def _model(self, name: str) -> ModelUsage:
        return self.by_model.setdefault(name, ModelUsage())

    def _total(self, name: str) -> Any:
        with self._lock:
            return sum(getattr(usage, name) for usage in self.by_model.values())

    @property
    def requests(self) -> int:
        return int(self._total("requests"))

    @property
    def input_tokens(self) -> int:
        return int(self._total("input_tokens"))

    @property
    def output_tokens(self) -> int:
        return int(self._total("output_tokens"))

    @property
    def total_tokens(self) -> int:
        return int(self._total("total_tokens"))

    @property
    def cost_usd(self) -> float:
        return float(self._total("cost_usd"))

    @property
    def retries(self) -> int:
        return int(self._total("retries"))

    @property
    def fallbacks(self) -> int:
        return int(self._total("fallbacks"))

    def __str__(self) -> str:
        lines = [
            f"Requests: {self.requests} (retries: {self.retries}, fallbacks: {self.fallbacks})",
            f"Tokens: {self.total_tokens} ({self.input_tokens} input, {self.output_tokens} output)",
            f"Cost (USD): ${self.cost_usd:.6f}",
        ]
        with self._lock:
            lines.extend(f"  {model}: {usage}" for model, usage in sorted(self.by_model.items()))
        return "\n".join(lines)


def _cost(metadata: dict[str, Any]) -> float:
    """The answer's cost in USD: ``total_cost_usd``, else input plus output cost.

    ChatLunar leaves out cost fields that are no finite, non-negative number (with a warning);
    what another source put in the metadata counts only if it is one, so the sum stays
    finite and non-negative.
    """
    total = _amount(metadata.get("total_cost_usd"))
    if total is None:
        total = (_amount(metadata.get("input_cost_usd")) or 0.0) + (
            _amount(metadata.get("output_cost_usd")) or 0.0
        )
    return total


def _amount(value: Any) -> float | None:
    return float(value) if is_amount(value) else None


_current: ContextVar[LunarCallbackHandler | None] = ContextVar("lunar_callback", default=None)
_hooked = False
_hook_lock = threading.Lock()


def _hook() -> None:
    """Have LangChain's callback managers add ``_current``'s handler to every run: once, on the
    first ``get_lunar_callback()``, the only way to set it. Not at import, since
    ``langchain_core.tracers.context`` imports langsmith's tracing (a model call imports it
    anyway)."""
    global _hooked
    with _hook_lock:
        if not _hooked:
            from langchain_core.tracers.context import register_configure_hook

            register_configure_hook(_current, inheritable=True)
            _hooked = True


class _Metering:
    """``with`` and ``async with`` both enter the same metered block."""

    def __init__(self) -> None:
        self._handler = LunarCallbackHandler()
        self._token: Token[LunarCallbackHandler | None] | None = None

    def __enter__(self) -> LunarCallbackHandler:
        self._token = _current.set(self._handler)
        return self._handler

    def __exit__(self, *exc_info: object) -> None:
        assert self._token is not None
        _current.reset(self._token)

    async def __aenter__(self) -> LunarCallbackHandler:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)


def get_lunar_callback() -> _Metering:
    """Meter every model run inside the block (``with`` or ``async with``), streaming
    included: in this thread or task, and in what they start with a copy of the context, as
    LangChain's batch and async tasks do. The handler is safe to share between threads.

    Example:
        ```python
        with get_lunar_callback() as cb:
            chain.invoke(...)
        print(cb.cost_usd, cb.retries, cb.by_model)
        ```
    """
    if not _hooked:
        _hook()
    return _Metering()
