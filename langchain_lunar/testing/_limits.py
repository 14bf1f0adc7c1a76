"""Rate limits and model cooldowns of ``LocalLunarServer``: ``RateLimit`` (a token bucket per
API key), the bookkeeping behind it and behind ``cool()``, and how a 429 says when to retry.

Nothing here locks: ``_State`` calls in under the server's lock.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

RetryAfterForm = Literal["seconds", "http-date", "ms", "body"]
"""How a 429 says when to retry (the forms the protocol doc lists):

- ``"seconds"``: ``Retry-After: <whole seconds, rounded up>``;
- ``"http-date"``: ``Retry-After: <IMF-fixdate>``, the first whole second at or after the time
  to retry;
- ``"ms"``: ``retry-after-ms: <whole milliseconds, rounded up>`` and no ``Retry-After``;
- ``"body"``: ``"retry_after": <seconds, rounded up to the millisecond>`` in the body's
  ``error`` object, and no header.
"""

RETRY_AFTER_FORMS: tuple[RetryAfterForm, ...] = get_args(RetryAfterForm)


def check_retry_after(form: object) -> RetryAfterForm | None:
    """``form`` if it is a ``RetryAfterForm`` or None, else ValueError."""
    if form is not None and form not in RETRY_AFTER_FORMS:
        raise ValueError(f"retry_after must be one of {RETRY_AFTER_FORMS} or None, got {form!r}")
    return form


@dataclass(frozen=True)
class RateLimit:
    """A token bucket per API key: ``burst`` requests at once, then ``requests_per_second``.

    Each key's bucket starts full with ``burst`` tokens and refills at ``requests_per_second``
    tokens a second, up to ``burst``. A request takes one token; a request finding less than
    one is refused with a 429 (and takes nothing) whose retry hint says when the bucket will
    next hold a whole token.

    Attributes:
        requests_per_second: refill rate, > 0 (0.5 = one request every 2 s).
        burst: bucket size, an int >= 1; None (default) means one second's worth,
            ``max(1, ceil(requests_per_second))``.
        retry_after: how the 429 says when to retry, a ``RetryAfterForm``: ``"seconds"``
            (default), ``"http-date"``, ``"ms"``, ``"body"``; None sends no hint.
    """

    requests_per_second: float
    burst: int | None = None
    retry_after: RetryAfterForm | None = "seconds"

    def __post_init__(self) -> None:
        rps = self.requests_per_second
        if isinstance(rps, bool) or not isinstance(rps, (int, float)) or not 0 < rps < math.inf:
            raise ValueError(f"requests_per_second must be a finite number > 0, got {rps!r}")
        burst = self.burst
        if burst is None:
            # Frozen dataclass: resolving the default is the only write, here.
            object.__setattr__(self, "burst", max(1, math.ceil(rps)))
        elif isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be an int >= 1, got {burst!r}")
        check_retry_after(self.retry_after)

    @property
    def size(self) -> int:
        """``burst`` as resolved (never None after construction)."""
        assert self.burst is not None
        return self.burst


def as_rate_limit(value: object) -> RateLimit | None:
    """A ``RateLimit`` from ``LocalLunarServer(rate_limit=...)``: a ``RateLimit``, an
    ``(requests_per_second, burst)`` pair, or None (no limit)."""
    if value is None or isinstance(value, RateLimit):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        return RateLimit(value[0], value[1])
    raise TypeError(
        f"rate_limit must be a RateLimit, a (requests_per_second, burst) pair or None, "
        f"got {value!r}"
    )


class Buckets:
    """The token buckets of one ``RateLimit``, one per key (None: requests without a key)."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        # key -> (tokens, monotonic time they were counted at)
        self._buckets: dict[str | None, tuple[float, float]] = {}

    def take(self, key: str | None, now: float) -> float | None:
        """Take a token from ``key``'s bucket at monotonic time ``now``: None if admitted,
        else the seconds (> 0) until the bucket holds a whole token."""
        rps, size = self.limit.requests_per_second, self.limit.size
        tokens, then = self._buckets.get(key, (float(size), now))
        # Connection threads take the lock in any order: an earlier arrival checked after a
        # later one must not refill a negative amount.
        now = max(now, then)
        tokens = min(float(size), tokens + (now - then) * rps)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rps


def request_key(headers: Mapping[str, str]) -> str | None:
    """The API key a request sends: ``x-api-key``, else the token of ``Authorization:
    Bearer``; None without either.

    ``x-api-key`` wins because the vendor SDK sends the key there and a JWT as the Bearer
    token (protocol doc, "Authentication").
    """
    key = headers.get("x-api-key")
    if key:
        return key
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def retry_hint(form: RetryAfterForm | None, wait: float) -> tuple[dict[str, str], dict[str, Any]]:
    """The headers and the extra ``error`` fields that tell a client to retry in ``wait``
    seconds, in ``form``. Every form rounds up, so a client that waits exactly what it is told
    is never early."""
    if form == "seconds":
        return {"Retry-After": str(max(1, math.ceil(wait)))}, {}
    if form == "http-date":
        when = math.ceil(time.time() + wait)
        return {"Retry-After": email.utils.formatdate(when, usegmt=True)}, {}
    if form == "ms":
        return {"retry-after-ms": str(max(1, math.ceil(wait * 1000)))}, {}
    if form == "body":
        return {}, {"retry_after": max(1, math.ceil(wait * 1000)) / 1000}
    return {}, {}


def rate_limit_body(message: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAI-style 429 body: ``{"error": {"message", "type": "rate_limit_error", "code":
    "rate_limit_exceeded", **extra}}``."""
    return {
        "error": {
            "message": message,
            "type": "rate_limit_error",
            "code": "rate_limit_exceeded",
            **extra,
        }
    }


@dataclass(frozen=True)
class Refusal:
    """A request refused with a 429: why (``message``), when to retry (``wait`` seconds from
    now) and how to say it (``form``)."""

    message: str
    wait: float
    form: RetryAfterForm | None

    def response(self) -> tuple[dict[str, str], dict[str, Any]]:
        """The 429's extra headers and its JSON body."""
        headers, extra = retry_hint(self.form, self.wait)
        return headers, rate_limit_body(self.message, extra)
