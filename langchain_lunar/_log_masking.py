"""The key out of httpx's and httpcore's own log lines.

httpx logs every response at INFO with its reason phrase (``HTTP/1.1 401 Invalid API key
sk-...``), and httpcore logs the status line and the headers at DEBUG; a hostile server can put
the key in both. ``hold_secrets(secrets)`` holds a request's secrets while it is in flight, and
a filter on those loggers masks every secret in flight in each of their records. It costs
nothing per token, and nothing at all when those loggers are not enabled (no record is made).
"""

from __future__ import annotations

import logging
import threading

from langchain_lunar._secrets import Secrets, redact

# The loggers httpx and httpcore write to (a logger's filters see only its own records).
_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


class _SecretsInFlight(logging.Filter):
    """Masks the secrets of every request in flight in the records it sees."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._secrets: Secrets = ()  # longest first, as redact() wants them
        self._installed = False

    def hold(self, secrets: Secrets) -> None:
        with self._lock:
            for secret in secrets:
                self._counts[secret] = self._counts.get(secret, 0) + 1
            self._update()
            if not self._installed:
                self._installed = True
                for name in _LOGGERS:
                    logging.getLogger(name).addFilter(self)

    def release(self, secrets: Secrets) -> None:
        with self._lock:
            for secret in secrets:
                left = self._counts.get(secret, 0) - 1
                if left > 0:
                    self._counts[secret] = left
                else:
                    self._counts.pop(secret, None)
            self._update()

    def _update(self) -> None:
        self._secrets = tuple(sorted(self._counts, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._secrets
        if secrets:
            message = record.getMessage()
            masked = redact(message, secrets)
            if masked != message:
                record.msg, record.args = masked, None
        return True


_IN_FLIGHT = _SecretsInFlight()


def hold_secrets(secrets: Secrets) -> None:
    """Mask ``secrets`` in httpx's and httpcore's log records until ``release_secrets``."""
    if secrets:
        _IN_FLIGHT.hold(secrets)


def release_secrets(secrets: Secrets) -> None:
    """The request that held ``secrets`` is over."""
    if secrets:
        _IN_FLIGHT.release(secrets)
