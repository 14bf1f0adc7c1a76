"""Retries and model fallbacks: one tenacity policy for every call, sync or async, streaming or not.

One call is a sequence of attempts. Each attempt asks one model; the policy decides after each
failure what comes next:

- an error that may pass (408, 409, 429, 5xx, connection errors, timeouts) is retried on the
  same model, up to ``max_retries`` times, after the wait the server asked for or else an
  exponential backoff with jitter; except a stream whose first data event did not come within
  ``first_chunk_timeout`` (``FirstChunkTimeoutError``): its model was thinking, paid for, and
  would think as long again, so the next model is asked at once;
- when the retries are used up, or the server asks for a wait longer than ``max_retry_wait``,
  the next model of ``fallbacks`` is asked at once;
- any other error (400, 401, 403, 404, 422, a malformed answer) is raised at once.

Shared cooldowns (``langchain_lunar._cooldowns``): a 429 or 503 that asks for a wait records
that its model cools down until then, for at most ``max_cooldown`` seconds (a server's word
cannot block a model for a year). Before each attempt the plan reads the store: a model
cooling down is skipped for the next one without a request; the last one is waited for when
the wait is within ``max_retry_wait``, else a ``RateLimitError`` is raised. A wait the plan
itself has slept (a retry after the server's ``Retry-After``) is not waited again.

Every request after the first takes a token of the model's ``rate_limiter`` (langchain-core
takes the first one before the call); a skipped model sends nothing and takes none.

A streaming attempt succeeds once its first chunk has arrived; what happens after that is never
retried, because the caller has seen it (see ``StreamInterruptedError``).
"""

from __future__ import annotations

import functools
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from langchain_lunar._exceptions import (
    APIConnectionError,
    APIError,
    FirstChunkTimeoutError,
    LunarError,
    RateLimitError,
)
from langchain_lunar._secrets import Secrets, redact

if TYPE_CHECKING:
    from langchain_core.rate_limiters import BaseRateLimiter
    from tenacity import RetryCallState

    from langchain_lunar._cooldowns import CooldownScope
    from langchain_lunar._settings import ResolvedCall

logger = logging.getLogger("langchain_lunar")

T = TypeVar("T")

_RETRYABLE_STATUSES = frozenset({408, 409, 429})
_COOLING_STATUSES = frozenset({429, 503})
# A cooldown that ends this close to now is over: the clocks of a fleet differ a little.
_CLOCK_TOLERANCE = 0.1


class RetrySettings(NamedTuple):
    """How hard one call tries. See ChatLunar's fields of the same names."""

    max_retries: int = 2
    max_retry_wait: float = 60.0
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    backoff_jitter: float = 0.5
    max_cooldown: float = 300.0


def is_retryable(error: BaseException) -> bool:
    """Whether ``error`` may pass on a retry, or on another model."""
    if isinstance(error, APIConnectionError):
        return True
    if isinstance(error, APIError) and error.status_code is not None:
        return error.status_code in _RETRYABLE_STATUSES or error.status_code >= 500
    return False


class _Step(NamedTuple):
    """What follows one failed attempt: the model to ask next and the wait before it."""

    model_index: int
    wait: float


