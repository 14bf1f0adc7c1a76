"""The errors ChatLunar raises.

Names follow the vendor's own SDK (``lunar-sdk``), so code that catches ``RateLimitError`` there
catches it here too. Each class also inherits the matching provider-neutral class from
``langchain_core.exceptions``, so LangChain's agent middleware can classify it without knowing
about Lunar.

```
LunarError
├── APIError                     status_code, body, request_id
│   ├── BadRequestError          400
│   │   └── ContextLengthExceededError   400 about the context window
│   ├── AuthenticationError      401
│   ├── PermissionDeniedError    403
│   ├── NotFoundError            404
│   ├── UnprocessableEntityError 422
│   ├── RateLimitError           429, retry_after
│   └── ServerError              5xx
│       ├── ServiceUnavailableError  503
│       └── GatewayTimeoutError      504
├── APIConnectionError           the server could not be reached, or the connection broke
│   └── APITimeoutError
│       └── StreamChunkTimeoutError  no data event within stream_chunk_timeout
│           └── FirstChunkTimeoutError   no first data event within first_chunk_timeout
├── MalformedResponseError       the server broke the protocol (a line that is not JSON, ...)
└── StreamInterruptedError       a failure after tokens had already reached the caller
```
"""

from __future__ import annotations

from typing import Any

from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelPermissionDeniedError,
    ModelRateLimitError,
    ModelTimeoutError,
)

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ContextLengthExceededError",
    "FirstChunkTimeoutError",
    "GatewayTimeoutError",
    "LunarError",
    "MalformedResponseError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "ServiceUnavailableError",
    "StreamChunkTimeoutError",
    "StreamInterruptedError",
    "UnprocessableEntityError",
]


class LunarError(ModelError):
    """Base class of every error ChatLunar raises for a failed request.

    Attributes:
        failed_attempts: When retries or fallbacks were configured, every attempt of the call
            that failed, this one last: dicts with ``model``, ``error`` (the class name),
            ``status_code``, ``message``, ``wait`` (seconds slept before the next attempt;
            0 when moving to the next model; None for the last) and ``then`` (``"retry"``,
            ``"fallback"`` or ``"raise"``; for a model not asked because it cools down
            (a shared cooldown: see ``ChatLunar.cooldowns``), ``error`` is ``"CoolingDown"``,
            ``status_code`` None, and ``then`` ``"skip"`` (on to the next model at once) or
            ``"wait"`` (the last model, asked after ``wait`` seconds)).
    """

    failed_attempts: tuple[dict[str, Any], ...] = ()

    def __reduce__(self) -> Any:
        # Subclasses take keyword-only arguments, which the default pickling cannot pass back.
        return _rebuild, (type(self), self.args, self.__dict__)


class APIError(LunarError):
    """The server answered with an error status, or sent an error event inside a stream.

    Attributes:
        message: The server's own explanation, read from the error body.
        status_code: The HTTP status, or the ``code`` of an error event inside a 200 stream.
        body: The parsed error body (a dict), or its text when it was not JSON. Every string
            in it (object keys too) has the key masked; levels nested deeper than 32 are
            replaced by ``"(nested too deeply: left out)"``, so any ``repr``, ``json.dumps``
            or ``pickle`` of it works.
        request_id: The server's ``x-request-id`` header, when it sent one, the key masked.
        retry_after: Seconds the server asked the client to wait, from ``retry-after-ms`` or
            ``Retry-After`` (seconds or an HTTP date); else from the same two headers relayed
            by a LiteLLM gateway as ``llm_provider-retry-after-ms`` and
            ``llm_provider-retry-after``; else from the body's ``retry_after``. None when it
            did not say, or said something no clock can hold (an HTTP date beyond the year
            9999, a number beyond a float). A huge wait is kept as said; ChatLunar sleeps at
            most ``max_retry_wait`` and records a cooldown of at most ``max_cooldown``.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None,
        body: Any = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.body = body
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(self._describe())

    def _describe(self) -> str:
        status = f"Error code: {self.status_code} - " if self.status_code is not None else ""
        request = f" (request id: {self.request_id})" if self.request_id else ""
        return f"{status}{self.message}{request}"


class BadRequestError(APIError, ModelInvalidRequestError):
    """400: the server rejected the request as invalid."""


class ContextLengthExceededError(BadRequestError, ContextOverflowError):
    """400 because the messages are longer than the model's context window."""


class AuthenticationError(APIError, ModelAuthenticationError):
    """401: the API key is missing or wrong."""


class PermissionDeniedError(APIError, ModelPermissionDeniedError):
    """403: the API key may not use this model or endpoint."""


class NotFoundError(APIError, ModelNotFoundError):
    """404: no such model or endpoint."""


class UnprocessableEntityError(APIError, ModelInvalidRequestError):
    """422: the request was well-formed JSON but its values were rejected."""


class RateLimitError(APIError, ModelRateLimitError):
    """429: too many requests; ``retry_after`` says how long the server asked to wait."""


class ServerError(APIError, ModelAPIError):
    """5xx: the server failed."""


class ServiceUnavailableError(ServerError):
    """503: the server or the model behind it is overloaded or down."""


class GatewayTimeoutError(ServerError):
    """504: the gateway gave up waiting for the model."""


class APIConnectionError(LunarError, ModelConnectionError):
    """The server could not be reached, or the connection broke before the answer was complete."""


class APITimeoutError(APIConnectionError, ModelTimeoutError):
    """The connect timeout, or the read timeout while waiting for the next bytes, ran out."""


class StreamChunkTimeoutError(APITimeoutError):
    """No data event of a stream arrived within ``stream_chunk_timeout`` seconds.

    Keep-alive comments do not count: a gateway sends them while the model is silent. Before the
    first chunk has reached the caller it is retried like any timeout (then the fallbacks are
    asked); after it, it is the ``__cause__`` of a ``StreamInterruptedError``.

    Attributes:
        timeout: The ``stream_chunk_timeout`` that ran out, in seconds.
        model: The model that went silent.
    """

    def __init__(self, message: str, *, timeout: float, model: str) -> None:
        self.timeout = timeout
        self.model = model
        super().__init__(message)


class FirstChunkTimeoutError(StreamChunkTimeoutError):
    """No first data event of a stream arrived within ``first_chunk_timeout`` seconds of the
    request, its response headers included.

    A reasoning model thinks in silence before its first token, and that thinking is paid
    for: a model that did not begin within the bound is not asked again (asking again would
    pay for the same thinking, and throw it away again at the same bound). The fallbacks are
    asked, or this is raised.

    Attributes:
        timeout: The ``first_chunk_timeout`` that ran out, in seconds.
        model: The model that sent no data.
    """


class MalformedResponseError(LunarError, ModelAPIError):
    """The server sent something the protocol does not allow, such as a data line that is not JSON.

    The message quotes what was received, so the offending line can be seen.
    """


class StreamInterruptedError(LunarError, ModelAPIError):
    """A stream failed after some of its tokens had already been delivered.

    Nothing is replayed or retried at that point, because the caller has seen those tokens.
    The original error is chained as ``__cause__``.

    Attributes:
        text: The text delivered before the failure.
        model: The model that was streaming.
    """

    def __init__(self, message: str, *, text: str, model: str) -> None:
        self.text = text
        self.model = model
        super().__init__(message)


def _rebuild(cls: type[LunarError], args: tuple[Any, ...], state: dict[str, Any]) -> LunarError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error