class _Plan:
    """The state of one call's attempts, read and advanced by tenacity's hooks.

    The decision after a failed attempt is taken once, by whichever hook tenacity calls first
    (8.2 calls ``stop`` before ``wait``, 8.3 and later the reverse), and kept as a value for
    that attempt, so the outcome never depends on the order of the hooks.
    """

    def __init__(
        self,
        models: Sequence[str],
        settings: RetrySettings,
        cooldowns: CooldownScope | None = None,
        rate_limiter: BaseRateLimiter | None = None,
        secrets: Secrets = (),
    ) -> None:
        self.models = models
        self.settings = settings
        self.cooldowns = cooldowns
        self.rate_limiter = rate_limiter
        self.secrets = secrets  # masked out of every log line and failed_attempts entry
        self.index = 0
        self.retries_used = 0
        self.sent = 0  # requests sent
        self.failed: list[dict[str, Any]] = []
        self._decided: tuple[int, _Step | None] | None = None  # (attempt number, next step)
        # Per model, the latest cooldown end this call has already waited for (or is waiting
        # for, as the wait before a retry), so that it does not skip or wait for it again.
        self._waited: dict[str, float] = {}

    @property
    def model(self) -> str:
        return self.models[self.index]

    def next_step(self, state: RetryCallState) -> _Step | None:
        """What to do after the failed attempt ``state`` describes; None: nothing is left."""
        decided = self._decided
        if decided is None or decided[0] != state.attempt_number:
            decided = (state.attempt_number, self._decide(_error_of(state)))
            self._decided = decided
        return decided[1]

    def _decide(self, error: BaseException) -> _Step | None:
        asked: float | None = getattr(error, "retry_after", None)
        settings = self.settings
        if (
            self.retries_used < settings.max_retries
            and (asked is None or asked <= settings.max_retry_wait)
            and not isinstance(error, FirstChunkTimeoutError)  # see the module docstring
        ):
            return _Step(self.index, asked if asked is not None else self._backoff())
        if self.index + 1 < len(self.models):
            return _Step(self.index + 1, 0.0)
        return None

    def wait(self, state: RetryCallState) -> float:
        """tenacity's ``wait`` hook: the wait before the next attempt."""
        step = self.next_step(state)
        return step.wait if step is not None else 0.0

    def stop(self, state: RetryCallState) -> bool:
        """tenacity's ``stop`` hook: stop when nothing is left to try."""
        return self.next_step(state) is None

    def before_sleep(self, state: RetryCallState) -> None:
        """tenacity's ``before_sleep`` hook: record the failure, log it, move to the next step."""
        step = self.next_step(state)
        assert step is not None  # tenacity sleeps only when stop() said go on
        index, wait = step
        error = _error_of(state)
        self.record(error, wait=wait, then="retry" if index == self.index else "fallback")
        if index == self.index:
            self.retries_used += 1
            logger.warning(
                "Retrying %s in %.2f s (retry %d of %d) after %s",
                self.model,
                wait,
                self.retries_used,
                self.settings.max_retries,
                self._describe(error),
            )
        else:
            logger.warning(
                "Falling back from %s to %s after %s",
                self.model,
                self.models[index],
                self._describe(error),
            )
            self.index = index
            self.retries_used = 0

    def _backoff(self) -> float:
        settings = self.settings
        exponential = settings.backoff_base * 2.0**self.retries_used
        jitter = random.uniform(0, settings.backoff_jitter) if settings.backoff_jitter else 0.0
        return min(exponential + jitter, settings.backoff_max)

    def record(self, error: BaseException, *, wait: float | None, then: str) -> None:
        self._record(
            type(error).__name__,
            getattr(error, "status_code", None),
            redact(str(error), self.secrets),
            wait,
            then,
        )

    def _describe(self, error: BaseException) -> str:
        """``error`` for a log line, masked: ours are already, but nothing else is promised."""
        status = getattr(error, "status_code", None)
        text = (
            f"{type(error).__name__} ({status}): {error}"
            if status
            else (f"{type(error).__name__}: {error}")
        )
        return redact(text, self.secrets)

    def _record(
        self, error: str, status_code: int | None, message: str, wait: float | None, then: str
    ) -> None:
        """One ``failed_attempts`` entry, for the current model."""
        self.failed.append(
            {
                "model": self.model,
                "error": error,
                "status_code": status_code,
                "message": message,
                "wait": wait,
                "then": then,
            }
        )

    # --- Shared cooldowns and the rate limiter, around each attempt -------------------------

    def cooling(self, until: float | None) -> float | None:
        """After reading when the current model's cooldown ends (``until``, epoch seconds): the
        seconds to wait before asking it (0.0: at once), or None when it was skipped for the
        next model, which is then to be checked in turn.

        Raises ``RateLimitError`` when the last model cools down longer than
        ``max_retry_wait``.
        """
        if until is None or math.isnan(until):  # NaN: from a store that is not ours
            return 0.0
        model = self.model
        now = time.time()
        # A store written by an older client (or not ours) may hold any end: none is waited
        # for, or reported, beyond max_cooldown.
        until = min(until, now + self.settings.max_cooldown)
        left = until - now
        if left <= _CLOCK_TOLERANCE or until <= self._waited.get(model, 0.0) + _CLOCK_TOLERANCE:
            return 0.0
        message = (
            f"{model} cools down until {_clock(until)} ({left:.1f} s from now), from a shared "
            "cooldown: it answered 429 or 503 asking for that wait"
        )
        if self.index + 1 < len(self.models):
            self._record("CoolingDown", None, message, 0.0, "skip")
            logger.info("Skipping %s for %s: %s", model, self.models[self.index + 1], message)
            self.index += 1
            self.retries_used = 0
            return None
        if left <= self.settings.max_retry_wait:
            self._record("CoolingDown", None, message, left, "wait")
            logger.info("Waiting %.2f s before asking %s: %s", left, model, message)
            self._waited[model] = until
            return left
        # Its retry_after is beyond max_retry_wait and no model is left: _decide stops.
        raise RateLimitError(message, status_code=429, retry_after=left)

    def cools_until(self, error: BaseException) -> float | None:
        """When the current model cools down until after failing with ``error``: for a 429 or
        503 that asked for a wait. None when it does not cool (or cooldowns are off)."""
        if self.cooldowns is None or not isinstance(error, APIError):
            return None
        asked = error.retry_after
        if not asked or error.status_code not in _COOLING_STATUSES:
            return None
        # min() also caps what time arithmetic cannot hold (1e308 s, inf, NaN: not >= cap).
        cap = self.settings.max_cooldown
        until = time.time() + (asked if asked < cap else cap)
        # A retry on this model comes after exactly that wait: it must not wait again.
        self._waited[self.model] = until
        return until

    def limiter_to_take(self) -> BaseRateLimiter | None:
        """The rate limiter the request about to be sent takes a token of, if any: every
        request takes one, but langchain-core took the first's before the call."""
        self.sent += 1
        return self.rate_limiter if self.sent > 1 else None


def _policy(plan: _Plan) -> dict[str, Any]:
    """The tenacity arguments shared by the sync and async loops."""
    return {
        "retry": _retry_if_retryable(),
        "wait": plan.wait,
        "stop": plan.stop,
        "before_sleep": plan.before_sleep,
        "reraise": True,
    }


def call_with_retries(
    call: ResolvedCall,
    attempt: Callable[[str, tuple[dict[str, Any], ...]], T],
    *,
    sleep: Callable[[float], None],
) -> T:
    """Run ``attempt(model, failed_attempts_so_far)`` over ``call.models`` under
    ``call.retry``; return its first success.

    With ``call.cooldowns``, a model cooling down is skipped (or waited for), and a 429 or 503
    that asks for a wait is recorded; with ``call.rate_limiter``, each request after the first
    takes a token.
    """
    plan = _Plan(call.models, call.retry, call.cooldowns, call.rate_limiter, call.request.secrets)

    def attempt_now() -> T:
        scope = plan.cooldowns
        if scope is not None:
            # Until a model may be asked: a skip moves on to the next model, and a wait is
            # followed by a fresh look (another worker may have been told to wait longer).
            while (wait := plan.cooling(scope.store.until(scope.key(plan.model)))) != 0.0:
                if wait is not None:
                    sleep(wait)
        if (limiter := plan.limiter_to_take()) is not None:
            limiter.acquire(blocking=True)
        try:
            return attempt(plan.model, tuple(plan.failed))
        except APIError as error:
            until = plan.cools_until(error)
            if until is not None:
                assert scope is not None
                scope.store.cool(scope.key(plan.model), until)
            raise

    try:
        try:
            return attempt_now()
        except Exception as error:
            if not is_retryable(error):
                raise  # as tenacity raises it: at once, the same exception
            replay = _Replay(error)
        # Only now is tenacity imported and its loop built (see _Replay).
        from tenacity import Retrying

        def attempt_again() -> T:
            replay.raise_first()
            return attempt_now()

        return Retrying(sleep=sleep, **_policy(plan))(attempt_again)
    except LunarError as error:
        _attach(error, plan)
        raise


async def acall_with_retries(
    call: ResolvedCall,
    attempt: Callable[[str, tuple[dict[str, Any], ...]], Awaitable[T]],
    *,
    sleep: Callable[[float], Awaitable[None]],
) -> T:
    """Async twin of ``call_with_retries``: the store's and the limiter's async methods."""
    plan = _Plan(call.models, call.retry, call.cooldowns, call.rate_limiter, call.request.secrets)

    async def attempt_now() -> T:  # tenacity awaits only coroutine functions, not lambdas
        scope = plan.cooldowns
        if scope is not None:
            while (wait := plan.cooling(await scope.store.auntil(scope.key(plan.model)))) != 0.0:
                if wait is not None:
                    await sleep(wait)
        if (limiter := plan.limiter_to_take()) is not None:
            await limiter.aacquire(blocking=True)
        try:
            return await attempt(plan.model, tuple(plan.failed))
        except APIError as error:
            until = plan.cools_until(error)
            if until is not None:
                assert scope is not None
                await scope.store.acool(scope.key(plan.model), until)
            raise

    try:
        try:
            return await attempt_now()
        except Exception as error:
            if not is_retryable(error):
                raise
            replay = _Replay(error)
        from tenacity import AsyncRetrying

        async def attempt_again() -> T:
            replay.raise_first()
            return await attempt_now()

        return await AsyncRetrying(sleep=sleep, **_policy(plan))(attempt_again)
    except LunarError as error:
        _attach(error, plan)
        raise


class _Replay:
    """The first attempt runs without tenacity; only when it fails with an error that may pass
    is tenacity imported and its loop built, and that loop's first attempt raises the same
    error again instead of asking anyone, so every hook sees what it would have seen had the
    loop run from the start.

    So importing ChatLunar does not import tenacity, and a call that succeeds at once builds no
    loop (the figures are in benchmarks/README.md)."""

    __slots__ = ("_error",)

    def __init__(self, error: BaseException) -> None:
        self._error: BaseException | None = error

    def raise_first(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error


@functools.cache
def _retry_if_retryable() -> Any:
    """tenacity's ``retry`` condition: the error may pass (built once, at the first retry)."""
    from tenacity import retry_if_exception

    return retry_if_exception(is_retryable)


def _attach(error: LunarError, plan: _Plan) -> None:
    # The error raised is the last attempt's, whether it was not retryable or nothing was left.
    plan.record(error, wait=None, then="raise")
    error.failed_attempts = tuple(plan.failed)


def _error_of(state: RetryCallState) -> BaseException:
    assert state.outcome is not None
    error = state.outcome.exception()
    assert error is not None
    return error


def _clock(epoch: float) -> str:
    try:
        return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")
    except (OverflowError, ValueError, OSError):  # beyond the year 9999 (or the platform's)
        return f"{epoch:.0f} (epoch seconds)"
